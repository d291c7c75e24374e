"""Inverted dropout as a mask input: ``dropout(h, drop=p)`` is ``h * m`` with ``m`` a new input.

In training the generated module draws ``m = 1/(1 - p)`` with probability ``1 - p`` and
``m = 0`` with probability ``p`` (``p`` is the *drop* probability), so
``E[h'] = h ((1 - p) / (1 - p) + p 0) = h``; in evaluation ``m = 1`` and the layer is the
identity. Because the mask is an input of the graph, the gradient through the layer is
derived like every other (``d(h m)/dh = m``: the same mask, forward and backward) and
the checks treat the mask as data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

if TYPE_CHECKING:
    from derive.graph.builder import Builder
    from derive.graph.tensor import Tensor

MASK_ROLE = "dropout_mask"


def mask_expectation(drop: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """E[m] written out over the mask's two outcomes, and SymPy's value of it.

    ``m = 1/(1 - p)`` with probability ``1 - p``, ``m = 0`` with probability ``p``:
    ``E[m] = (1 - p) (1/(1 - p)) + p 0``, which SymPy reduces to 1.
    """
    keep = sp.Add(1, -drop, evaluate=False)
    outcomes = sp.Add(
        sp.Mul(keep, sp.Pow(keep, -1, evaluate=False), evaluate=False),
        sp.Mul(drop, 0, evaluate=False),
        evaluate=False,
    )
    keep_value = 1 - drop
    return outcomes, sp.simplify(keep_value * (1 / keep_value) + drop * 0)


def add_dropout(b: Builder, h: Tensor, drop: object) -> Tensor:
    """``h * mask`` with a fresh mask input shaped like one example of ``h``."""
    value = b.lift(drop).expr
    numeric = value.xreplace({sp.Symbol(c, real=True): v for c, v in b.constants.items()})
    if not (numeric.is_number and 0 <= float(numeric) < 1):
        raise b.error(
            f"dropout: drop must be a probability in [0, 1), got {value}",
            "drop is the probability of zeroing a unit, e.g. dropout(h1, drop=0.5)",
        )
    if not h.batched:
        raise b.error("dropout() needs a value with one entry per example")
    node = b.node_of(h)
    stem = f"mask_{node.name}" if node is not None else "mask"
    mask = b.input(b.fresh(stem), h.example_dims, "real")
    leaf = b.nodes[-1]
    leaf.meta["role"] = MASK_ROLE
    leaf.meta["drop"] = float(numeric)
    leaf.meta["of"] = node.name if node is not None else None
    return h * mask
