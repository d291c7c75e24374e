"""The records a derivation produces: one :class:`Adjoint` per named value, the whole
:class:`Derivation`, and which values get a named adjoint (``g_X`` is ``∂L/∂X``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.autodiff.steps import Step
from derive.graph.nodes import Graph, Node, entry
from derive.lang.naming import gradient_name


def adjoint_name(name: str) -> str:
    """The adjoint's name: ``g_X`` for ``∂L/∂X``."""
    return gradient_name(name)


def adjoint_atom(node: Node) -> sp.Expr:
    return entry(adjoint_name(node.name), node.labels)


@dataclass
class Adjoint:
    """The derived adjoint ``∂L/∂node`` of one named value or parameter."""

    node: Node
    expr: sp.Expr
    raw: sp.Expr
    steps: list[Step] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)  # named adjoints this one reads


@dataclass
class Derivation:
    """Every named adjoint of a graph, in the order code computes them."""

    graph: Graph
    adjoints: dict[str, Adjoint]
    local_steps: dict[str, list[Step]]  # local derivatives met on the way to each value
    # the chain rule with the adjoints of unnamed values as atoms (batch norm's ∂L/∂x̂, ∂L/∂μ),
    # for every value whose adjoint passed through unnamed ones, in the order backprop runs
    internal: dict[str, Step] = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        from derive.tex import markdown

        return markdown(self)

    def _repr_latex_(self) -> str:
        from derive.tex import latex

        return latex(self)

    @property
    def unused_params(self) -> list[str]:
        """Parameters the loss does not depend on (their gradient is zero)."""
        return [name for name in self.graph.params if name not in self.adjoints]

    def needed(self) -> list[str]:
        """Named adjoints the parameter gradients depend on, in computation order."""
        need = set(self.graph.params)
        for name in reversed(list(self.adjoints)):
            if name in need:
                need.update(self.adjoints[name].uses)
        return [n for n in self.adjoints if n in need]


def constant_input(graph: Graph, node: Node) -> bool:
    """Targets and labels (one-hot, probability, binary inputs) get no adjoint."""
    return node.kind == "input" and graph.input_kinds.get(node.name, "real") != "real"


def staged(graph: Graph, node: Node, path: set[str]) -> bool:
    """Whether an unnamed value's adjoint is computed once and named (``g_z_h1``).

    True for values outside op definitions whose adjoint reaches two or more
    arguments (the pre-activation ``W x + b`` feeds both ``W`` and ``b``).
    """
    if node.user or node.expr is None:
        return False
    if node.meta.get("stage"):
        return True
    if node.meta.get("macro"):
        return False
    fan_out = [a for a in node.args if a.name in path and not a.nograd]
    return len(fan_out) >= 2 and node.kind == "pointwise"
