"""Checking a spec end to end: generate its module, run finite differences and the
SymPy cross-check, the latter under a time budget (skipped, not failed, past it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from derive.graph.nodes import Graph
from derive.verify.budget import OverBudget, run_with_budget
from derive.verify.finite_diff import fd_check
from derive.verify.magnitudes import large_magnitude_check
from derive.verify.module import load_module, resolve_dims
from derive.verify.report import FullReport, SymbolicResult
from derive.verify.symbolic import symbolic_check


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
        dims, notes = checked_dims(module)
        fd = fd_check(module, dims=dims, seed=seed)
        big = large_magnitude_check(module, dims, seed=seed)
        sym = None
        if symbolic:
            sym = within_budget(lambda: _guarded(gen.derivation.graph, module, seed), budget)
    return FullReport(fd, sym, big, notes)


CHECK_MAX_SIZE = 1024
"""Largest declared dimension checked at its own size; larger ones are checked smaller."""


def checked_dims(module: Any) -> tuple[dict[str, int], list[str]]:
    """Sizes to check at, and a note for every declared size replaced by a small one.

    The derivation is symbolic in the sizes and the emitted code reads them from its
    arrays, so a declared ``d = 10**9`` is checked at a small size no other dimension uses.
    """
    dims = resolve_dims(module)
    taken = set(dims.values())
    notes = []
    for name, size in dims.items():
        if size > CHECK_MAX_SIZE:
            small = next(n for n in range(5, CHECK_MAX_SIZE) if n not in taken)
            taken.add(small)
            dims[name] = small
            notes.append(f"{name} = {size} is checked at {name} = {small} (sizes are symbolic)")
    return dims, notes


def _guarded(graph: Graph, module: Any, seed: int) -> SymbolicResult:
    """The SymPy check, skipped when the random points leave a function's domain."""
    try:
        with np.errstate(all="ignore"):
            return symbolic_check(graph, module, seed=seed)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError) as err:
        note = f"skipped: not evaluable at random points ({type(err).__name__}: {err})"
        return SymbolicResult(True, {}, {}, note, skipped=True)


def within_budget(run: Callable[[], SymbolicResult], seconds: float) -> SymbolicResult:
    """``run()``, or a skipped result when it takes longer than ``seconds`` (any thread)."""
    try:
        return run_with_budget(run, seconds)
    except OverBudget:
        note = f"skipped: over its {seconds:g} s budget (it grows with depth; see --budget)"
        return SymbolicResult(True, {}, {}, note, skipped=True)
