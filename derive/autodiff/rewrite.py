"""Greedy, size-guarded rewriting of one named adjoint, every accepted step recorded.

From the canonical form (see :mod:`derive.autodiff.canon`) each round asks every rule of
:mod:`derive.autodiff.rules` for candidates (fold, cancel, unfold, inline).  The best
candidate that lowers ``(size, internal values referenced)`` is kept; the result is
finally collected into one fraction (:func:`compact`).
"""

from __future__ import annotations

import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.autodiff.adjoint import Adjoint, adjoint_atom
from derive.autodiff.canon import Canon, internal_atoms, merge_sums, size
from derive.autodiff.rules import Candidate, RuleContext, candidates
from derive.autodiff.steps import Step, StepKind
from derive.graph.nodes import Graph, Node, atom_name
from derive.lang.naming import gradient_of


def key(e: sp.Expr, graph: Graph) -> tuple[int, int]:
    """What rewriting minimises: size, then internal values referenced."""
    return size(e), internal_atoms(e, graph)


def rewrite(
    graph: Graph, canon: Canon, node: Node, raw: sp.Expr, done: dict, local: list[Step]
) -> Adjoint:
    """Greedy size-guarded rewriting of one named adjoint, each accepted step recorded."""
    steps = [*dict.fromkeys(local), Step(StepKind.CHAIN_RULE, node.name, adjoint_atom(node), raw)]
    expr, used = canon.canonical(raw)
    if expr != raw:
        steps.append(Step(StepKind.EXPANSION, node.name, raw, expr, used))
    for _ in range(40):
        best: tuple[tuple[int, int], Candidate] | None = None
        here = key(expr, graph)
        for cand in candidates(RuleContext(graph, canon, node, done), expr):
            k = key(cand.expr, graph)
            k = (k[0] - cand.saved, k[1])
            if k < here and (best is None or k < best[0]):
                best = (k, cand)
        if best is None:
            break
        c = best[1]
        steps.append(Step(c.kind, node.name, expr, c.expr, c.facts, c.subject))
        expr = c.expr
    final = compact(expr)
    if final != expr:
        steps.append(Step(StepKind.COMPACT, node.name, expr, final))
    expr = final
    read = {gradient_of(atom_name(a)) for a in expr.atoms(Indexed, Symbol)}
    uses = sorted(read & {n.name for n in graph.nodes})
    return Adjoint(node, expr, raw, steps, uses)


def compact(e: sp.Expr) -> sp.Expr:
    """One fraction with common factors pulled out, as written on slides (if not larger)."""
    e = merge_sums(e)
    plain = sp.factor_terms(e)
    together = sp.factor_terms(sp.together(e))
    best = together if size(together) <= size(plain) else plain
    return fold_piecewise(best) if best.has(sp.Piecewise) else best


def fold_piecewise(e: sp.Expr) -> sp.Expr:
    """``g Piecewise((1, c), (a, True))`` → ``Piecewise((g, c), (a g, True))``, not across sums.

    The folded form is emitted as ``np.where(c, g, a * g)``, which keeps ``g``'s dtype.
    """
    if isinstance(e, Sum):
        return Sum(fold_piecewise(e.function), *e.limits)
    if not e.has(Sum):
        return sp.piecewise_fold(e)
    if e.is_Atom or isinstance(e, Indexed):
        return e
    return e.func(*[fold_piecewise(a) for a in e.args])
