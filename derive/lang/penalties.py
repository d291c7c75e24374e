"""Penalties declared in a spec: ``l2`` and ``l1`` per parameter or as a default in [loss].

``l2 = c`` adds ``(c/2)||w||²`` to the loss (gradient ``c w``: weight decay), ``l1 = c``
adds ``c||w||₁`` (gradient ``c sign(w)``); both on one parameter make an elastic net. A
value in [loss] applies to every parameter with two or more axes, so biases (and batch
norm's scale and shift) are left out unless their own entry names a value; an entry's
own value overrides the default, and 0 turns a penalty off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from derive.lang.context import _Ctx, _is_number
from derive.lang.records import Penalty, TensorDecl

KINDS = ("l2", "l1")


def read_penalties(
    data: Mapping[str, Any], params: Mapping[str, TensorDecl], reduction: str, ctx: _Ctx
) -> tuple[Penalty, ...]:
    loss = data.get("loss", {})
    out = []
    for kind in KINDS:
        default = _value(loss, kind, ("loss",), ctx)
        for name, decl in params.items():
            own = _value(data["params"][name], kind, ("params", name), ctx)
            value = own if own is not None else (default if len(decl.shape) >= 2 else None)
            if value:
                at = ("params", name, kind) if own is not None else ("loss", kind)
                out.append(Penalty(name, kind, value, ctx.line(*at)))
    if out and reduction != "mean":
        raise ctx.error(
            'l1/l2 penalties need reduction = "mean": they join each example\'s loss, and '
            "the mean adds them once",
            ("loss", "reduction"),
            'use reduction = "mean", or write the penalty into the loss equation yourself',
        )
    return tuple(out)


def _value(table: Mapping[str, Any], kind: str, path: tuple[str, ...], ctx: _Ctx) -> float | None:
    if kind not in table:
        return None
    value = table[kind]
    if not _is_number(value) or value < 0:
        raise ctx.error(
            f"{'.'.join((*path, kind))} must be a number >= 0, not {value!r}",
            (*path, kind),
            f"e.g. {kind} = 1e-4",
        )
    return float(value)
