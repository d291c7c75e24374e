"""The op library: every op defined once, as a SymPy expression.

Elementwise ops are SymPy functions whose only knowledge is their ``definition``;
their derivative is ``sympy.diff`` of that definition.  Composite ops (softmax,
the losses, batch norm) are *macros* written in the spec language itself, so a
user's ``[ops]`` entry and a built-in op go through the same machinery.

The *output form* of a derivative (``sigmoid' = h(1 - h)``) is not looked up: it is
found by fitting a polynomial in the output ``h`` to the derivative at sample
points and then proving the fit symbolically (:func:`output_form`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import mpmath
import sympy as sp

from derive.ops.table import BUILTIN_OPS, Op, OpKind, elementwise_ops

Z = sp.Symbol("z", real=True)
H = sp.Symbol("h", real=True)


class ElementwiseOp(sp.Function):
    """Base of derive's elementwise ops: ``definition(z, *params)`` is all they know."""

    definition: Callable[..., sp.Expr]

    @classmethod
    def eval(cls, *args: sp.Expr) -> sp.Expr | None:
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        z = sp.Dummy("z", real=True)
        body = type(self).definition(z, *self.args[1:])
        return logistic_form(sp.diff(body, z)).xreplace({z: self.args[0]})

    def defined(self) -> sp.Expr:
        """This call with the definition written out."""
        return type(self).definition(*self.args)


def sympy_function(op: Op) -> Callable[..., sp.Expr]:
    """The SymPy function of an elementwise op: SymPy's own, or an :class:`ElementwiseOp`."""
    if op.sympy is not None:
        return getattr(sp, op.sympy)
    definition = op.definition
    assert definition is not None, op.name
    body = {
        "nargs": len(op.args) + len(op.kwargs),
        "definition": staticmethod(lambda *args: definition(sp, *args)),
        "__doc__": op.doc,
        "__module__": __name__,
    }
    return type(op.name, (ElementwiseOp,), body)


ELEMENTWISE: dict[str, Callable[..., sp.Expr]] = {
    op.name: sympy_function(op) for op in elementwise_ops()
}
"""Elementwise op name -> SymPy function (SymPy's own or one built from the op table)."""

sigmoid = ELEMENTWISE["sigmoid"]
softplus = ELEMENTWISE["softplus"]
relu = ELEMENTWISE["relu"]
leaky_relu = ELEMENTWISE["leaky_relu"]

OP_OF_FUNCTION: dict[str, Op] = {
    getattr(ELEMENTWISE[op.name], "__name__", op.name): op for op in elementwise_ops()
}
"""The op record behind a SymPy function's class name (``Abs`` -> abs, ``sigmoid`` -> sigmoid)."""


def logistic_form(expr: sp.Expr) -> sp.Expr:
    """``e^u/(1 + e^u)`` and ``1/(1 + e^u)`` written as ``sigmoid(u)`` and ``sigmoid(-u)``.

    The same values (``e^u/(1 + e^u) = 1/(1 + e^-u)``), but ``e^u`` overflows for large u
    (softplus' at u = 800 would be inf/inf) where the sigmoid helper never does.
    """

    def exponent(f: sp.Expr) -> sp.Expr | None:
        """u when ``f`` is ``1/(1 + e^u)``."""
        if isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, sp.Add):
            rest = f.base - 1
            if isinstance(rest, sp.exp) and f.base.args.count(sp.S.One) == 1:
                return rest.args[0]
        return None

    def rewrite(e: sp.Expr) -> sp.Expr:
        if not e.args:
            return e
        if exponent(e) is not None:
            return sigmoid(-rewrite(exponent(e)))
        if not isinstance(e, sp.Mul):
            return e.func(*(rewrite(a) for a in e.args))
        factors = list(e.args)
        for k, f in enumerate(factors):
            u = exponent(f)
            if u is None:
                continue
            if sp.exp(u) in factors:  # e^u / (1 + e^u)
                factors[factors.index(sp.exp(u))] = sp.S.One
                factors[k] = sigmoid(u)
            else:
                factors[k] = sigmoid(-u)
        return sp.Mul(*(f if isinstance(f, sigmoid) else rewrite(f) for f in factors))

    return rewrite(expr)


def written_out(expr: sp.Expr) -> sp.Expr:
    """Replace derive's elementwise ops by their definitions (for proofs and scalar checks)."""
    return expr.replace(lambda e: isinstance(e, ElementwiseOp), lambda e: e.defined())


MACROS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    op.name: ((*op.args, *op.kwargs), op.macro)
    for op in BUILTIN_OPS.values()
    if op.kind is OpKind.MACRO
}
"""Composite op name -> (parameters, statements in the spec language; the last is the result)."""


def _sample_points() -> list[mpmath.mpf]:
    pts = [mpmath.mpf(k) / 7 for k in range(-20, 21) if k != 0]
    return pts


@cache
def output_form(body: sp.Expr) -> sp.Expr | None:
    """Derivative of ``body`` (in ``Z``) as a polynomial or Laurent polynomial in ``H = body``.

    Least squares at 40 points with 30 digits, coefficients rationalised, then the
    identity ``d(z) = P(body(z))`` is proved with ``cancel`` after rewriting in exp.
    Returns None when no such form exists (log, softplus, relu, ...).
    """
    if body.has(sp.Piecewise, sp.Abs):
        return None
    deriv = sp.diff(body, Z)
    if deriv == body:
        return H
    with mpmath.workdps(30):
        fd = sp.lambdify(Z, deriv, "mpmath")
        fb = sp.lambdify(Z, body, "mpmath")
        samples = []
        for p in _sample_points():
            try:
                hv, dv = fb(p), fd(p)
            except (ZeroDivisionError, ValueError):
                continue
            if isinstance(hv, mpmath.mpc) or isinstance(dv, mpmath.mpc):
                continue
            samples.append((hv, dv))
        for lo, hi in ((0, 3), (-2, 3)):
            form = _fit(samples, lo, hi)
            if form is not None and _proved(deriv, form, body):
                return form
    return None


def _fit(samples: list, lo: int, hi: int) -> sp.Expr | None:
    powers = range(lo, hi + 1)
    if len(samples) < 3 * len(powers) or (lo < 0 and any(abs(h) < 1e-20 for h, _ in samples)):
        return None
    a = mpmath.matrix([[h**k for k in powers] for h, _ in samples])
    y = mpmath.matrix([d for _, d in samples])
    try:
        c = mpmath.lu_solve(a.T * a, a.T * y)
    except ZeroDivisionError:
        return None
    if max(abs(r) for r in (a * c - y)) > mpmath.mpf("1e-15"):
        return None
    terms = [
        sp.nsimplify(float(ci), rational=True, tolerance=1e-12) * H**k
        for k, ci in zip(powers, c, strict=True)
        if abs(ci) > 1e-12
    ]
    return sp.expand(sp.Add(*terms))


def _proved(deriv: sp.Expr, form: sp.Expr, body: sp.Expr) -> bool:
    diff = (deriv - form.subs(H, body)).rewrite(sp.exp)
    return sp.cancel(sp.expand(diff)) == 0


def local_output_form(fn: sp.Function) -> sp.Expr | None:
    """Output form of an elementwise call ``fn(z, *params)`` in ``H`` (None if there is none)."""
    if not fn.args or not fn.args[0].is_Symbol:
        fn = fn.func(Z, *fn.args[1:])
    body = fn.func(Z, *fn.args[1:])
    if isinstance(body, ElementwiseOp):
        body = body.defined()
    return output_form(body)
