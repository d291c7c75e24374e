"""A lazy value while a graph is built: a pointwise index expression and its dims.

``mm[b, i] + b1[i]`` stays an expression until it is named, fed to an op or contracted;
Python's operators build on it as NumPy's do (``@``, ``.T``, broadcasting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from derive.graph.nodes import BATCH

if TYPE_CHECKING:
    from derive.graph.builder import Builder


class Tensor:
    """A value under construction: ``expr`` in the canonical labels of ``dims``."""

    def __init__(self, b: Builder, expr: sp.Expr, dims: tuple[str | int, ...]) -> None:
        self.b, self.expr, self.dims = b, sp.sympify(expr), tuple(dims)

    @property
    def example_dims(self) -> tuple[str | int, ...]:
        return self.dims[1:] if self.batched else self.dims

    @property
    def batched(self) -> bool:
        return bool(self.dims) and self.dims[0] == BATCH

    def __add__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a + c, self, o, "+")

    def __radd__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c + a, self, o, "+")

    def __sub__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a - c, self, o, "-")

    def __rsub__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c - a, self, o, "-")

    def __mul__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a * c, self, o, "*")

    def __rmul__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c * a, self, o, "*")

    def __truediv__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a / c, self, o, "/")

    def __rtruediv__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c / a, self, o, "/")

    def __pow__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a**c, self, o, "**")

    def __neg__(self) -> Tensor:
        return Tensor(self.b, -self.expr, self.dims)

    def __matmul__(self, o: Tensor) -> Tensor:
        return self.b.matmul(self, o)

    @property
    def T(self) -> Tensor:
        return self.b.transpose(self)

    def __repr__(self) -> str:
        return f"Tensor({self.expr}, dims={self.dims})"
