"""Finite-difference checks of a generated module's ``backward``.

The checked quantity is a weighted sum of the per-example losses,

    phi(theta) = sum_b w_b * L_b(theta),      w_b ~ U(0.5, 1.5),

whose gradient is exactly what ``backward(params, batch, cache, g_loss=w)`` returns. Random
weights, rather than the plain sum or mean, expose gradients that are right only for a uniform
upstream adjoint: a backward pass that ignores ``g_loss``, or a batch-coupled term (batch norm)
that happens to vanish when the adjoint is constant over the batch.

Numeric derivatives are central differences in float64,

    d phi / d theta_i   ~ (phi(theta + h e_i) - phi(theta - h e_i)) / 2h,
    <grad phi, v>       ~ (phi(theta + h v)   - phi(theta - h v))   / 2h,   |v| = 1,

per entry for small parameters, and for large ones along random unit directions plus a few
random single entries.

Tolerance. A comparison of an analytic value ``a`` with a numeric value ``n`` passes when

    |a - n| <= atol + rtol * max(|a|, |n|) + noise,
    noise    = NOISE_FACTOR * eps * sum_b |w_b L_b| / h,

where ``eps`` is the float64 machine epsilon. ``noise`` bounds the rounding error of the
difference quotient (each phi carries a rounding error of a few eps times the size of its
terms, which the division by 2h magnifies); the truncation error of the central difference is
O(h^2 |phi^(3)|), about 1e-12 for smooth nets at h = 1e-6. A comparison that fails is repeated
once with step ``RETRY_FACTOR * h`` (ten times less rounding error) and the better result kept.

With the defaults (h=1e-6, rtol=1e-6, atol=1e-8) correct float64 code on the test nets uses at
most a quarter of the allowance (batch norm at m = 2, where rounding dominates) and typically a
few percent of it. A gradient off by 1% has a relative error of 1e-2, four orders of magnitude
above rtol; only entries below about (atol + noise) / 1e-2 ~ 1e-6 could hide it, and every
parameter is compared at several points and batch sizes.

The reported relative error is ``|a - n| / max(atol, |a|, |n|)``: symmetric in the two
values, and bounded near zero where a plain ``|a - n| / |n|`` would explode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derive.verify.module import (
    Arrays,
    GradModule,
    concrete_shape,
    random_batch,
    random_params,
    resolve_dims,
)
from derive.verify.report import CheckReport, ParamResult, SmokeResult

NOISE_FACTOR = 16.0
SPOT_ENTRIES = 4
RETRY_FACTOR = 10.0


# ---------------------------------------------------------------------------------------------
# the check


@dataclass
class _Tally:
    """Running worst errors for one parameter."""

    shape: tuple[int, ...]
    mode: str
    ok: bool = True
    max_abs: float = 0.0
    max_rel: float = 0.0
    n: int = 0
    worst: float = 1.0
    worst_note: str = ""
    used: float = 0.0  # the largest share of its bound any comparison used
    problems: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        """A failure whose error cannot be measured: the errors become NaN."""
        self.ok = False
        self.max_abs = self.max_rel = math.nan
        if message not in self.problems:
            self.problems.append(message)

    def add(self, analytic: float, numeric: float, tol: _Tol, where: str) -> None:
        """Compare one analytic value with its central difference."""
        self.n += 1
        if not math.isfinite(numeric):
            self.fail(f"finite difference not finite ({where})")
            return
        err = abs(analytic - numeric)
        scale = max(abs(analytic), abs(numeric))
        self.max_abs = max(self.max_abs, err)
        self.max_rel = max(self.max_rel, err / max(tol.atol, scale))
        excess = _excess(analytic, numeric, tol)
        self.used = max(self.used, excess)
        if excess > 1.0:
            self.ok = False
        if excess > self.worst:
            self.worst = excess
            self.worst_note = f"worst at {where}: analytic {analytic:.8g}, numeric {numeric:.8g}"

    def result(self) -> ParamResult:
        """Freeze into a ``ParamResult``; the note says what failed, or how it was checked."""
        notes = [*self.problems, self.worst_note] if not self.ok else [self.mode]
        note = "; ".join(n for n in notes if n)
        used = self.used if self.n and not math.isnan(self.max_abs) else math.nan
        return ParamResult(self.ok, self.max_abs, self.max_rel, self.shape, self.n, note, used)


@dataclass(frozen=True)
class _Tol:
    """``bound(scale) = atol + rtol * scale + noise`` for one batch."""

    rtol: float
    atol: float
    noise: float

    def bound(self, scale: float) -> float:
        """Largest accepted absolute error for values of size ``scale``."""
        return self.atol + self.rtol * scale + self.noise


class _Objective:
    """``phi(params) = sum_b w_b L_b``; ``magnitude`` records the largest ``sum_b |w_b L_b|``."""

    def __init__(self, module: GradModule, batch: Arrays, w: np.ndarray) -> None:
        self.module, self.batch, self.w = module, batch, w
        self.magnitude = 0.0

    def __call__(self, params: Arrays) -> float:
        """Evaluate phi at ``params``."""
        _loss, cache = self.module.forward(params, self.batch)
        terms = self.w * np.asarray(cache[self.module.LOSS], dtype=np.float64)
        self.magnitude = max(self.magnitude, float(np.abs(terms).sum()))
        return float(terms.sum())


def _shifted(params: Arrays, name: str, delta: np.ndarray) -> Arrays:
    """A copy of ``params`` with ``params[name] + delta`` (other arrays shared)."""
    out = dict(params)
    out[name] = params[name] + delta
    return out


def _central(phi: _Objective, params: Arrays, name: str, step: np.ndarray) -> float:
    """(phi(theta + step) - phi(theta - step)) / (2 |step|) for a step of norm h."""
    h = float(np.linalg.norm(step))
    return (phi(_shifted(params, name, step)) - phi(_shifted(params, name, -step))) / (2 * h)


def _probes(
    size: int, shape: tuple[int, ...], per_entry_max: int, directions: int, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """Unit vectors to differentiate along: every basis vector, or random directions + spots."""
    if size <= per_entry_max:
        entries = range(size)
        dirs: list[tuple[str, np.ndarray]] = []
    else:
        entries = rng.choice(size, size=min(size, SPOT_ENTRIES), replace=False)
        dirs = []
        for k in range(directions):
            v = rng.standard_normal(shape)
            dirs.append((f"direction {k}", v / np.linalg.norm(v)))
    for i in entries:
        e = np.zeros(shape)
        e.flat[int(i)] = 1.0
        index = tuple(int(k) for k in np.unravel_index(int(i), shape))
        dirs.append((f"entry {index}", e))
    return dirs


def _check_grad_array(grad: Any, shape: tuple[int, ...], dtype: Any) -> str | None:
    """Why ``grad`` is unusable as the gradient of a parameter, or None when it is fine."""
    if grad is None:
        return "gradient missing"
    g = np.asarray(grad)
    if g.shape != shape:
        return f"gradient shape {g.shape} != parameter shape {shape}"
    if g.dtype != np.dtype(dtype):
        return f"gradient dtype {g.dtype} != parameter dtype {np.dtype(dtype)}"
    if not np.all(np.isfinite(g)):
        return "gradient has non-finite entries"
    return None


def _check_cache(module: GradModule, cache: Any, m: int) -> str | None:
    """Why the forward cache lacks a usable per-example loss vector, or None."""
    if not isinstance(cache, Mapping) or module.LOSS not in cache:
        return f"forward cache has no entry '{module.LOSS}' (the per-example loss)"
    shape = np.shape(cache[module.LOSS])
    if shape != (m,):
        return f"cache['{module.LOSS}'] has shape {shape}, expected ({m},)"
    return None


def _reduced(module: GradModule, per_example: np.ndarray) -> float:
    """The batch loss from the per-example losses according to ``REDUCTION``."""
    if module.REDUCTION == "mean":
        return float(per_example.mean())
    if module.REDUCTION == "sum":
        return float(per_example.sum())
    raise ValueError(f"unknown REDUCTION '{module.REDUCTION}'")


def _consistency(module: GradModule, params: Arrays, batch: Arrays, m: int) -> list[str]:
    """Module-level agreements: loss = REDUCTION(cache[LOSS]); ``loss_and_grad`` = default
    ``backward`` = ``backward`` with g_loss = 1/m ("mean") or 1 ("sum")."""
    problems = []
    loss, cache = module.forward(params, batch)
    per_example = np.asarray(cache[module.LOSS], dtype=np.float64)
    expected = _reduced(module, per_example)
    if not math.isclose(float(loss), expected, rel_tol=1e-12, abs_tol=1e-12):
        problems.append(
            f"m={m}: forward loss {float(loss):.12g} != {module.REDUCTION} of "
            f"cache['{module.LOSS}'] = {expected:.12g}"
        )
    weight = 1.0 / m if module.REDUCTION == "mean" else 1.0
    explicit = module.backward(params, batch, cache, g_loss=np.full(m, weight))
    default = module.backward(params, batch, cache)
    lg_loss, lg_grads = module.loss_and_grad(params, batch)
    if not math.isclose(float(lg_loss), float(loss), rel_tol=1e-12, abs_tol=1e-12):
        problems.append(f"m={m}: loss_and_grad loss differs from forward loss")
    for name in module.PARAMS:
        ref = explicit.get(name)
        for label, other in (("backward default g_loss", default), ("loss_and_grad", lg_grads)):
            got = other.get(name)
            if ref is None:
                continue  # reported with the gradient itself
            if got is None:
                problems.append(f"m={m}: {label} has no gradient for '{name}'")
            elif np.shape(got) != np.shape(ref):
                problems.append(
                    f"m={m}: {label} gives shape {np.shape(got)} for '{name}', not {np.shape(ref)}"
                )
            elif not np.allclose(got, ref, rtol=1e-10, atol=1e-12):
                problems.append(f"m={m}: {label} disagrees with g_loss={weight:g} for '{name}'")
    return problems


def _check_batch(
    module: GradModule,
    m: int,
    rng: np.random.Generator,
    dims: Mapping[str, int],
    tallies: dict[str, _Tally],
    opts: _Options,
) -> list[str]:
    """One batch size: random data and weights, analytic vs central differences."""
    params = random_params(module, dims, rng)
    batch = random_batch(module, dims, m, rng)
    w = rng.uniform(0.5, 1.5, m)
    try:
        with np.errstate(all="ignore"):
            _loss, cache = module.forward(params, batch)
        problem = _check_cache(module, cache, m)
        if problem:
            return [f"m={m}: {problem}"]
        if not np.all(np.isfinite(cache[module.LOSS])):
            return [
                f"m={m}: the loss is not finite at random normal inputs and parameters: "
                "is a log, sqrt or power applied outside its domain? (nothing was compared)"
            ]
        grads = module.backward(params, batch, cache, g_loss=w)
    except Exception as exc:
        return [f"m={m}: forward/backward raised {type(exc).__name__}: {exc}"]
    if not isinstance(grads, Mapping):
        return [f"m={m}: backward returned {type(grads).__name__}, not a dict"]
    unexpected = sorted(set(grads) - set(tallies))
    phi = _Objective(module, batch, w)
    for name, tally in tallies.items():
        problem = _check_grad_array(grads.get(name), tally.shape, params[name].dtype)
        if problem and unexpected and name not in grads:
            problem += f" (backward returned unexpected {', '.join(map(repr, unexpected))})"
        if problem:
            tally.fail(problem)
            continue
        try:
            phi(params)
            _compare_param(name, np.asarray(grads[name]), params, phi, tally, m, rng, opts)
        except Exception as exc:
            tally.fail(f"m={m}: forward raised {type(exc).__name__} at a perturbed point: {exc}")
    try:
        return _consistency(module, params, batch, m)
    except Exception as exc:
        return [f"m={m}: consistency check raised {type(exc).__name__}: {exc}"]


@dataclass(frozen=True)
class _Options:
    """Settings of one ``fd_check`` call."""

    per_entry_max: int
    directions: int
    h: float
    rtol: float
    atol: float


def _compare_param(
    name: str,
    grad: np.ndarray,
    params: Arrays,
    phi: _Objective,
    tally: _Tally,
    m: int,
    rng: np.random.Generator,
    opts: _Options,
) -> None:
    """Compare ``<grad, v>`` with the central difference along every probe ``v``.

    A comparison failing at step h is repeated once at ``RETRY_FACTOR * h`` (smaller rounding
    error, tighter noise term) and the better of the two is kept.
    """
    probes = _probes(grad.size, tally.shape, opts.per_entry_max, opts.directions, rng)
    for label, v in probes:
        analytic = float(np.vdot(grad, v))
        numeric, tol = _estimate(phi, params, name, v, opts.h, opts)
        if _excess(analytic, numeric, tol) > 1.0:
            retry = _estimate(phi, params, name, v, RETRY_FACTOR * opts.h, opts)
            if _excess(analytic, *retry) < _excess(analytic, numeric, tol):
                numeric, tol = retry
        tally.add(analytic, numeric, tol, f"m={m} {label}")


def _estimate(
    phi: _Objective, params: Arrays, name: str, v: np.ndarray, h: float, opts: _Options
) -> tuple[float, _Tol]:
    """Central difference along unit ``v`` with step ``h``, and the tolerance that goes with it."""
    numeric = _central(phi, params, name, h * v)
    noise = NOISE_FACTOR * np.finfo(np.float64).eps * phi.magnitude / h
    return numeric, _Tol(opts.rtol, opts.atol, noise)


def _excess(analytic: float, numeric: float, tol: _Tol) -> float:
    """|analytic - numeric| / tol.bound(scale); above 1 fails, inf when numeric is not finite."""
    if not math.isfinite(numeric):
        return math.inf
    return abs(analytic - numeric) / tol.bound(max(abs(analytic), abs(numeric)))


def _mode(size: int, per_entry_max: int, directions: int) -> str:
    """How a parameter of ``size`` entries is checked, in words."""
    if size <= per_entry_max:
        return "every entry"
    return f"{directions} random directions + {min(size, SPOT_ENTRIES)} random entries"


def fd_check(
    module: GradModule,
    *,
    dims: Mapping[str, int] | None = None,
    batch_sizes: tuple[int, ...] = (1, 2, 5),
    seed: int = 0,
    per_entry_max: int = 64,
    directions: int = 6,
    h: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> CheckReport:
    """Check ``backward`` against central differences of ``phi = sum_b w_b L_b``.

    For every batch size: fresh random parameters, inputs and weights ``w ~ U(0.5, 1.5)``;
    gradients must exist for every parameter with its shape and dtype, be finite and agree with
    the differences within ``atol + rtol * scale + noise`` (see the module docstring). Module
    level checks (loss reduction, default ``g_loss``, ``loss_and_grad``) and a float32 run are
    added. Exceptions raised by the module become failures, never propagate.
    """
    dims_r = resolve_dims(module, dims)
    rng = np.random.default_rng(seed)
    opts = _Options(per_entry_max, directions, h, rtol, atol)
    tallies = {}
    for name, spec in module.PARAMS.items():
        shape = concrete_shape(spec, dims_r)
        tallies[name] = _Tally(shape, _mode(math.prod(shape), per_entry_max, directions))
    notes: list[str] = []
    for m in batch_sizes:
        notes += _check_batch(module, m, rng, dims_r, tallies, opts)
    for tally in tallies.values():
        if tally.n == 0 and tally.ok:
            tally.fail("no comparison could be made")
    smoke = float32_smoke(module, dims_r, m=max(batch_sizes, default=2), seed=seed)
    results = {name: tally.result() for name, tally in tallies.items()}
    ok = all(r.ok for r in results.values()) and smoke.ok and not notes
    return CheckReport(ok, results, tuple(batch_sizes), notes, smoke, rtol, atol, h)


def _float32_problem(module: GradModule, dims: Mapping[str, int], m: int, seed: int) -> str | None:
    """Why a float32 forward + backward pass is not all-finite float32, or None."""
    rng = np.random.default_rng(seed)
    params = module.init_params(seed=seed, dims=dict(dims), dtype=np.float32)
    wrong = [n for n, p in params.items() if np.asarray(p).dtype != np.float32]
    if wrong:
        return f"init_params(dtype=float32) gave non-float32 arrays: {', '.join(wrong)}"
    batch = {k: v.astype(np.float32) for k, v in random_batch(module, dims, m, rng).items()}
    loss, cache = module.forward(params, batch)
    problem = _check_cache(module, cache, m)
    if problem:
        return problem
    per_example = np.asarray(cache[module.LOSS])
    if per_example.dtype != np.float32:
        return f"cache['{module.LOSS}'] is {per_example.dtype}, not float32"
    if not (math.isfinite(float(loss)) and np.all(np.isfinite(per_example))):
        return "loss is not finite"
    grads = module.backward(params, batch, cache)
    for name, p in params.items():
        problem = _check_grad_array(grads.get(name), np.shape(p), np.float32)
        if problem:
            return f"'{name}': {problem}"
    return None


def float32_smoke(
    module: GradModule, dims: Mapping[str, int], *, m: int = 5, seed: int = 0
) -> SmokeResult:
    """``init_params(dtype=float32)``, forward and backward on float32 inputs stay float32 and
    finite."""
    try:
        problem = _float32_problem(module, dims, m, seed)
    except Exception as exc:
        problem = f"raised {type(exc).__name__}: {exc}"
    return SmokeResult(problem is None, problem or f"finite float32 outputs (m={m})")
