"""Evaluate an answer tree with NumPy: scalars at many points at once, or matrices.

Matrix semantics follow the lecture notation: vectors are columns, ``a b`` (also ``*``,
``\\cdot``) is a matrix product when the inner sizes fit and an entrywise product when
the shapes agree, ``\\odot`` is entrywise, ``@`` is a matrix product, ``^T`` transposes,
functions apply entrywise (``softmax`` over a column, ``\\sum`` over every entry).
With ``scalar=True`` every value is an array of sample points and everything is entrywise.
Entrywise functions (``\\sigma``, ``\\log``) and their derivatives (``\\sigma'``) are the op
table's, compiled by :mod:`derive.answers.entrywise`.
Cost is bounded: the reader caps the tree at a few hundred nodes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from derive.answers.entrywise import ENTRYWISE, derivative, value
from derive.answers.tree import Call, Name, Neg, Num, Op, SumOver, Transpose, Tree


class ShapeError(Exception):
    """Sizes that do not fit (``W_2 (p - t)`` where ``W_2^T (p - t)`` was meant)."""


def shape_text(shape: tuple[int, ...], dims: Mapping[int, str]) -> str:
    if not shape:
        return "a scalar"
    return " × ".join(dims.get(n, str(n)) for n in shape)


class Evaluator:
    """Values of trees in an environment of NumPy arrays."""

    def __init__(
        self, env: Mapping[str, np.ndarray], scalar: bool = False, dims: Mapping[int, str] = {}
    ) -> None:
        self.env = env
        self.scalar = scalar
        self.dims = dims

    def __call__(self, tree: Tree) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(self.value(tree, {}), dtype=float)

    def value(self, tree: Tree, index: dict[str, int]) -> np.ndarray:
        if isinstance(tree, Num):
            return np.asarray(float(tree.value))
        if isinstance(tree, Name):
            return self.lookup(tree.id, index)
        if isinstance(tree, Neg):
            return -self.value(tree.operand, index)
        if isinstance(tree, Transpose):
            v = self.value(tree.operand, index)
            return v if self.scalar else v.T
        if isinstance(tree, Call):
            return self.call(tree, [self.value(a, index) for a in tree.args])
        if isinstance(tree, SumOver):
            return self.summation(tree, index)
        return self.binary(tree.op, self.value(tree.left, index), self.value(tree.right, index))

    def lookup(self, name: str, index: dict[str, int]) -> np.ndarray:
        if name in self.env:
            return np.asarray(self.env[name])
        for letter, i in index.items():  # p_j inside \sum_j: entry j of p
            base = name[: -len(letter)]
            if name.endswith(letter) and base in self.env:
                v = np.asarray(self.env[base])
                if v.ndim == 0 or i >= v.shape[0]:
                    raise ShapeError(f"{name}: {base} has no entry {i + 1}")
                return v[i] if v.ndim == 1 else v[i : i + 1].reshape(v.shape[1:]).squeeze()
        raise KeyError(name)

    def summation(self, tree: SumOver, index: dict[str, int]) -> np.ndarray:
        bases = {
            n.id[: -len(tree.index)]
            for n in _names(tree.body)
            if n.id.endswith(tree.index) and n.id[: -len(tree.index)] in self.env
        }
        if not bases or self.scalar:
            total = self.value(tree.body, index)
            return total if self.scalar else np.asarray(total.sum())
        size = min(np.asarray(self.env[b]).shape[0] for b in bases)
        parts = [self.value(tree.body, {**index, tree.index: i}) for i in range(size)]
        return sum(parts[1:], parts[0])

    def call(self, tree: Call, args: list[np.ndarray]) -> np.ndarray:
        f = tree.func
        if tree.prime:  # f', f'': sympy.diff of the op's definition
            return derivative(f, tree.prime)(args[0])
        if f in ENTRYWISE:  # the op's NumPy spelling
            return value(f)(args[0])
        if f == "max":
            return self.entrywise(np.maximum, *args)
        if self.scalar:
            raise ShapeError(f"{f} needs a vector")
        a = args[0]
        if f == "sum":
            return np.asarray(a.sum())
        if f == "softmax":
            e = np.exp(a - a.max(axis=0, keepdims=True))
            return e / e.sum(axis=0, keepdims=True)
        if a.ndim == 2 and a.shape[1] == 1:  # diag of a column: the diagonal matrix
            return np.diag(a[:, 0])
        if a.ndim == 2 and a.shape[0] == a.shape[1]:
            return np.diag(a)[:, None]
        raise ShapeError(f"diag needs a vector or a square matrix, got {self.shape(a)}")

    def shape(self, a: np.ndarray) -> str:
        return shape_text(a.shape, self.dims)

    def entrywise(self, f, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.scalar or a.ndim == 0 or b.ndim == 0 or a.shape == b.shape:
            return f(a, b)
        if a.size == 1 or b.size == 1:  # a 1 × 1 result (x^T y) is a scalar
            return f(a.reshape(()) if a.size == 1 else a, b.reshape(()) if b.size == 1 else b)
        raise ShapeError(
            f"an entrywise operation needs equal shapes: {self.shape(a)} and {self.shape(b)}"
        )

    def binary(self, op: Op, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if op is Op.ADD:
            return self.entrywise(np.add, a, b)
        if op is Op.SUB:
            return self.entrywise(np.subtract, a, b)
        if op is Op.DIV:
            return self.entrywise(np.divide, a, b)
        if op is Op.HADAMARD:
            return self.entrywise(np.multiply, a, b)
        if op is Op.POW:
            if not self.scalar and b.ndim:
                raise ShapeError(f"an exponent must be a scalar, got {self.shape(b)}")
            return np.power(a, b)
        if self.scalar or a.ndim == 0 or b.ndim == 0:
            return a * b
        if a.shape[-1] == b.shape[0]:
            return a @ b
        if op is Op.PRODUCT and a.shape == b.shape:
            return a * b
        if op is Op.PRODUCT and (a.size == 1 or b.size == 1):
            return self.entrywise(np.multiply, a, b)
        raise ShapeError(
            f"a product of {self.shape(a)} and {self.shape(b)} does not fit "
            "(a matrix product needs equal inner sizes)"
        )


def _names(tree: Tree) -> list[Name]:
    from derive.answers.tree import walk

    return [n for n in walk(tree) if isinstance(n, Name)]
