"""Reductions over per-example axes (as NumPy's, never the batch axis), over the batch, and
dropout (a random mask the generated module draws, one per batch)."""

from __future__ import annotations

from derive.ops.table import Op, OpKind

R = OpKind.REDUCTION

OPS = [
    Op("sum", R, ("a",), {"axis": None}, doc="sum over every per-example axis, or over axis"),
    Op("mean", R, ("a",), {"axis": None}, doc="mean over every per-example axis, or over axis"),
    Op(
        "max",
        R,
        ("a",),
        {"axis": None},
        doc="largest entry over every axis or axis (not differentiable)",
    ),
    Op("batch_mean", OpKind.BATCH, ("a",), doc="mean over the batch axis"),
    Op(
        "dropout",
        OpKind.MASK,
        ("h",),
        {"drop": 0.5},
        doc="inverted dropout: zero with probability drop, else h / (1 - drop); identity in eval",
    ),
    # no derivative: rejected on a path to the loss
    Op(
        "argmax",
        R,
        ("a",),
        {"axis": -1},
        doc="index of the largest entry along axis (not differentiable)",
    ),
]
