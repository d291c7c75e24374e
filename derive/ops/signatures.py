"""Names and call signatures of the built-in ops (their math lives in :mod:`derive.ops.functions`).

Kept apart from the math so that the spec reader can check calls without importing SymPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from derive.lang.naming import is_gradient_name

T = TypeVar("T")


@dataclass(frozen=True)
class OpSig:
    """Argument names (values the op works on) and parameters with their defaults.

    Parameters follow the arguments, positionally or by keyword, as in NumPy and PyTorch:
    ``leaky_relu(z, 0.1)`` is ``leaky_relu(z, slope=0.1)``.
    """

    args: tuple[str, ...]
    kwargs: dict[str, float | None] = field(default_factory=dict)
    doc: str = ""

    def signature(self, name: str) -> str:
        """The whole call signature with defaults: ``leaky_relu(z, slope=0.01, at_zero=1)``."""
        params = [f"{k}={_number(v)}" for k, v in self.kwargs.items()]
        return f"{name}({', '.join([*self.args, *params])})"


def _number(v: float | None) -> str:
    return "None" if v is None else f"{v:g}"


class BindError(ValueError):
    """A call whose values do not fit the op's signature; ``index`` is the offending keyword."""

    def __init__(self, message: str, index: int | None = None, unknown: bool = False) -> None:
        super().__init__(message)
        self.message, self.index, self.unknown = message, index, unknown


def bind(
    name: str,
    args: Sequence[str],
    params: Sequence[str],
    positional: Sequence[T],
    keywords: Sequence[tuple[str, T]],
) -> tuple[list[T], dict[str, T]]:
    """Match a call's values to an op's ``args`` then ``params``, as Python binds a call.

    Positional values fill the arguments, then the parameters in order; keywords name
    either.  Returns the argument values in order and the parameters given (by name).
    Raises :class:`BindError` for too many values, an unknown or repeated keyword, or a
    missing argument.
    """
    names = [*args, *params]
    n = len(args)
    plural = "argument" if n == 1 else "arguments"
    takes = f"{name}() takes {n} positional {plural} ({', '.join(args)})"
    if len(positional) > len(names):
        more = f" and {len(params)} parameters ({', '.join(params)})" if params else ""
        raise BindError(f"{takes}{more}, got {len(positional)}")
    bound: dict[str, T] = dict(zip(names, positional, strict=False))
    for k, (key, value) in enumerate(keywords):
        if key not in names:
            raise BindError(f"{name}() has no keyword '{key}'", k, unknown=True)
        if key in bound:
            raise BindError(f"{name}() got '{key}' twice (by position and by keyword)", k)
        bound[key] = value
    if any(a not in bound for a in args):
        raise BindError(f"{takes}, got {len(positional)}")
    return [bound[a] for a in args], {p: bound[p] for p in params if p in bound}


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
    # reductions over the per-example axes (never the batch axis), as NumPy's
    "sum": OpSig(("a",), {"axis": None}, doc="sum over every per-example axis, or over axis"),
    "mean": OpSig(("a",), {"axis": None}, doc="mean over every per-example axis, or over axis"),
    "max": OpSig(
        ("a",), {"axis": None}, doc="largest entry over every axis or axis (not differentiable)"
    ),
    "softmax": OpSig(("f",), {"axis": -1}, doc="e^f_j / sum_k e^f_k along axis (the last)"),
    "log_softmax": OpSig(("f",), {"axis": -1}, doc="f_j - log sum_k e^f_k along axis (the last)"),
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
    "dropout": OpSig(
        ("h",),
        {"drop": 0.5},
        doc="inverted dropout: zero with probability drop, else h / (1 - drop); identity in eval",
    ),
    # no derivative: rejected on a path to the loss
    "argmax": OpSig(
        ("a",), {"axis": -1}, doc="index of the largest entry along axis (not differentiable)"
    ),
}


HELPER_OPS = frozenset({"max", "total", "size", "stop"})
"""Names the built-in macros rely on (softmax's max shift, l1/l2's total, the gradient stop);
an [ops] entry cannot take them.  Of these only ``max`` may be called from a spec."""


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
        "DROPOUT",
        "with_dropout",
        # the mode arguments of a dropout module's forward (a constant of that name would be
        # shadowed inside it)
        "train",
        "seed",
        # Python built-ins the generated module reads (a spec name would shadow them)
        "ValueError",
        "bool",
        "dict",
        "isinstance",
        "len",
        "next",
        "str",
        "zip",
    }
)
"""Names a spec may not declare; ``g_`` and ``_`` prefixes are reserved too (gradients, helpers)."""


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be declared, or None when it can."""
    if is_gradient_name(name):
        return "names starting with 'g_' are reserved for gradients (g_X is dL/dX)"
    if name in RESERVED_NAMES:
        return f"'{name}' is used by the generated module itself"
    return None
