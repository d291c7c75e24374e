"""What reading a spec produces: the checked :class:`Spec` and its declarations."""

from __future__ import annotations

from dataclasses import dataclass, field

from derive.lang.expr import Expr


@dataclass(frozen=True)
class TensorDecl:
    """An input or a param; ``kind`` is ``"param"`` for params."""

    name: str
    shape: tuple[str | int, ...]
    kind: str
    init: str | float | None
    line: int | None


@dataclass(frozen=True)
class OpDecl:
    """A custom op: positional ``args`` and a body expression."""

    name: str
    args: tuple[str, ...]
    expr: Expr
    text: str
    line: int | None


@dataclass(frozen=True)
class Equation:
    """One staged forward equation ``name = expr``."""

    name: str
    expr: Expr
    text: str
    line: int | None


@dataclass(frozen=True)
class Penalty:
    """A declared penalty on one parameter w: ``l2`` adds (c/2)||w||², ``l1`` adds c||w||₁."""

    param: str
    kind: str
    coefficient: float
    line: int | None


@dataclass(frozen=True)
class Spec:
    """A checked network spec.

    ``lines`` maps every declared name to its line, and ``"loss"`` to the line of the
    ``[loss]`` output, unless a declared name is itself ``loss`` (then it keeps its own line).
    """

    file: str
    name: str
    description: str
    dims: dict[str, int | None]
    inputs: dict[str, TensorDecl]
    params: dict[str, TensorDecl]
    constants: dict[str, float]
    ops: dict[str, OpDecl]
    forward: tuple[Equation, ...]
    loss: str
    reduction: str
    lines: dict[str, int]
    sha256: str
    source: str
    latex: dict[str, str] = field(default_factory=dict)  # [latex] name -> how derive tex writes it
    penalties: tuple[Penalty, ...] = ()
