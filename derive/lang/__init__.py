"""Stage 1, the language: spec text in, a checked :class:`~derive.lang.records.Spec` out.

:mod:`~derive.lang.spec` reads a TOML spec (sections, names, calls, order) and
:mod:`~derive.lang.expr` parses each expression into a small AST without ``eval``.
Nothing here imports SymPy or NumPy.
"""
