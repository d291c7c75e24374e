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

from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, IndexedBase, Sum, Symbol

from derive.errors import SpecError
from derive.graph.labels import Labels

BATCH = "batch"
"""Name of the batch axis in ``Node.dims``."""


@dataclass(eq=False)
class Node:
    """One value of the network.

    ``kind`` is ``input``, ``param``, ``pointwise``, ``contraction``, or ``max`` /
    ``argmax`` (reductions with no derivative).  ``expr`` is the defining index expression
    in this node's own ``labels`` (None for leaves).  ``user`` marks names the author wrote
    (their adjoints stay named); ``op`` is the op that produced the node (for stable
    emission and for display); ``nograd`` marks values the derivative does not flow
    through (``stop``).

    ``meta`` keys: ``text`` (the spec equation), ``macro`` (the built-in or custom op whose
    body made the node), ``stage`` (its adjoint is named: an op's argument or result at
    the top of an equation), ``preactivation`` (an op's unnamed argument: ``W @ x + b``
    in ``sigmoid(W @ x + b)``, ``x + w`` in ``bce_with_logits(x + w, t)``; named ``z_L``),
    ``role`` (``scale``: batch norm's gamma starts at ones), ``no_derivative``, ``line``
    and ``where`` (a user's max/argmax, rejected on the loss path).
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


@dataclass
class Graph:
    """A network: nodes in topological order plus the declared loss.

    Build one with :class:`derive.graph.builder.Builder` (from Python or from a spec).
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
