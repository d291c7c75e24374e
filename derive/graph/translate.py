"""From the spec language's AST to graph values (mixed into the Builder)."""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from derive.errors import SpecError, suggest
from derive.graph.tensor import Tensor
from derive.lang import expr as P


class SpecTranslation:
    """Translation of parsed spec expressions."""

    def from_ast(self, e: P.Expr, env: dict[str, Tensor]) -> Tensor:
        """Build a parsed spec expression; ``env`` maps names to values."""
        if isinstance(e, P.Num):
            return self.lift(sp.Integer(e.value) if isinstance(e.value, int) else sp.Float(e.value))
        if isinstance(e, P.Name):
            if e.id in env:
                return env[e.id]
            if e.id in self.dims:
                return self.size(e.id)
            raise self.error(f"unknown name '{e.id}'", suggest(e.id, env))
        if isinstance(e, P.Neg):
            return -self.from_ast(e.operand, env)
        if isinstance(e, P.Transpose):
            return self.from_ast(e.operand, env).T
        if isinstance(e, P.BinOp) and e.op == "**" and isinstance(e.right, P.Num):
            # a decimal exponent is exact: z**0.5 is sqrt(z), and its derivative 1/(2 h)
            left = self.from_ast(e.left, env)
            return self._real(left ** sp.Rational(repr(e.right.value)), e, (left,))
        if isinstance(e, P.BinOp):
            left, right = self.from_ast(e.left, env), self.from_ast(e.right, env)
            if e.op == "/" and right.expr.is_number and right.expr.is_zero:
                raise self._zero_division(e)
            return self._real(_BINOPS[e.op](left, right), e, (left, right))
        if isinstance(e, P.Call):
            args = [self.from_ast(a, env) for a in e.args]
            kwargs = {k: self.from_ast(v, env) for k, v in e.kwargs}
            return self._real(self.call(e.func, *args, **kwargs), e, args)
        raise self.error(f"unsupported expression {e!r}")  # pragma: no cover

    def _real(self, t: Tensor, e: P.Expr, operands: Sequence[Tensor]) -> Tensor:
        """``t``, unless constant operands made it undefined, infinite or complex."""
        if not all(isinstance(o.expr, sp.Number) for o in operands):
            return t
        node = self.node_of(t)
        value = node.expr if node is not None and node.expr is not None else t.expr
        if value.is_number and not (value.is_extended_real and value.is_finite):
            what = "undefined" if value is sp.nan else "complex" if value.has(sp.I) else "infinite"
            raise self.error(
                f"the constant '{P.unparse(e)}' is {what}",
                "every value must be a finite real number; check the numbers written here",
            )
        return t

    def _zero_division(self, e: P.BinOp) -> SpecError:
        return self.error(
            f"'{P.unparse(e)}' divides by zero"
            + ("" if P.unparse(e.right) == "0" else f": '{P.unparse(e.right)}' is 0"),
            "every value must be a finite real number; check the numbers written here",
        )


_BINOPS = {
    "+": lambda a, c: a + c,
    "-": lambda a, c: a - c,
    "*": lambda a, c: a * c,
    "/": lambda a, c: a / c,
    "**": lambda a, c: a**c,
    "@": lambda a, c: a @ c,
}
