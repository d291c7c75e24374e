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

import importlib.util
import itertools
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from derive.errors import suggest

Arrays = dict[str, np.ndarray]

NOISE_FACTOR = 16.0
SPOT_ENTRIES = 4
RETRY_FACTOR = 10.0
KINDS = ("real", "one_hot", "probability", "binary")


class GradModule(Protocol):
    """The interface of an emitted module (a module object or any object with these names)."""

    NAME: str
    LOSS: str
    REDUCTION: str
    DIMS: dict[str, int | None]
    INPUTS: dict[str, tuple[tuple[str | int, ...], str]]
    PARAMS: dict[str, tuple[str | int, ...]]

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]: ...

    def backward(
        self,
        params: Arrays,
        batch: Arrays,
        cache: dict[str, Any],
        g_loss: np.ndarray | None = None,
    ) -> Arrays: ...

    def loss_and_grad(self, params: Arrays, batch: Arrays) -> tuple[float, Arrays]: ...

    def init_params(
        self, seed: int = 0, dims: dict[str, int] | None = None, dtype: Any = np.float64
    ) -> Arrays: ...


@dataclass
class ParamResult:
    """Outcome for one parameter: worst errors over every comparison made."""

    ok: bool
    max_abs_err: float
    max_rel_err: float
    shape: tuple[int, ...]
    n_compared: int
    note: str = ""


@dataclass
class SmokeResult:
    """Outcome of the float32 run: forward and backward give finite float32 arrays."""

    ok: bool
    note: str = ""


@dataclass
class CheckReport:
    """Everything ``fd_check`` found; ``ok`` is true only when every check passed."""

    ok: bool
    params: dict[str, ParamResult]
    batch_sizes: tuple[int, ...]
    notes: list[str] = field(default_factory=list)
    float32: SmokeResult = field(default_factory=lambda: SmokeResult(True, "not run"))
    rtol: float = 1e-6
    atol: float = 1e-8
    h: float = 1e-6

    def to_json(self) -> dict[str, Any]:
        """``{"ok", "params": {name: {"ok", "max_abs_err", "max_rel_err"}}, "float32"}``.

        Errors that could not be measured (missing gradient, wrong shape) are NaN.
        """
        return {
            "ok": bool(self.ok),
            "params": {
                name: {
                    "ok": bool(r.ok),
                    "max_abs_err": float(r.max_abs_err),
                    "max_rel_err": float(r.max_rel_err),
                }
                for name, r in self.params.items()
            },
            "float32": {"ok": bool(self.float32.ok), "note": self.float32.note},
        }

    def table(self) -> str:
        """Aligned table (param, shape, max abs err, max rel err, verdict) and a summary line."""
        header = ("param", "shape", "max abs err", "max rel err", "verdict")
        rows = [
            (name, str(r.shape), _fmt_err(r.max_abs_err), _fmt_err(r.max_rel_err), _verdict(r.ok))
            for name, r in self.params.items()
        ]
        rows.append(("(float32 run)", "-", "-", "-", _verdict(self.float32.ok)))
        lines = _align([header, *rows])
        lines.insert(1, "-" * len(lines[0]))
        details = [f"  {n}: {r.note}" for n, r in self.params.items() if not r.ok and r.note]
        if not self.float32.ok:
            details.append(f"  float32 run: {self.float32.note}")
        details += [f"  note: {note}" for note in self.notes]
        return "\n".join([*lines, *details, self._summary()])

    def _summary(self) -> str:
        """The final line of ``table``."""
        sizes = ", ".join(str(m) for m in self.batch_sizes)
        setting = f"(h={self.h:g}, rtol={self.rtol:g}, atol={self.atol:g}, batch sizes {sizes})"
        failed = [name for name, r in self.params.items() if not r.ok]
        if self.ok:
            return f"PASS: all {len(self.params)} parameter gradients agree {setting}"
        parts = []
        if failed:
            parts.append(f"{len(failed)}/{len(self.params)} gradients wrong ({', '.join(failed)})")
        if not self.float32.ok:
            parts.append("float32 run failed")
        if self.notes:
            parts.append(f"{len(self.notes)} module-level problem(s)")
        return f"FAIL: {'; '.join(parts)} {setting}"


def _fmt_err(x: float) -> str:
    """Scientific notation, or ``-`` for an error that was never measured."""
    return "-" if math.isnan(x) else f"{x:.2e}"


def _verdict(ok: bool) -> str:
    """``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def _align(rows: list[tuple[str, ...]]) -> list[str]:
    """Left-align text columns, right-align the numeric ones (2 and 3)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in (2, 3) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


