"""Declared penalties joined to the loss as ordinary graph nodes, so their gradients are derived.

``J = L + Σ (c/2) l2(w) + Σ c l1(w)``: every example's loss gains the penalty, and the mean
over the batch adds it once, so ``dJ/dw`` gains ``c w`` (l2) or ``c sign(w)`` (l1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from derive.graph.builder import Builder
    from derive.graph.tensor import Tensor
    from derive.lang.records import Spec


def add_penalties(b: Builder, spec: Spec, env: dict[str, Tensor]) -> str:
    """Build ``J`` (a fresh name) from the spec's loss and penalties; return its name."""
    total = env[spec.loss]
    for pen in spec.penalties:
        b.where = pen.param
        coeff = b.constant(b.fresh(f"{pen.kind}_{pen.param}"), pen.coefficient)
        norm = b.call(pen.kind, env[pen.param])
        total = total + (coeff / 2 * norm if pen.kind == "l2" else coeff * norm)
    name = b.fresh("J")
    b.where = "loss"
    b.lines[name] = b.lines.get("loss", 0)
    b.let(name, total)
    return name
