"""The default upstream adjoint: one scalar weight instead of an array of equal weights.

``backward(..., g_loss=None)`` weighs every example alike: ``g_L[b] = 1/m`` for a mean,
``1`` for a sum.  The lines that read ``g_L`` are emitted twice, once with that scalar in
place of ``g_L[b]`` (no array of weights, no broadcast: what a hand-written step does) and
once as derived, for a ``g_loss`` the caller gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sympy as sp
from sympy import Indexed

from derive.autodiff.adjoint import Derivation, adjoint_atom
from derive.emit.lines import Line
from derive.graph.nodes import Node, atom_name

if TYPE_CHECKING:
    from derive.emit.numpy_module import Module


def split_seed(mod: Module, d: Derivation, reprint: Callable[[sp.Expr, Node], str]) -> None:
    """Move the backward lines up to the last reader of ``g_L`` into both branches.

    ``reprint(expr, node)`` prints an adjoint's expression as the node's array.  Lines
    that are not whole adjoints (sums hoisted out of a ``np.where``) keep one path.
    """
    graph = d.graph
    atom = adjoint_atom(graph.loss)
    base = atom.base if isinstance(atom, Indexed) else atom

    def is_seed(a: sp.Basic) -> bool:
        return a.base == base if isinstance(a, Indexed) else a == atom

    reads = [k for k, ln in enumerate(mod.backward) if ln.expr is not None and ln.expr.has(base)]
    if not reads or reads != list(range(len(reads))):
        return  # only a first run of readers: a weight decay's g_W would copy the whole pass
    prefix = mod.backward[: len(reads)]
    if any(ln.node is None or ln.expr is None for ln in prefix):
        return
    weight = 1 / graph.batch_size if graph.reduction == "mean" else sp.Integer(1)
    values = ({n.name for n in graph.nodes} | set(mod.cache)) - set(graph.inputs)
    unit = []
    for ln in prefix:
        expr = ln.expr.replace(is_seed, lambda _a: weight)
        expr = expr.replace(
            lambda e: isinstance(e, sp.Sum) and not e.function.has(Indexed), lambda e: e.doit()
        )
        if not _anchored(expr, values):
            return  # 1/m * (z > 0) would be float64 in a float32 run, m alone a Python int
        unit.append(Line(ln.target, reprint(expr, ln.node), ln.math, ln.shape))
    mod.unit_seed = unit
    mod.seeded = [Line(ln.target, ln.code, "", ln.shape) for ln in prefix]
    del mod.backward[: len(prefix)]


def _anchored(expr: sp.Expr, values: set[str]) -> bool:
    """Whether ``expr``'s array takes the data's float dtype from a computed value or a
    parameter in it (``values``; not only masks, numbers, sizes and inputs) once ``g_L``
    is a number."""
    if isinstance(expr, Indexed | sp.Symbol):
        return (atom_name(expr) or "") in values
    if isinstance(expr, sp.Piecewise):
        parts = [value for value, _cond in expr.args]
    elif isinstance(expr, sp.Sum):
        parts = [expr.function]
    else:
        parts = list(expr.args)
    return any(_anchored(a, values) for a in parts if isinstance(a, sp.Expr))