# ---------------------------------------------------------------------------------------------
# loading, dimensions, random data


_load_counter = itertools.count()


def load_module(path: str | Path) -> ModuleType:
    """Import a ``.py`` file by path under a fresh name ``_derive_loaded_<stem>_<k>``.

    The module is registered in ``sys.modules`` under that unique name (so dataclasses and
    pickling inside it work); loading the same file twice gives two independent modules.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no module file at {path}")
    name = f"_derive_loaded_{path.stem}_{next(_load_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _shape_dims(module: GradModule) -> Iterable[str | int]:
    """Every entry of every declared input and parameter shape."""
    for shape, _kind in module.INPUTS.values():
        yield from shape
    for shape in module.PARAMS.values():
        yield from shape


def resolve_dims(
    module: GradModule, overrides: Mapping[str, int] | None = None, default: int = 3
) -> dict[str, int]:
    """Concrete size of every named dimension.

    Declared sizes are kept, unspecified ones (``None`` or used in a shape but never declared)
    become ``default``, and ``overrides`` win over both. An override naming no dimension of the
    module is a ``ValueError`` (with a spelling suggestion).
    """
    dims = {name: default if size is None else int(size) for name, size in module.DIMS.items()}
    for d in _shape_dims(module):
        if isinstance(d, str):
            dims.setdefault(d, default)
    for name, size in (overrides or {}).items():
        if name not in dims:
            hint = suggest(name, dims)
            raise ValueError(f"unknown dimension '{name}'" + (f"; {hint}" if hint else ""))
        dims[name] = int(size)
    bad = {name: size for name, size in dims.items() if size < 1}
    if bad:
        raise ValueError(f"dimension sizes must be positive: {bad}")
    return dims


def concrete_shape(shape: tuple[str | int, ...], dims: Mapping[str, int]) -> tuple[int, ...]:
    """Replace dimension names in ``shape`` by their sizes."""
    return tuple(dims[d] if isinstance(d, str) else int(d) for d in shape)


def random_params(module: GradModule, dims: Mapping[str, int], rng: np.random.Generator) -> Arrays:
    """Every parameter drawn i.i.d. from N(0, 0.5^2), float64 (scales such as gamma included)."""
    return {
        name: 0.5 * rng.standard_normal(concrete_shape(shape, dims))
        for name, shape in module.PARAMS.items()
    }


def random_input(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """One batch-first input of the given kind and full shape ``(m, *per_example)``.

    real: N(0, 1); one_hot: rows e_j over the last axis with j uniform; probability: rows from
    Dirichlet(1, ..., 1) over the last axis; binary: 0 or 1 with probability 1/2 each.
    """
    if kind == "real":
        return rng.standard_normal(shape)
    if kind == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    if kind not in ("one_hot", "probability"):
        raise ValueError(f"unknown input kind '{kind}' (expected one of {', '.join(KINDS)})")
    if len(shape) < 2:
        raise ValueError(f"a {kind} input needs a class axis, got per-example shape ()")
    *lead, k = shape
    if kind == "probability":
        return rng.dirichlet(np.ones(k), size=tuple(lead))
    return np.eye(k)[rng.integers(0, k, size=tuple(lead))]


def random_batch(
    module: GradModule, dims: Mapping[str, int], m: int, rng: np.random.Generator
) -> Arrays:
    """A batch of ``m`` examples for every declared input, each drawn by its kind."""
    return {
        name: random_input(kind, (m, *concrete_shape(shape, dims)), rng)
        for name, (shape, kind) in module.INPUTS.items()
    }


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
        if excess > 1.0:
            self.ok = False
        if excess > self.worst:
            self.worst = excess
            self.worst_note = f"worst at {where}: analytic {analytic:.8g}, numeric {numeric:.8g}"

    def result(self) -> ParamResult:
        """Freeze into a ``ParamResult``; the note says what failed, or how it was checked."""
        notes = [*self.problems, self.worst_note] if not self.ok else [self.mode]
        note = "; ".join(n for n in notes if n)
        return ParamResult(self.ok, self.max_abs, self.max_rel, self.shape, self.n, note)


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
            if ref is None or got is None or np.shape(got) != np.shape(ref):
                continue
            if not np.allclose(got, ref, rtol=1e-10, atol=1e-12):
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
        if not np.all(np.isfinite(cache.get(module.LOSS, np.nan))):
            return [
                f"m={m}: the loss is not finite at random normal inputs and parameters: "
                "is a log, sqrt or power applied outside its domain? (nothing was compared)"
            ]
        problem = _check_cache(module, cache, m)
        if problem:
            return [f"m={m}: {problem}"]
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
