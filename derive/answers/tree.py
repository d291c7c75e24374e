"""The typed tree an answer is read into, and the error raised for unreadable answers.

The tree is deliberately small: numbers, names, sums and products, powers, transposes,
calls of a fixed set of functions and sums over an index.  It is translated to SymPy and
to NumPy by derive's own code (:mod:`derive.answers.symbolic`,
:mod:`derive.answers.numeric`); nothing here evaluates text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum


class AnswerError(Exception):
    """An answer that cannot be read: a message, the 1-based column (if known) and a hint."""

    def __init__(self, message: str, col: int | None = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.col = col
        self.hint = hint

    def __str__(self) -> str:
        where = f" (column {self.col})" if self.col else ""
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{self.message}{where}{hint}"


class Op(Enum):
    """Binary operators.

    ``PRODUCT`` is ``a b``, ``a * b``, ``a \\cdot b``: a matrix product when the inner sizes
    fit, else an entrywise one.  ``HADAMARD`` is ``\\odot`` / ``\\circ`` (entrywise only),
    ``MATMUL`` is ``@`` (matrix product only).
    """

    ADD = "+"
    SUB = "-"
    PRODUCT = "*"
    HADAMARD = "odot"
    MATMUL = "@"
    DIV = "/"
    POW = "^"


@dataclass(frozen=True)
class Num:
    value: int | float


@dataclass(frozen=True)
class Name:
    """A variable: ``id`` is the canonical name (``w_1``, ``w1``, ``w_{1}`` all give ``w1``)."""

    id: str


@dataclass(frozen=True)
class Neg:
    operand: Tree


@dataclass(frozen=True)
class Bin:
    op: Op
    left: Tree
    right: Tree


@dataclass(frozen=True)
class Transpose:
    operand: Tree


@dataclass(frozen=True)
class Call:
    """A function of a fixed set (:data:`FUNCTIONS`); ``prime`` counts derivative marks."""

    func: str
    args: tuple[Tree, ...]
    prime: int = 0


@dataclass(frozen=True)
class SumOver:
    """``\\sum_{index=lo}^{hi} body``; without bounds, over every entry of the body."""

    index: str
    body: Tree
    lo: int | None = None
    hi: int | None = None


Tree = Num | Name | Neg | Bin | Transpose | Call | SumOver

# function name -> number of arguments
FUNCTIONS: dict[str, int] = {
    "sigmoid": 1,
    "exp": 1,
    "log": 1,
    "tanh": 1,
    "relu": 1,
    "sqrt": 1,
    "abs": 1,
    "softmax": 1,
    "sum": 1,
    "diag": 1,
    "max": 2,
}

PRIMED = frozenset({"sigmoid", "tanh", "exp", "log", "relu"})
"""Functions whose derivative may be written with primes (``\\sigma'(z)``, ``\\tanh''(z)``)."""


def walk(tree: Tree) -> Iterator[Tree]:
    """Every node in pre-order."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Neg | Transpose):
            stack.append(node.operand)
        elif isinstance(node, Bin):
            stack += [node.right, node.left]
        elif isinstance(node, Call):
            stack += list(reversed(node.args))
        elif isinstance(node, SumOver):
            stack.append(node.body)


def names(tree: Tree) -> list[str]:
    """Every variable name, in order of first appearance."""
    seen: dict[str, None] = {}
    for node in walk(tree):
        if isinstance(node, Name):
            seen.setdefault(node.id, None)
    return list(seen)


def unknown_names(tree: Tree, known: set[str]) -> list[str]:
    """Names that are not known; inside ``\\sum_j``, ``p_j`` is known when ``p`` is."""
    out: dict[str, None] = {}

    def visit(node: Tree, indices: tuple[str, ...]) -> None:
        if isinstance(node, Name):
            entry = any(node.id.endswith(i) and node.id[: -len(i)] in known for i in indices)
            if node.id not in known and node.id not in indices and not entry:
                out.setdefault(node.id, None)
        elif isinstance(node, SumOver):
            visit(node.body, (*indices, node.index))
        elif isinstance(node, Neg | Transpose):
            visit(node.operand, indices)
        elif isinstance(node, Bin):
            visit(node.left, indices)
            visit(node.right, indices)
        elif isinstance(node, Call):
            for arg in node.args:
                visit(arg, indices)

    visit(tree, ())
    return list(out)


def drop_free_index(tree: Tree, known: set[str]) -> Tree | None:
    """``\\hat{y}_j - y_j`` as the vector ``yhat - y``: one free index on known names.

    None unless every unknown name is a known name followed by the same index letter.
    """
    unknown = unknown_names(tree, known)
    letters = {n[-1] for n in unknown}
    if not unknown or len(letters) != 1 or not letters.pop().isalpha():
        return None
    if not all(len(n) > 1 and n[:-1] in known for n in unknown):
        return None
    return substitute(tree, {n: Name(n[:-1]) for n in unknown})


def substitute(tree: Tree, table: dict[str, Tree]) -> Tree:
    """``tree`` with names replaced by trees (definitions such as ``\\hat{y} = ...``)."""
    if isinstance(tree, Name):
        return table.get(tree.id, tree)
    if isinstance(tree, Neg):
        return Neg(substitute(tree.operand, table))
    if isinstance(tree, Transpose):
        return Transpose(substitute(tree.operand, table))
    if isinstance(tree, Bin):
        return Bin(tree.op, substitute(tree.left, table), substitute(tree.right, table))
    if isinstance(tree, Call):
        return Call(tree.func, tuple(substitute(a, table) for a in tree.args), tree.prime)
    if isinstance(tree, SumOver):
        inner = {k: v for k, v in table.items() if k != tree.index}
        return SumOver(tree.index, substitute(tree.body, inner), tree.lo, tree.hi)
    return tree
