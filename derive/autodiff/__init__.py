"""Stage 3, differentiation: a graph in, a :class:`~derive.autodiff.adjoint.Derivation` out.

:mod:`~derive.autodiff.reverse` applies the one reverse-mode rule to every node;
:mod:`~derive.autodiff.canon` puts sums into canonical form using tables of facts;
:mod:`~derive.autodiff.rewrite` rewrites each named adjoint into the taught form, every
step recorded as a :class:`~derive.autodiff.steps.Step`.
"""
