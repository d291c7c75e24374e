"""The SymPy cross-check: emitted backward vs direct differentiation of the written-out loss.

The graph is instantiated at tiny concrete sizes (:mod:`derive.verify.evaluate`), every
entry its own SymPy symbol, the weighted loss written out as one scalar expression,
differentiated by ``sympy.diff`` and compared with the emitted backward at random points
(numerically: exact zero-equivalence of such expressions costs tens of seconds each).
It is independent of the finite differences in :mod:`derive.verify.finite_diff`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from derive.graph.nodes import BATCH, Graph
from derive.verify.evaluate import _dim_key, instantiate_graph, tiny_sizes
from derive.verify.module import random_input
from derive.verify.report import SymbolicResult


def symbolic_check(graph: Graph, module: Any, *, seed: int = 0, points: int = 3) -> SymbolicResult:
    """Emitted backward vs ``sympy.diff`` of the fully written-out weighted loss."""
    sizes = tiny_sizes(graph)
    values, leaves = instantiate_graph(graph, sizes)
    rng = np.random.default_rng(seed + 1)
    weights = rng.uniform(0.5, 1.5, sizes[BATCH])
    loss = values[graph.loss.name]
    total = sum(sp.Float(w) * v for w, v in zip(weights, loss.reshape(-1), strict=True))
    param_syms = [s for name in graph.params for s in leaves[name].reshape(-1)]
    grads = [sp.diff(total, s) for s in param_syms]
    all_syms = [s for arr in leaves.values() for s in arr.reshape(-1)]
    fn = sp.lambdify(all_syms, grads, modules="math", cse=True)  # scalars: Piecewise as if-else
    dims = {d: v for d, v in sizes.items() if d in graph.dims}
    worst: dict[str, float] = {name: 0.0 for name in graph.params}
    for _ in range(points):
        params, batch = _random_point(graph, module, dims, sizes, rng)
        flat = [float(v) for name in leaves for v in _leaf_value(name, params, batch).reshape(-1)]
        direct = np.array(fn(*flat), dtype=float)
        _, cache = module.forward(params, batch)
        got = module.backward(params, batch, cache, g_loss=weights)
        offset = 0
        for name in graph.params:
            n = params[name].size
            diff = np.abs(
                np.asarray(got[name], dtype=float).reshape(-1) - direct[offset : offset + n]
            )
            scale = 1.0 + np.abs(direct[offset : offset + n])
            worst[name] = max(worst[name], float(np.max(diff / scale, initial=0.0)))
            offset += n
    ok = all(v < 1e-8 for v in worst.values())
    sizes_out = {(graph.batch_size.name if k == BATCH else k): v for k, v in sizes.items()}
    return SymbolicResult(ok, worst, {k: v for k, v in sizes_out.items() if not k.startswith("_")})


def _leaf_value(name: str, params: dict, batch: dict) -> np.ndarray:
    return params[name] if name in params else batch[name]


def _random_point(graph: Graph, module: Any, dims: dict, sizes: dict, rng) -> tuple[dict, dict]:
    params = {
        name: rng.normal(0.0, 0.7, tuple(sizes[_dim_key(graph, d)] for d in node.dims))
        for name, node in graph.params.items()
    }
    batch = {}
    for name, node in graph.inputs.items():
        shape = tuple(sizes[_dim_key(graph, d)] for d in node.dims)
        batch[name] = random_input(graph.input_kinds[name], shape, rng)
    return params, batch
