"""An answer's entrywise functions as NumPy functions, built from the op table.

``\\sigma(z)``, ``\\tanh'(z)`` or ``\\log''(x)`` in an answer is evaluated with the op's own
record (:mod:`derive.ops`), never with a formula typed here:

* the value is the op's NumPy spelling: the code the generated module runs, with the stable
  helper it calls (``_sigmoid``, which never overflows);
* the derivative of order n is ``sympy.diff`` of the op's SymPy definition, called with the
  op's default parameters (so relu'(0) is the op's ``at_zero`` convention).  Where the op
  has an output form (``σ' = h (1 - h)``, ``tanh' = 1 - h²``, found from ``sympy.diff`` and
  proved by :func:`derive.ops.functions.output_form`), the derivative is written in the
  op's value, as the generated backward pass computes it: ``e^-z / (1 + e^-z)²`` would be
  ``inf / inf`` at z = -1000 where ``h (1 - h)`` is 0.

Both are printed by the project's NumPy printer and compiled with ``sympy.lambdify``; only
the op table's expressions are printed, never an answer's text.  Each function is built
once, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import sympy as sp

from derive.answers.caps import MAX_PRIMES
from derive.answers.tree import FUNCTIONS
from derive.emit.printers import NumPyIndexPrinter
from derive.ops.functions import H, Z, local_output_form, sympy_function
from derive.ops.table import BUILTIN_OPS, Op, OpKind

Entrywise = Callable[[np.ndarray], np.ndarray]

ENTRYWISE = frozenset(
    name
    for name in FUNCTIONS
    if name in BUILTIN_OPS and BUILTIN_OPS[name].kind is OpKind.ELEMENTWISE
)
"""The answer reader's functions that are elementwise ops (``exp``, ``sigmoid``, ``relu``, ...)."""


def value(name: str) -> Entrywise:
    """``f``: the op's value, entry by entry."""
    return derivative(name, 0)


@cache
def derivative(name: str, order: int = 1) -> Entrywise:
    """``f``, ``f'``, ``f''``, ...: the op's derivative of ``order``, entry by entry."""
    if name not in ENTRYWISE or not 0 <= order <= MAX_PRIMES:
        raise ValueError(f"no entrywise function {name} of order {order}")
    return _compiled(derivative_expr(BUILTIN_OPS[name], order))


def call(op: Op) -> sp.Expr:
    """``f(z)`` with the op's default parameters, checked as a spec's call checks them."""
    params = [sp.sympify(v) for v in op.kwargs.values()]
    if op.check_params is not None:
        checked = op.check_params(params)
        params = [p if c is None else sp.Integer(c) for p, c in zip(params, checked, strict=True)]
    return sympy_function(op)(Z, *params)


def derivative_expr(op: Op, order: int) -> sp.Expr:
    """``sympy.diff`` of the op's call ``order`` times, in the op's value where it can be.

    With an output form ``f' = P(h)``, ``f^(k+1) = P'(h) P(h)`` (the chain rule, by
    ``sympy.diff`` in ``h``); the polynomial is printed in Horner form (``h (1 - h)``).
    """
    f = call(op)
    if order == 0:
        return f
    form = local_output_form(f)
    if form is None:
        return sp.diff(f, Z, order)
    d = form
    for _ in range(order - 1):
        d = sp.expand(sp.diff(d, H) * form)
    if d.is_polynomial(H):
        d = sp.horner(d, H)
    return d.xreplace({H: f})


def _compiled(expr: sp.Expr) -> Entrywise:
    """``expr`` (in ``Z``) as a NumPy function, spelled as derive's generated code spells it."""
    printer = NumPyIndexPrinter([])
    printer.doprint(expr)  # which helpers the code calls
    namespace: dict = {"np": np}
    for name in sorted(printer.helpers):
        helper = BUILTIN_OPS[name].numpy_helper
        assert helper is not None, name
        exec(helper, namespace)  # the op table's own source, as in every generated module
    f = sp.lambdify(Z, expr, modules=[namespace], printer=printer)

    def entrywise(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        out = np.asarray(f(z), dtype=float)
        return out if out.shape == z.shape else np.broadcast_to(out, z.shape).copy()

    return entrywise
