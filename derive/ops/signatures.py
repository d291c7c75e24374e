"""Names and call signatures of the built-in ops (their math lives in :mod:`derive.ops.functions`).

Kept apart from the math so that the spec reader can check calls without importing SymPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpSig:
    """Positional argument names and keyword arguments with their defaults."""

    args: tuple[str, ...]
    kwargs: dict[str, float] = field(default_factory=dict)
    doc: str = ""


BUILTIN_OPS: dict[str, OpSig] = {
    # elementwise
    "exp": OpSig(("z",), doc="e^z"),
    "log": OpSig(("z",), doc="natural logarithm"),
    "sqrt": OpSig(("z",), doc="square root"),
    "abs": OpSig(("z",), doc="|z|"),
    "sigmoid": OpSig(("z",), doc="1/(1+e^-z)"),
    "tanh": OpSig(("z",), doc="hyperbolic tangent"),
    "relu": OpSig(("z",), {"at_zero": 0.0}, doc="max(z, 0); at_zero is f'(0)"),
    "leaky_relu": OpSig(
        ("z",), {"slope": 0.01, "at_zero": 1.0}, doc="z if z > 0 else slope*z; at_zero is f'(0)"
    ),
    "softplus": OpSig(("z",), doc="log(1 + e^z)"),
    # reductions over the last (feature) axis of one example
    "sum": OpSig(("a",), doc="sum over the last axis"),
    "mean": OpSig(("a",), doc="mean over the last axis"),
    "softmax": OpSig(("f",), doc="e^f_j / sum_k e^f_k over the last axis"),
    "log_softmax": OpSig(("f",), doc="f_j - log sum_k e^f_k over the last axis"),
    # losses (one example; the [loss] reduction handles the batch)
    "squared_error": OpSig(("yhat", "y"), doc="sum((yhat - y)**2)"),
    "cross_entropy": OpSig(("p", "t"), doc="-sum(t*log(p))"),
    "softmax_cross_entropy": OpSig(("f", "t"), doc="cross_entropy(softmax(f), t)"),
    "binary_cross_entropy": OpSig(("yhat", "y"), doc="-(y log yhat + (1-y) log(1-yhat))"),
    "bce_with_logits": OpSig(("z", "y"), doc="binary_cross_entropy(sigmoid(z), y)"),
    "l1": OpSig(("w",), doc="sum(abs(w)) over every entry"),
    "l2": OpSig(("w",), doc="sum(w**2) over every entry"),
    # batch-coupled
    "batch_mean": OpSig(("a",), doc="mean over the batch axis"),
    "batchnorm": OpSig(("z", "gamma", "beta"), {"eps": 1e-5}, doc="batch normalization"),
    # no derivative: rejected on a path to the loss
    "argmax": OpSig(("a",), doc="index of the largest entry (not differentiable)"),
}


HELPER_OPS = frozenset({"max", "total", "size", "stop"})
"""Helpers the built-in macros call (softmax's max shift, l1/l2's total, mean's size, the
gradient stop); a spec cannot call them, and an [ops] entry cannot take their names."""


RESERVED_NAMES = frozenset(
    {
        # the generated module's API and constants, visible inside forward and backward
        "np",
        "params",
        "batch",
        "cache",
        "g_loss",
        "forward",
        "backward",
        "loss_and_grad",
        "init_params",
        "NAME",
        "LOSS",
        "REDUCTION",
        "DIMS",
        "INPUTS",
        "PARAMS",
        # a Python name the generated module calls at module level
        "ValueError",
    }
)
"""Names a spec may not declare; ``g_`` and ``_`` prefixes are reserved too (gradients, helpers)."""


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be declared, or None when it can."""
    if name.startswith("g_"):
        return "names starting with 'g_' are reserved for gradients (g_X is dL/dX)"
    if name in RESERVED_NAMES:
        return f"'{name}' is used by the generated module itself"
    return None
