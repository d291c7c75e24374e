"""The op table: one :class:`Op` record per built-in op, read by every stage.

A record holds the op's signature (positional ``args``, keyword ``kwargs`` with defaults),
what it is (``kind``), its math, and how each output spells it:

* elementwise ops: ``definition(sp, z, *params)`` builds the SymPy expression (``sp`` is
  the ``sympy`` module, passed in so that this table stays importable without SymPy) or
  ``sympy`` names SymPy's own function (``exp``, ``Abs``); their derivatives always come
  from ``sympy.diff`` of the definition;
* composite ops: ``macro``, statements in the spec language (the last is the result);
* ``numpy``: the emitted code as a format string over the argument names (``{z}``, or
  ``{z_factor}`` parenthesised as a factor), and ``numpy_helper`` the source of a stable
  module-level helper it calls (``_sigmoid``), emitted once when used;
* ``latex``: the operator's LaTeX (``\\sigma``, ``\\operatorname{softplus}``); None where
  SymPy's own LaTeX is the lecture's (``e^{z}``, ``\\sqrt{z}``, ``|z|``).

The records live in one file per family (:mod:`derive.ops.elementwise`,
:mod:`derive.ops.piecewise`, :mod:`derive.ops.reductions`, :mod:`derive.ops.composite`);
a new op is one record in one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class OpKind(Enum):
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    BATCH = "batch"
    MASK = "mask"  # dropout: the value times a random mask input
    MACRO = "macro"


@dataclass(frozen=True)
class Op:
    """One built-in op (see the module docstring for each field)."""

    name: str
    kind: OpKind
    args: tuple[str, ...]
    kwargs: dict[str, float | None] = field(default_factory=dict)
    doc: str = ""
    definition: Callable[..., Any] | None = None
    sympy: str | None = None
    macro: tuple[tuple[str, str], ...] = ()
    numpy: str | None = None
    numpy_helper: str | None = None
    latex: str | None = None
    check_params: Callable[[list[Any]], list[Any]] | None = None
    """For ops with conventions (f'(0) at a kink): the parameters' values in, the values
    the SymPy function takes out; raises ``ValueError(message, hint)`` when they are invalid."""

    def signature(self, name: str | None = None) -> str:
        """The whole call signature with defaults: ``leaky_relu(z, slope=0.01, at_zero=1)``."""
        params = [f"{k}={_number(v)}" for k, v in self.kwargs.items()]
        return f"{name or self.name}({', '.join([*self.args, *params])})"

    @property
    def helper_name(self) -> str | None:
        """The name of the module-level helper the NumPy spelling calls, if any."""
        if self.numpy_helper is None:
            return None
        return self.numpy_helper.split("(", 1)[0].removeprefix("def ").strip()


def _number(v: float | None) -> str:
    return "None" if v is None else f"{v:g}"


ORDER = [
    "exp",
    "log",
    "sqrt",
    "abs",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "softplus",
    "sum",
    "mean",
    "max",
    "softmax",
    "log_softmax",
    "squared_error",
    "cross_entropy",
    "softmax_cross_entropy",
    "binary_cross_entropy",
    "bce_with_logits",
    "l1",
    "l2",
    "batch_mean",
    "batchnorm",
    "dropout",
    "argmax",
]
"""How messages list the ops (by family); ops missing here follow in their files' order."""


def _load() -> dict[str, Op]:
    from derive.ops import composite, elementwise, piecewise, reductions

    ops = [*elementwise.OPS, *piecewise.OPS, *reductions.OPS, *composite.OPS]
    rank = {name: k for k, name in enumerate(ORDER)}
    ops.sort(key=lambda op: rank.get(op.name, len(ORDER)))
    return {op.name: op for op in ops}


BUILTIN_OPS: dict[str, Op] = _load()
"""Every built-in op by name, in the order the families list them."""


def elementwise_ops() -> list[Op]:
    return [op for op in BUILTIN_OPS.values() if op.kind is OpKind.ELEMENTWISE]


DERIVED_FUNCTIONS: dict[str, Op] = {
    "sign": Op(
        "sign",
        OpKind.ELEMENTWISE,
        ("z",),
        doc="sign of z (the derivative of abs)",
        sympy="sign",
        numpy="np.sign({z})",
        latex=r"\operatorname{sign}",
    )
}
"""Functions ``sympy.diff`` introduces that are not ops a spec can call, with their spellings."""
