"""Batch norm's running statistics: which nodes evaluation mode replaces.

``batchnorm(z, gamma, beta, eps=eps)`` normalizes with the batch's statistics,
``z_c = z - mu_B`` and ``std = sqrt(var_B + eps)``.  In evaluation the generated module
uses running estimates instead, ``z_c = z - mu_run`` and ``std = sqrt(var_run + eps)``,
updated in training as ``run = (1 - momentum) run + momentum stat_B`` with the unbiased
batch variance ``Σ_b z_c² / (m - 1)`` (PyTorch's convention).  The derivation is that of
training; evaluation only swaps the two statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.graph.nodes import Node

RUNNING = "running_stats"
"""``Node.meta`` key of the std node of a batch norm, holding its :class:`RunningStats`."""


@dataclass(frozen=True, eq=False)
class RunningStats:
    """One batch norm layer: its input ``z``, its centered value and its std.

    The nodes, not their names: a nested argument is renamed after the call is built.
    """

    z: Node
    z_centered: Node
    std_node: Node
    eps: sp.Expr

    @property
    def input(self) -> str:
        return self.z.name

    @property
    def centered(self) -> str:
        return self.z_centered.name

    @property
    def std(self) -> str:
        return self.std_node.name


def tag_running_stats(z: Node | None, body: list[Node], eps: sp.Expr) -> None:
    """Record the layer on its std node (``body``: the nodes the macro made, by local name)."""
    local = {n.meta.get("local"): n for n in body}
    centered, std = local.get("z_centered"), local.get("std")
    if z is None or centered is None or std is None:
        return
    std.meta[RUNNING] = RunningStats(z, centered, std, eps)
