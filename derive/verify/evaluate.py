"""The concrete evaluator: a graph at tiny sizes, every entry a scalar SymPy expression.

Leaves become one real symbol per entry (``W1_0_1``); each computed node is evaluated
entry by entry with its sums unrolled, so the loss is one written-out scalar expression.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.graph.nodes import BATCH, Graph, Node, atom_name
from derive.ops.functions import written_out


# ----- the graph at concrete sizes ----------------------------------------------------------
def tiny_sizes(graph: Graph, default: int = 2) -> dict[str, int]:
    """Sizes for the written-out check: 2 per dim, a batch of 2 (3 when examples interact)."""
    coupled = any(
        graph.labels.dim_of(lim[0]) == BATCH
        for n in graph.nodes
        if n.expr is not None
        for total in n.expr.atoms(Sum)
        for lim in total.limits
    )
    sizes = {BATCH: 3 if coupled else 2}
    for dim in graph.labels.sizes:
        if dim != BATCH:
            v = graph.labels.sizes[dim]
            sizes[dim] = int(v) if v.is_Integer else default
    return sizes


def instantiate_graph(graph: Graph, sizes: dict[str, int]) -> tuple[dict, dict]:
    """Every node as an object array of scalar SymPy expressions; leaves are symbols.

    Values under ``stop`` (the max shift of softmax) do not change the result, so they
    are taken as 0.
    """
    consts = {Symbol(c, real=True): sp.Float(v) for c, v in graph.constants.items()}
    env0 = {**size_substitution(graph, sizes), **consts}
    values: dict[str, np.ndarray] = {}
    leaves: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        shape = tuple(sizes[_dim_key(graph, d)] for d in node.dims)
        if node.expr is None:
            arr = np.empty(shape, dtype=object)
            for idx in itertools.product(*map(range, shape)):
                arr[idx] = Symbol(f"{node.name}_{'_'.join(map(str, idx))}", real=True)
            leaves[node.name] = values[node.name] = arr
        elif node.nograd:
            values[node.name] = np.zeros(shape, dtype=object)
        else:
            values[node.name] = _evaluate_node(node, values, shape, env0)
    return values, leaves


def _dim_key(graph: Graph, d: str | int) -> str:
    return graph.labels.int_dim(d) if isinstance(d, int) else d


def size_substitution(graph: Graph, sizes: dict[str, int]) -> dict:
    return {sym: sizes[d] for d, sym in graph.labels.sizes.items() if isinstance(sym, Symbol)}


def _evaluate_node(node: Node, values: dict, shape: tuple, env0: dict) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    expr = written_out(node.expr).xreplace(env0)
    for idx in itertools.product(*map(range, shape)):
        env = {lab: i + 1 for lab, i in zip(node.labels, idx, strict=True)}
        arr[idx] = _evaluate(expr, env, values)
    return arr


def _evaluate(e: sp.Expr, env: dict, values: dict) -> sp.Expr:
    """Scalar value of an index expression at concrete labels ``env`` (sums unrolled)."""
    if isinstance(e, Indexed):
        idx = tuple(int(sp.sympify(i).xreplace(env)) - 1 for i in e.indices)
        return values[e.base.label.name][idx]
    if isinstance(e, Symbol):
        name = atom_name(e)
        if name in values:
            return values[name][()]
        return e
    if isinstance(e, Sum):
        total = sp.S.Zero
        ranges = [range(1, int(hi) + 1) for _, _, hi in e.limits]
        for combo in itertools.product(*ranges):
            inner = {**env, **{lim[0]: v for lim, v in zip(e.limits, combo, strict=True)}}
            total += _evaluate(e.function, inner, values)
        return total
    if e.is_Atom:
        return e
    return e.func(*[_evaluate(a, env, values) for a in e.args])
