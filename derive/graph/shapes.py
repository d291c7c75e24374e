"""Broadcasting and contractions while building a graph (mixed into the Builder).

Shapes follow NumPy: right-aligned broadcasting of per-example dims, ``@`` on rank <= 2
operands, reductions over per-example axes; a batched value has the batch axis in front.
A contraction ``c Σ_J body`` becomes a node of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy import Sum

from derive.graph.nodes import BATCH
from derive.graph.reductions import axes_of, count, reduce
from derive.graph.tensor import Tensor
from derive.ops.functions import MACROS


class Shapes:
    """Broadcasting, contractions and reductions: the Builder's shape rules."""

    def relabel(self, t: Tensor, labels: Sequence[sp.Expr]) -> sp.Expr:
        """``t.expr`` with its own labels replaced by ``labels`` (same order as ``t.dims``)."""
        own = self.labels.for_dims(t.dims)
        return t.expr.xreplace(dict(zip(own, labels, strict=True)))

    def broadcast(self, ts: Sequence[Tensor], what: str) -> tuple[tuple, list[sp.Expr]]:
        """Right-aligned NumPy broadcasting of per-example dims; batch in front if any."""
        rank = max(len(t.example_dims) for t in ts)
        out: list[str | int | None] = [None] * rank
        for t in ts:
            ed = t.example_dims
            for k, d in enumerate(ed):
                pos = rank - len(ed) + k
                if out[pos] is None or out[pos] == 1:
                    out[pos] = d
                elif d not in (out[pos], 1):
                    raise self.error(
                        f"shape mismatch in '{what}': {self.describe(ts)} do not broadcast",
                        "per-example shapes align from the right and must agree "
                        "(check the declared shapes or transpose with .T)",
                    )
        dims = ((BATCH,) if any(t.batched for t in ts) else ()) + tuple(out)
        labels = self.labels.for_dims(dims)
        exprs = []
        for t in ts:
            ed = t.example_dims
            target = list(labels[len(dims) - len(ed) :])
            exprs.append(self.relabel(t, ([labels[0]] if t.batched else []) + target))
        return dims, exprs

    def describe(self, ts: Sequence[Tensor]) -> str:
        return " and ".join(f"({', '.join(map(str, t.example_dims))})" for t in ts)

    def pointwise(self, fn, a: Tensor, o: object, what: str) -> Tensor:
        ts = [a, self.lift(o)]
        dims, (ea, eo) = self.broadcast(ts, what)
        return Tensor(self, fn(ea, eo), dims)

    def contraction(
        self, body: sp.Expr, limits: list, dims: tuple, coeff: sp.Expr, stem: str
    ) -> Tensor:
        expr = coeff * Sum(body, *limits) if limits else coeff * body
        return self.add_node(expr, dims, stem, kind="contraction")

    def matmul(self, a: Tensor, c: Tensor) -> Tensor:
        a, c = self._operand(a), self._operand(c)
        ad, cd = a.example_dims, c.example_dims
        if not ad or not cd or len(ad) > 2 or len(cd) > 2:
            raise self.error(
                f"'@' needs operands of rank 1 or 2 per example, got {self.describe([a, c])}"
            )
        inner_a, inner_c = ad[-1], cd[0]
        if inner_a != inner_c:
            raise self.error(
                f"shape mismatch in '@': {self.describe([a, c])}: inner dims "
                f"'{inner_a}' and '{inner_c}' differ",
                "the last dim of the left operand must equal the first of the right; "
                "swap the operands, transpose one (.T) or fix the declared shapes",
            )
        batch = (BATCH,) if a.batched or c.batched else ()
        dims = (*batch, *ad[:-1], *cd[1:])
        labels = self.labels.for_dims(dims)
        key = inner_a if isinstance(inner_a, str) else self.labels.int_dim(inner_a)
        j = self.labels.bound(key, 1)
        lb = list(labels[: len(batch)])
        la = [*(lb if a.batched else []), *labels[len(batch) : len(batch) + len(ad) - 1], j]
        lc = [*(lb if c.batched else []), j, *labels[len(batch) + len(ad) - 1 :]]
        body = self.relabel(a, la) * self.relabel(c, lc)
        return self.contraction(body, [(j, 1, self.labels.size(inner_a))], dims, 1, "mm")

    def _operand(self, t: Tensor) -> Tensor:
        """A matmul operand as a node: ``k.T`` of a per-example matrix becomes ``k_T``."""
        if self.node_of(t) is not None:
            return t
        node = self.view_node(t)
        return self.materialize(t, f"{node.name}_T" if node is not None else "u")

    def transpose(self, a: Tensor) -> Tensor:
        if len(a.example_dims) != 2:
            return a
        dims = (*a.dims[:-2], a.dims[-1], a.dims[-2])
        labels = self.labels.for_dims(dims)
        own = list(labels)
        own[-2], own[-1] = own[-1], own[-2]
        return Tensor(self, self.relabel(a, own), dims)

    def reduction(self, op: str, a: Tensor, axis: object, keepdims: bool = False) -> Tensor:
        """``sum``, ``mean``, ``max`` or ``argmax`` of ``a`` over ``axis`` (None: every axis)."""
        axes = axes_of(self, a, axis, op)
        if op == "mean":
            return reduce(self, a, axes, "mean", coeff=1 / count(self, a, axes), keepdims=keepdims)
        if op in ("max", "argmax"):
            if op == "argmax" and len(axes) > 1:
                raise self.error("argmax(): give one axis", "e.g. argmax(a, axis=-1)")
            stem = "c" if self._macro_ops and self._macro_ops[-1] in MACROS else op
            return reduce(self, a, axes, stem, kind=op, keepdims=keepdims)
        return reduce(self, a, axes, "s" if op == "sum" else "tot", keepdims=keepdims)

    def batch_mean(self, a: Tensor) -> Tensor:
        if not a.batched:
            raise self.error("batch_mean() of a value with no batch axis")
        j = self.labels.bound(BATCH, 1)
        dims = a.dims[1:]
        body = self.relabel(a, [j, *self.labels.for_dims(dims)])
        return self.contraction(body, [(j, 1, self.batch_size)], dims, 1 / self.batch_size, "mu")
