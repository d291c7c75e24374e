"""The network as a graph of SymPy index expressions.

Every value is a :class:`Node` with named axes (``dims``) and one index label per
axis.  A computed node is defined by a single index expression over the entries
of its arguments, for example (batch label ``b``)::

    mm[b, i] = Sum(W1[i, j_1] * x[b, j_1], (j_1, 1, d))     # W1 @ x
    z1[b, i] = mm[b, i] + b1[i]                           # broadcasting
    h1[b, i] = sigmoid(z1[b, i])                          # elementwise
    s[b]     = Sum(e[b, k_1], (k_1, 1, k))                # reduction

Two shapes of definition exist: *pointwise* (no ``Sum``; arguments indexed by a
subset of the node's labels) and *contraction* (``coeff * Sum(product, limits)``).
Everything else (softmax, batch norm, custom ops) is built from these two.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, IndexedBase, Sum, Symbol

from derive.errors import SpecError

BATCH = "batch"
"""Name of the batch axis in ``Node.dims``."""


@dataclass(eq=False)
class Node:
    """One value of the network.

    ``kind`` is ``input``, ``param``, ``pointwise`` or ``contraction``.  ``expr`` is the
    defining index expression in this node's own ``labels`` (None for leaves).
    ``user`` marks names the author wrote (their adjoints stay named); ``op`` is the
    op that produced the node (for stable emission and for display).
    """

    name: str
    kind: str
    dims: tuple[str | int, ...]
    labels: tuple[Symbol, ...]
    expr: sp.Expr | None = None
    args: tuple[Node, ...] = ()
    user: bool = False
    op: str | None = None
    nograd: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def base(self) -> IndexedBase:
        return IndexedBase(self.name)

    @property
    def batched(self) -> bool:
        return bool(self.dims) and self.dims[0] == BATCH

    @property
    def atom(self) -> sp.Expr:
        """The node's entry at its own labels, e.g. ``h1[b, i]`` (a Symbol for scalars)."""
        return entry(self.name, self.labels)

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.expr})"


def entry(name: str, labels: tuple[sp.Expr, ...]) -> sp.Expr:
    """``name[labels]``; a scalar node is a plain (real) Symbol."""
    if not labels:
        return Symbol(name, real=True)
    return Indexed(IndexedBase(name), *labels)


def atom_name(a: sp.Expr) -> str | None:
    """Name of the node an atom refers to (Indexed or scalar Symbol)."""
    if isinstance(a, Indexed):
        return a.base.label.name
    if isinstance(a, Symbol) and a.is_real and a.is_integer is not True:
        return a.name  # a scalar value; labels are integer, IndexedBase labels have no assumptions
    return None


class Labels:
    """Index labels for every dim: free ones (``i``, ``i2``) and bound ones (``i_1``, ``i_2``).

    Labels avoid every name the spec uses, so printed expressions stay unambiguous.
    """

    POOL = "bijknqrsuvwacefghp"

    def __init__(self, dims: dict[str, sp.Expr], taken: set[str]) -> None:
        self.sizes = dict(dims)
        self.letter: dict[str, str] = {}
        free_letters = [c for c in self.POOL if c not in taken]
        extra = (f"i{n}" for n in itertools.count(1))
        for dim in dims:
            if free_letters:
                self.letter[dim] = free_letters.pop(0)
            else:
                self.letter[dim] = next(e for e in extra if e not in taken)
        self.by_symbol: dict[Symbol, str] = {}

    def _sym(self, name: str, dim: str) -> Symbol:
        s = Symbol(name, integer=True)
        self.by_symbol[s] = dim
        return s

    def free(self, dim: str, occurrence: int = 0) -> Symbol:
        suffix = "" if occurrence == 0 else str(occurrence + 1)
        return self._sym(self.letter[dim] + suffix, dim)

    def bound(self, dim: str, n: int) -> Symbol:
        return self._sym(f"{self.letter[dim]}_{n}", dim)

    def dim_of(self, label: Symbol) -> str:
        return self.by_symbol[label]

    def size(self, dim: str | int) -> sp.Expr:
        return sp.Integer(dim) if isinstance(dim, int) else self.sizes[dim]

    def for_dims(self, dims: tuple[str | int, ...]) -> tuple[Symbol, ...]:
        """Own labels of a node with these dims (a repeated dim gets ``i``, ``i2``, ...)."""
        seen: dict[str, int] = {}
        out = []
        for d in dims:
            key = self.int_dim(d) if isinstance(d, int) else d
            out.append(self.free(key, seen.get(key, 0)))
            seen[key] = seen.get(key, 0) + 1
        return tuple(out)

    def int_dim(self, n: int) -> str:
        """Integer sizes in shapes act as anonymous dims named ``_n``."""
        key = f"_{n}"
        if key not in self.sizes:
            self.sizes[key] = sp.Integer(n)
            self.letter[key] = self._next_letter()
        return key

    def _next_letter(self) -> str:
        used = set(self.letter.values())
        for n in itertools.count(1):
            cand = f"a{n}"
            if cand not in used:
                return cand
        raise AssertionError  # pragma: no cover


@dataclass
class Graph:
    """A network: nodes in topological order plus the declared loss.

    Build one with :class:`derive.build.Builder` (from Python or from a spec).
    """

    name: str
    description: str
    dims: dict[str, int | None]
    labels: Labels
    nodes: list[Node]
    inputs: dict[str, Node]
    params: dict[str, Node]
    constants: dict[str, float]
    input_kinds: dict[str, str]
    loss: Node
    reduction: str
    batch_size: Symbol
    lines: dict[str, int] = field(default_factory=dict)
    file: str | None = None
    sha256: str = ""
    param_init: dict[str, str | float | None] = field(default_factory=dict)

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for a in n.args:
                out[a.name].append(n)
        return out

    def on_loss_path(self) -> set[str]:
        """Names of the nodes the loss depends on (through differentiable edges)."""
        keep = {self.loss.name}
        for n in reversed(self.nodes):
            if n.name in keep and not n.nograd:
                keep.update(a.name for a in n.args)
        return keep

    def error(self, message: str, name: str | None = None, hint: str | None = None) -> SpecError:
        return SpecError(message, file=self.file, line=self.lines.get(name or ""), hint=hint)


def split_sum(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr, tuple]:
    """``coeff * Sum(body, *limits)`` -> (coeff, body, limits); a pointwise expr has no limits."""
    coeff, rest = sp.S.One, expr
    if isinstance(expr, sp.Mul):
        sums = [a for a in expr.args if isinstance(a, Sum)]
        if len(sums) == 1:
            rest = sums[0]
            coeff = sp.Mul(*[a for a in expr.args if a is not rest])
    if isinstance(rest, Sum):
        return coeff, rest.function, rest.limits
    return sp.S.One, expr, ()
