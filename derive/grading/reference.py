"""Reference gradients for grading: derive's own module for the spec, run by the grader.

The contract a submission is graded against is the usual homework one: given a batch and the
parameters, return the gradient of the loss the spec declares (the mean over the batch of the
per-example loss, or the sum for ``reduction = "sum"``).

Non-uniform upstream weighting. A mean-loss gradient seen on distinct examples only ever
weighs them equally, so an implementation that happens to be right only for uniform weights
(one that mixes up per-example and batch quantities, or normalises by the wrong count) could
pass. Each test batch is therefore built from ``n`` distinct examples repeated ``c_b`` times
(``c_b`` drawn from 1..3, rows shuffled), so that its mean-loss gradient is

    (1 / M) sum_b c_b grad L_b,     M = sum_b c_b,

a non-uniformly weighted sum over the distinct examples. The submission keeps the ordinary
signature (no weights argument to learn), and the batch sizes ``M`` differ between cases and
from every dimension of the spec, so that a factor of ``M`` (sum instead of mean), a batch axis
left in place, or a transposition always shows in the shapes or values.

Several cases, each a new parameter draw and a new batch (N(0, 0.5^2) parameters, inputs drawn
by their declared kind), all in float64 and fixed by a seed.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from derive.emit.numpy_module import render
from derive.lang.naming import gradient_of
from derive.pipeline import derive_spec
from derive.verify.module import load_module, random_batch, random_params, resolve_dims

Arrays = dict[str, np.ndarray]


@dataclass
class Case:
    """One test point: parameters, a batch of ``M`` rows, the reference gradients."""

    params: Arrays
    batch: Arrays
    counts: np.ndarray  # multiplicity of each distinct example
    grads: Arrays  # reference gradient of every parameter
    adjoints: Arrays  # reference batch-first adjoints g_X of named values, by X
    values: Arrays  # batch-first forward values and inputs, by name
    reduction: str = "mean"  # of the per-example losses over the batch
    batch_size: str = "m"  # the spec's name for the batch size, for hints

    @property
    def m(self) -> int:
        return int(self.counts.sum())


@dataclass
class Reference:
    """derive's module for a spec, with its names in declared order."""

    name: str
    module: ModuleType
    params: list[str]
    inputs: list[str]
    shapes: dict[str, tuple[int, ...]]
    dims: dict[str, int]
    reduction: str
    batch_size: str = "m"  # the spec's name for the batch size (``m`` unless a dim is ``m``)

    def cases(self, n: int = 3, seed: int = 0) -> list[Case]:
        """``n`` test points with distinct batch sizes that match no dimension."""
        rng = np.random.default_rng(seed)
        used: set[int] = set(self.dims.values())
        out = []
        for k in range(n):
            counts = rng.integers(1, 4, size=3 + k)
            while int(counts.sum()) in used:
                counts = np.append(counts, 1)
            used.add(int(counts.sum()))
            params = random_params(self.module, self.dims, rng)
            distinct = random_batch(self.module, self.dims, len(counts), rng)
            rows = rng.permutation(np.repeat(np.arange(len(counts)), counts))
            batch = {name: a[rows] for name, a in distinct.items()}
            grads, adjoints, values = self._reference(params, batch)
            out.append(
                Case(
                    params, batch, counts, grads, adjoints, values, self.reduction, self.batch_size
                )
            )
        return out

    def _reference(self, params: Arrays, batch: Arrays) -> tuple[Arrays, Arrays, Arrays]:
        """Parameter gradients, plus the adjoints the backward pass computed on the way."""
        _loss, cache = self.module.forward(params, batch)
        seen: dict[str, Any] = {}
        code = self.module.backward.__code__

        def spy(frame, event, _arg):
            if event == "return" and frame.f_code is code:
                seen.update(frame.f_locals)

        old = sys.getprofile()
        sys.setprofile(spy)
        try:
            grads = self.module.backward(params, batch, cache)
        finally:
            sys.setprofile(old)
        m = next(iter(batch.values())).shape[0]
        adjoints = {
            of: v
            for name, v in seen.items()
            if (of := gradient_of(name)) and _batch_first(v, m) and of not in self.params
        }
        values = {n: v for n, v in {**batch, **cache}.items() if _batch_first(v, m)}
        return {n: np.asarray(grads[n], dtype=np.float64) for n in self.params}, adjoints, values


def _batch_first(v: Any, m: int) -> bool:
    return isinstance(v, np.ndarray) and v.ndim >= 2 and v.shape[0] == m


def load_reference(spec: str | Path) -> Reference:
    """Derive ``spec`` and load its generated module (raises ``SpecError`` on a bad spec)."""
    d = derive_spec(spec)
    text = render(d)
    with tempfile.TemporaryDirectory(prefix="derive-ref-") as tmp:
        path = Path(tmp) / f"{d.graph.name}.py"
        path.write_text(text, encoding="utf-8")
        module = load_module(path)
    dims = resolve_dims(module)
    shapes = {
        n: tuple(dims[s] if isinstance(s, str) else int(s) for s in shape)
        for n, shape in module.PARAMS.items()
    }
    return Reference(
        name=module.NAME,
        module=module,
        params=list(module.PARAMS),
        inputs=list(module.INPUTS),
        shapes=shapes,
        dims=dims,
        reduction=module.REDUCTION,
        batch_size=d.graph.batch_size.name,
    )
