"""Reductions over per-example axes, as NumPy's: ``sum``, ``mean``, ``max``, ``argmax``.

Without ``axis`` a reduction takes every per-example axis (``sum(W**2)`` of a matrix is
one number); ``axis=k`` takes one, counted from 0 over the per-example axes, negative from
the end.  The batch axis is never one of them.  A reduction is one contraction node

    s[b, i] = c Σ_{j} a[b, i, j]        (axis=-1 of a per-example matrix)

and ``keepdims`` gives it back at the input's labels (``s[b, i]`` read at ``(b, i, j)``),
which is how softmax divides every row by its own sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp
from sympy import Sum

if TYPE_CHECKING:
    from derive.graph.builder import Builder
    from derive.graph.tensor import Tensor


def axes_of(b: Builder, a: Tensor, axis: object, op: str) -> list[int]:
    """Per-example axes that ``op(a, axis=axis)`` reduces (positions in ``a.example_dims``)."""
    rank = len(a.example_dims)
    if axis is None:
        return list(range(rank))
    value = b.lift(axis).expr
    shape = f"({', '.join(map(str, a.example_dims))})"
    if not (isinstance(value, sp.Integer) or (value.is_number and value == int(value))):
        raise b.error(
            f"{op}(): axis must be a whole number, got {value}",
            "axis counts the per-example axes from 0; -1 is the last",
        )
    k = int(value)
    if not -rank <= k < rank:
        raise b.error(
            f"{op}(): axis {k} is out of range for a value of per-example shape {shape}",
            f"per-example axes are 0..{rank - 1} (or -{rank}..-1); the batch axis is not one "
            "of them"
            if rank
            else "a per-example scalar has no axis to reduce; drop axis=",
        )
    return [k % rank]


def reduce(
    b: Builder,
    a: Tensor,
    axes: list[int],
    stem: str,
    *,
    coeff: sp.Expr = sp.S.One,
    kind: str = "contraction",
    keepdims: bool = False,
) -> Tensor:
    """``coeff Σ`` (or max/argmax) of ``a`` over the per-example ``axes``, as one node."""
    from derive.graph.tensor import Tensor

    if not axes:
        return Tensor(b, coeff * a.expr, a.dims) if coeff != 1 else a
    if kind != "contraction":
        a = b.materialize(a)
    offset = 1 if a.batched else 0
    gone = {k + offset for k in axes}
    out_dims = tuple(d for k, d in enumerate(a.dims) if k not in gone)
    out_labels = iter(b.labels.for_dims(out_dims))
    body_labels, limits, count = [], [], {}
    for k, d in enumerate(a.dims):
        if k in gone:
            key = d if isinstance(d, str) else b.labels.int_dim(d)
            count[key] = count.get(key, 0) + 1
            j = b.labels.bound(key, count[key])
            body_labels.append(j)
            limits.append((j, 1, b.labels.size(d)))
        else:
            body_labels.append(next(out_labels))
    body = b.relabel(a, body_labels)
    if kind == "contraction":
        out = b.contraction(body, limits, out_dims, coeff, stem)
    else:
        out = b.add_node(Sum(body, *limits), out_dims, stem, kind=kind, op=kind, nograd=True)
    if not keepdims:
        return out
    own = b.labels.for_dims(a.dims)
    return Tensor(b, b.relabel(out, [own[k] for k in range(len(a.dims)) if k not in gone]), a.dims)


def count(b: Builder, a: Tensor, axes: list[int]) -> sp.Expr:
    """How many entries ``axes`` of ``a`` hold (the divisor of a mean)."""
    return sp.Mul(*[b.labels.size(a.example_dims[k]) for k in axes])
