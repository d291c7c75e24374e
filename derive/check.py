"""Numeric proof of emitted code: finite differences and direct SymPy differentiation.

Two independent witnesses:

* :func:`derive.numcheck.fd_check`: central differences in float64 at random
  points and several batch sizes, with a random upstream weighting of the
  per-example losses;
* :func:`symbolic_check`: the graph instantiated at tiny concrete sizes, every
  entry its own SymPy symbol, the weighted loss written out as one scalar
  expression, differentiated by ``sympy.diff`` and compared with the emitted
  backward at random points (numerically: exact zero-equivalence of such
  expressions costs tens of seconds each).
"""

from __future__ import annotations

import itertools
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.graph import BATCH, Graph, Node, atom_name
from derive.numcheck import CheckReport, fd_check, load_module, random_input
from derive.ops import written_out


@dataclass
class SymbolicResult:
    """Worst error per parameter between the emitted backward and ``sympy.diff``."""

    ok: bool
    max_abs_err: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    note: str = ""
    skipped: bool = False


@dataclass
class FullReport:
    """Finite differences plus the SymPy cross-check."""

    fd: CheckReport
    symbolic: SymbolicResult | None

    @property
    def ok(self) -> bool:
        return self.fd.ok and (self.symbolic is None or self.symbolic.ok)

    def to_json(self) -> dict[str, Any]:
        out = self.fd.to_json()
        out["ok"] = self.ok
        if self.symbolic is not None:
            out["symbolic"] = {
                "ok": self.symbolic.ok,
                "skipped": self.symbolic.skipped,
                "sizes": self.symbolic.sizes,
                "max_abs_err": self.symbolic.max_abs_err,
                "note": self.symbolic.note,
            }
        return out

    def table(self) -> str:
        text = self.fd.table()
        if self.symbolic is not None and self.symbolic.skipped:
            text += f"\nSymPy cross-check {self.symbolic.note}"
        elif self.symbolic is not None:
            s = self.symbolic
            worst = max(s.max_abs_err.values(), default=0.0)
            verdict = "PASS" if s.ok else "FAIL"
            sizes = ", ".join(f"{k}={v}" for k, v in s.sizes.items())
            text += (
                f"\n{verdict}: direct SymPy differentiation of the expanded loss ({sizes}): "
                f"max abs err {worst:.2e}" + (f" ({s.note})" if s.note else "")
            )
        return text


def check_spec(
    spec: str | Path, *, seed: int = 0, symbolic: bool = True, budget: float = 60.0
) -> FullReport:
    """Generate ``spec``'s module into a temporary folder and check it both ways.

    The SymPy cross-check grows exponentially with depth (``sympy.diff`` of the written-out
    loss); past ``budget`` seconds it is reported as skipped, not failed.
    """
    from derive.pipeline import generate

    with tempfile.TemporaryDirectory(prefix="derive-check-") as tmp:
        gen = generate(spec, tmp)
        module = load_module(gen.path)
        fd = fd_check(module, seed=seed)
        sym = None
        if symbolic:
            sym = within_budget(lambda: _guarded(gen.derivation.graph, module, seed), budget)
    return FullReport(fd, sym)


def _guarded(graph: Graph, module: Any, seed: int) -> SymbolicResult:
    """The SymPy check, skipped when the random points leave a function's domain."""
    try:
        with np.errstate(all="ignore"):
            return symbolic_check(graph, module, seed=seed)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError) as err:
        note = f"skipped: not evaluable at random points ({type(err).__name__}: {err})"
        return SymbolicResult(True, {}, {}, note, skipped=True)


class _OverBudget(Exception):
    pass


def within_budget(run: Callable[[], SymbolicResult], seconds: float) -> SymbolicResult:
    """``run()``, or a skipped result when it takes longer than ``seconds`` (POSIX timers)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        return run()

    def stop(signum: int, frame: object) -> None:
        raise _OverBudget

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return run()
    except _OverBudget:
        note = f"skipped: over its {seconds:g} s budget (it grows with depth; see --budget)"
        return SymbolicResult(True, {}, {}, note, skipped=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
