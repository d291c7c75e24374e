"""Time one training step (loss and all parameter gradients) of derive's generated code.

For each benchmark net the step is timed for

* ``derive``: the module derive generates from ``benchmarks/specs/*.toml`` (its ``loss_and_grad``);
* ``hand``: a hand-written, vectorized NumPy forward and backward pass with the same math
  (numerically stable sigmoid and softmax, same dtype): the baseline of the ratio column;
* ``gemm``: only the matrix products the step needs (forward, and backward to the weights and
  hidden layers), with the same shapes and memory layouts: a floor no NumPy step can beat;
* ``torch``: PyTorch CPU autograd on the same arrays, when ``import torch`` works.

Implementations are timed round-robin in one process (one sample of each per round, the starting
implementation rotating), so slow drifts of the machine (frequency, other load) hit all of them
alike. Each sample runs the step ``number`` times (calibrated to about ``--sample-ms`` on the
hand-written step); the table gives the median over ``--repeats`` samples of the time per step.
Before timing, derive's loss and gradients (and torch's) are checked against the hand-written
ones with ``np.allclose``.

Threads: ``--threads`` (default 1) is written to OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS and friends *before NumPy is imported*, since BLAS libraries read them once when
they load; that is why the NumPy import below comes after code. When ``threadpoolctl`` is
installed it additionally caps the loaded BLAS/OpenMP pools at run time. PyTorch gets
``torch.set_num_threads(threads)``. Other OPENBLAS_* variables (such as OPENBLAS_CORETYPE) are
left as the environment has them and printed in the header.

Run from the repository root::

    python benchmarks/bench_step.py                  # float32, 1 thread
    python benchmarks/bench_step.py --dtype float64 --threads 2
    python benchmarks/bench_step.py --quick          # a fast smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
SPEC_DIR = Path(__file__).resolve().parent / "specs"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (parsed before NumPy is imported, see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=None, help="samples per implementation")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads")
    p.add_argument("--quick", action="store_true", help="few repeats, short samples")
    p.add_argument("--sample-ms", type=float, default=None, help="target time of one sample")
    p.add_argument(
        "--config", action="append", default=None, help="run only this config (repeatable)"
    )
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a shared, loaded machine)",
    )
    return p


if __name__ == "__main__":
    _early_threads = build_parser().parse_known_args()[0].threads
    for _var in THREAD_VARS:
        os.environ[_var] = str(_early_threads)

import numpy as np  # noqa: E402

from derive.pipeline import generate  # noqa: E402
from derive.verify.module import load_module  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tight_steps import tight_relu2_softmax, tight_sigmoid_softmax  # noqa: E402

Arrays = dict[str, np.ndarray]
CLOCK: list[Callable[[], float]] = [time.perf_counter]
"""The clock samples are taken with (``--clock cpu`` swaps in ``time.process_time``)."""
Step = Callable[[Arrays, Arrays], tuple[Any, Arrays]]
Pairs = list[tuple[np.ndarray, np.ndarray]]


# ----- hand-written NumPy steps ------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic function: e = exp(-|z|); z >= 0: 1 / (1 + e), else e / (1 + e)."""
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)
    out = np.where(z >= 0, 1.0, e).astype(z.dtype, copy=False)
    e += 1.0
    out /= e
    return out


def _softmax_ce(f: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(f) against one-hot t, and softmax(f); overwrites f."""
    f -= f.max(axis=1, keepdims=True)
    p = np.exp(f)
    s = p.sum(axis=1, keepdims=True)
    p /= s
    loss = -float(np.sum(t * (f - np.log(s)))) / f.shape[0]
    return loss, p


def hand_sigmoid_softmax(params: Arrays, batch: Arrays) -> tuple[float, Arrays]:
    """x -> sigmoid(W1 x + b1) -> softmax(W2 h + b2), mean cross-entropy."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    x, t = batch["x"], batch["t"]
    n = x.shape[0]
    z1 = x @ W1.T
    z1 += b1
    h1 = _sigmoid(z1)
    f = h1 @ W2.T
    f += b2
    loss, p = _softmax_ce(f, t)
    g_f = p
    g_f -= t
    g_f /= n
    g_z1 = g_f @ W2
    g_z1 *= h1
    g_z1 *= 1.0 - h1
    grads = {
        "W1": g_z1.T @ x,
        "b1": g_z1.sum(axis=0),
        "W2": g_f.T @ h1,
        "b2": g_f.sum(axis=0),
    }
    return loss, grads


def hand_relu2_softmax(params: Arrays, batch: Arrays) -> tuple[float, Arrays]:
    """x -> relu -> relu -> softmax, mean cross-entropy (relu'(0) = 0, as derive's default)."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    x, t = batch["x"], batch["t"]
    n = x.shape[0]
    h1 = x @ W1.T
    h1 += b1
    np.maximum(h1, 0, out=h1)
    h2 = h1 @ W2.T
    h2 += b2
    np.maximum(h2, 0, out=h2)
    f = h2 @ W3.T
    f += b3
    loss, p = _softmax_ce(f, t)
    g_f = p
    g_f -= t
    g_f /= n
    g_z2 = g_f @ W3
    g_z2 *= h2 > 0
    g_z1 = g_z2 @ W2
    g_z1 *= h1 > 0
    grads = {
        "W1": g_z1.T @ x,
        "b1": g_z1.sum(axis=0),
        "W2": g_z2.T @ h1,
        "b2": g_z2.sum(axis=0),
        "W3": g_f.T @ h2,
        "b3": g_f.sum(axis=0),
    }
    return loss, grads


def hand_tanh_squared(params: Arrays, batch: Arrays) -> tuple[float, Arrays]:
    """x -> tanh(W1 x + b1) -> W2 h + b2, mean over the batch of sum((f - y)^2)."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    x, y = batch["x"], batch["y"]
    n = x.shape[0]
    h1 = np.tanh(x @ W1.T + b1)
    r = h1 @ W2.T + b2 - y
    loss = float(np.sum(r * r)) / n
    g_f = r * (2.0 / n)
    g_z1 = g_f @ W2
    g_z1 *= 1.0 - h1 * h1
    grads = {
        "W1": g_z1.T @ x,
        "b1": g_z1.sum(axis=0),
        "W2": g_f.T @ h1,
        "b2": g_f.sum(axis=0),
    }
    return loss, grads


def hand_bn_relu_softmax(params: Arrays, batch: Arrays) -> tuple[float, Arrays]:
    """x -> relu(batchnorm(W1 x)) -> softmax(W2 h + b2), mean cross-entropy (eps 1e-5).

    Batch norm in training mode (batch statistics, biased variance) with its compact backward
    ``g_z = gamma / (n std) (n g_y - sum g_y - xhat sum(g_y xhat))``.
    """
    W1, gamma, beta, W2, b2 = (params[k] for k in ("W1", "gamma", "beta", "W2", "b2"))
    x, t = batch["x"], batch["t"]
    n = x.shape[0]
    z = x @ W1.T
    z -= z.mean(axis=0)
    std = np.sqrt(np.einsum("ij,ij->j", z, z) / n + 1e-5)
    xhat = z
    xhat /= std
    h = xhat * gamma
    h += beta
    np.maximum(h, 0, out=h)
    f = h @ W2.T
    f += b2
    loss, p = _softmax_ce(f, t)
    g_f = p
    g_f -= t
    g_f /= n
    g_y = g_f @ W2
    g_y *= h > 0
    g_beta = g_y.sum(axis=0)
    g_gamma = np.einsum("ij,ij->j", g_y, xhat)
    g_z = g_y * n
    g_z -= g_beta
    g_z -= xhat * g_gamma
    g_z *= gamma / (n * std)
    grads = {
        "W1": g_z.T @ x,
        "gamma": g_gamma,
        "beta": g_beta,
        "W2": g_f.T @ h,
        "b2": g_f.sum(axis=0),
    }
    return loss, grads


# ----- bare matrix products ----------------------------------------------------------------------
def gemm_pairs(params: Arrays, batch: Arrays, layers: Sequence[str]) -> Pairs:
    """Operands of every matrix product of one step of a dense net, laid out as the steps use them.

    ``layers`` names the weights from input to output (W1, W2, ...). Forward: h_i = h_{i-1} @ W_i.T;
    backward: g_W_i = g_i.T @ h_{i-1} for every layer and g_{i-1} = g_i @ W_i for all but the
    first. Activation and adjoint operands are random arrays of the right shape and dtype.
    """
    rng = np.random.default_rng(1)
    dtype = params[layers[0]].dtype
    n = batch["x"].shape[0]

    def rand(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    acts = [batch["x"]] + [rand(n, params[w].shape[0]) for w in layers]
    grads = [rand(n, params[w].shape[0]) for w in layers]
    pairs: Pairs = []
    for i, w in enumerate(layers):
        pairs.append((acts[i], params[w].T))
    for i, w in reversed(list(enumerate(layers))):
        pairs.append((grads[i].T, acts[i]))
        if i > 0:
            pairs.append((grads[i], params[w]))
    return pairs


def gemm_step(pairs: Pairs) -> Step:
    """A step that only multiplies the given operand pairs (allocating results, as ``@`` does)."""

    def step(params: Arrays, batch: Arrays) -> tuple[Any, Arrays]:
        for a, b in pairs:
            a @ b
        return None, {}

    return step


# ----- PyTorch -----------------------------------------------------------------------------------
def torch_step(kind: str, params: Arrays, batch: Arrays, threads: int) -> Step | None:
    """A PyTorch autograd step for ``kind``, or None when torch cannot be imported."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(threads)
    tp = {k: torch.from_numpy(v).requires_grad_(True) for k, v in params.items()}
    names = list(params)
    leaves = [tp[k] for k in names]
    x = torch.from_numpy(batch["x"])
    if kind == "tanh_squared":
        y = torch.from_numpy(batch["y"])
    else:
        labels = torch.from_numpy(batch["t"].argmax(axis=1))

    def forward() -> Any:
        if kind == "sigmoid_softmax":
            h = torch.sigmoid(F.linear(x, tp["W1"], tp["b1"]))
            return F.cross_entropy(F.linear(h, tp["W2"], tp["b2"]), labels)
        if kind == "bn_relu_softmax":
            z = F.linear(x, tp["W1"])
            h = torch.relu(F.batch_norm(z, None, None, tp["gamma"], tp["beta"], training=True))
            return F.cross_entropy(F.linear(h, tp["W2"], tp["b2"]), labels)
        if kind == "relu2_softmax":
            h = torch.relu(F.linear(x, tp["W1"], tp["b1"]))
            h = torch.relu(F.linear(h, tp["W2"], tp["b2"]))
            return F.cross_entropy(F.linear(h, tp["W3"], tp["b3"]), labels)
        h = torch.tanh(F.linear(x, tp["W1"], tp["b1"]))
        return ((F.linear(h, tp["W2"], tp["b2"]) - y) ** 2).sum(dim=1).mean()

    def step(_params: Arrays, _batch: Arrays) -> tuple[Any, Arrays]:
        loss = forward()
        grads = torch.autograd.grad(loss, leaves)
        return loss, dict(zip(names, grads, strict=True))

    return step


def torch_version() -> str | None:
    """The installed torch version, or None."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


# ----- configurations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """One benchmark net: its spec, batch size and hand-written step."""

    name: str
    spec: str
    batch: int
    kind: str
    hand: Step
    layers: tuple[str, ...]
    tight: Step | None = None  # the tightest exact in-place step (tight_steps.py)


CONFIGS = (
    Config(
        "784-256-10",
        "mlp_784_256_10.toml",
        64,
        "sigmoid_softmax",
        hand_sigmoid_softmax,
        ("W1", "W2"),
        tight_sigmoid_softmax,
    ),
    Config(
        "784-1024-1024-10",
        "mlp_784_1024_1024_10.toml",
        256,
        "relu2_softmax",
        hand_relu2_softmax,
        ("W1", "W2", "W3"),
        tight_relu2_softmax,
    ),
    Config("3-4-1", "tiny_3_4_1.toml", 1, "tanh_squared", hand_tanh_squared, ("W1", "W2")),
    Config(
        "bn-nested",
        "bn_256_512_10_nested.toml",
        128,
        "bn_relu_softmax",
        hand_bn_relu_softmax,
        ("W1", "W2"),
    ),
    Config(
        "bn-staged",
        "bn_256_512_10_staged.toml",
        128,
        "bn_relu_softmax",
        hand_bn_relu_softmax,
        ("W1", "W2"),
    ),
)


def make_data(mod: ModuleType, cfg: Config, dtype: np.dtype, seed: int) -> tuple[Arrays, Arrays]:
    """Parameters (derive's init, biases made nonzero) and a random batch of ``cfg.batch``."""
    rng = np.random.default_rng(seed)
    params = mod.init_params(seed=seed, dtype=dtype)
    for k, v in params.items():
        if v.ndim == 1:
            params[k] = (v + rng.normal(0.0, 0.1, v.shape)).astype(dtype)
    batch: Arrays = {}
    for name, (shape, kind) in mod.INPUTS.items():
        dims = tuple(d if isinstance(d, int) else mod.DIMS[d] for d in shape)
        if kind == "one_hot":
            labels = rng.integers(0, dims[-1], cfg.batch)
            batch[name] = np.eye(dims[-1], dtype=dtype)[labels]
        else:
            batch[name] = rng.standard_normal((cfg.batch, *dims)).astype(dtype)
    return params, batch


def check_same(
    label: str, ref: tuple[Any, Arrays], got: tuple[Any, Arrays], dtype: np.dtype
) -> None:
    """Raise if ``got``'s loss or any gradient differs from ``ref``'s beyond rounding."""
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-10, 1e-12)
    loss_ref, g_ref = float(ref[0]), ref[1]
    loss_got, g_got = float(got[0]), {k: np.asarray(v) for k, v in got[1].items()}
    if not np.isclose(loss_got, loss_ref, rtol=rtol, atol=atol):
        raise AssertionError(f"{label}: loss {loss_got!r} != hand {loss_ref!r}")
    if set(g_got) != set(g_ref):
        raise AssertionError(f"{label}: gradient names {sorted(g_got)} != {sorted(g_ref)}")
    for k, ref_k in g_ref.items():
        scale = max(1.0, float(np.abs(ref_k).max()))
        if g_got[k].shape != ref_k.shape or g_got[k].dtype != ref_k.dtype:
            raise AssertionError(
                f"{label}: grad {k} is {g_got[k].dtype}{g_got[k].shape}, "
                f"hand {ref_k.dtype}{ref_k.shape}"
            )
        if not np.allclose(g_got[k], ref_k, rtol=rtol, atol=atol * scale):
            err = float(np.abs(g_got[k] - ref_k).max())
            raise AssertionError(f"{label}: grad {k} differs from hand by up to {err:.3g}")


# ----- timing ------------------------------------------------------------------------------------
def calibrate(step: Callable[[], object], target_s: float) -> int:
    """Calls per sample so that one sample of ``step`` takes about ``target_s``."""
    for _ in range(3):
        step()
    number = 1
    while True:
        t0 = CLOCK[0]()
        for _ in range(number):
            step()
        dt = CLOCK[0]() - t0
        if dt >= target_s / 4 or number >= 1 << 20:
            return max(1, round(number * target_s / max(dt, 1e-9)))
        number *= 4


def time_interleaved(
    steps: dict[str, Callable[[], object]], number: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each step: ``repeats`` round-robin rounds of ``number`` calls each."""
    names = list(steps)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for f in steps.values():
        for _ in range(min(number, 10)):
            f()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            for j in range(len(names)):
                name = names[(r + j) % len(names)]
                f = steps[name]
                t0 = CLOCK[0]()
                for _ in range(number):
                    f()
                samples[name].append((CLOCK[0]() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


# ----- environment -------------------------------------------------------------------------------
def thread_limiter(threads: int) -> tuple[Any, str]:
    """A threadpoolctl limit (a context manager) when installed, else a null context."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "environment variables (threadpoolctl not installed)"
    return threadpool_limits(limits=threads), "threadpoolctl + environment variables"


def blas_description() -> str:
    """NumPy's BLAS, as its build configuration names it."""
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy without mode="dicts"
        return "unknown"


def thread_pools() -> str | None:
    """The loaded BLAS/OpenMP pools as threadpoolctl sees them, or None without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    pools = [
        f"{i.get('internal_api')} {i.get('version') or ''} {i.get('architecture') or ''}".strip()
        + f" ({i.get('num_threads')} threads)"
        for i in threadpool_info()
    ]
    return ", ".join(pools) or "none found"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(args: argparse.Namespace, threads_how: str) -> list[str]:
    """Lines describing the machine and settings of this run."""
    openblas = {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith("OPENBLAS_") and k not in THREAD_VARS
    }
    lines = [
        f"python {platform.python_version()}, numpy {np.__version__} ({blas_description()}), "
        f"torch {'skipped' if args.no_torch else torch_version() or 'not installed'}",
        f"cpu: {cpu_model()}, {os.cpu_count()} logical cores",
        f"dtype {args.dtype}, threads {args.threads} via {threads_how}",
        f"thread pools (threadpoolctl): {thread_pools() or 'threadpoolctl not installed'}",
        "OPENBLAS_* set in the environment: "
        + (", ".join(f"{k}={v}" for k, v in openblas.items()) or "none"),
    ]
    return lines


# ----- main --------------------------------------------------------------------------------------
def run_config(
    cfg: Config, mod: ModuleType, args: argparse.Namespace, repeats: int, sample_s: float
) -> list[tuple[str, str, float, float, int]]:
    """Check and time every implementation of ``cfg``: rows (config, impl, median, iqr, number)."""
    dtype = np.dtype(args.dtype)
    params, batch = make_data(mod, cfg, dtype, args.seed)
    ref = cfg.hand(params, batch)
    check_same(f"{cfg.name} derive", ref, mod.loss_and_grad(params, batch), dtype)
    steps_by_name: dict[str, Step] = {
        "derive": mod.loss_and_grad,
        "hand": cfg.hand,
        "gemm": gemm_step(gemm_pairs(params, batch, cfg.layers)),
    }
    if cfg.tight is not None:
        check_same(f"{cfg.name} tight", ref, cfg.tight(params, batch), dtype)
        steps_by_name["tight"] = cfg.tight
    if not args.no_torch:
        tstep = torch_step(cfg.kind, params, batch, args.threads)
        if tstep is not None:
            got = tstep(params, batch)
            as_numpy = (float(got[0].detach()), {k: v.numpy() for k, v in got[1].items()})
            check_same(f"{cfg.name} torch", ref, as_numpy, dtype)
            steps_by_name["torch"] = tstep
    steps = {k: (lambda f=f: f(params, batch)) for k, f in steps_by_name.items()}
    number = calibrate(steps["hand"], sample_s)
    samples = time_interleaved(steps, number, repeats)
    rows = []
    for name, s in samples.items():
        q1, _, q3 = statistics.quantiles(s, n=4)
        rows.append((cfg.name, name, statistics.median(s), q3 - q1, number))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the benchmark modules, check them against hand-written NumPy, time, print."""
    args = build_parser().parse_args(argv)
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    repeats = args.repeats or (7 if args.quick else 41)
    sample_s = (args.sample_ms or (5.0 if args.quick else 40.0)) / 1000
    configs = [c for c in CONFIGS if not args.config or c.name in args.config]
    if not configs:
        known = ", ".join(c.name for c in CONFIGS)
        print(f"no config matches {args.config}; known: {known}", file=sys.stderr)
        return 2
    limiter, threads_how = thread_limiter(args.threads)
    rows = []
    with limiter, tempfile.TemporaryDirectory(prefix="derive_bench_") as tmp:
        for line in header(args, threads_how):
            print(line)
        print(f"{repeats} interleaved samples per implementation, ~{sample_s * 1e3:g} ms each\n")
        for cfg in configs:
            mod = load_module(generate(SPEC_DIR / cfg.spec, tmp).path)
            rows += run_config(cfg, mod, args, repeats, sample_s)
    hand = {cfg: med for cfg, impl, med, _, _ in rows if impl == "hand"}
    gemm = {cfg: med for cfg, impl, med, _, _ in rows if impl == "gemm"}
    head = (
        f"{'config':<18} {'impl':<7} {'median µs':>11} {'IQR µs':>9} {'vs hand':>8} "
        f"{'vs gemm':>8} {'calls':>6}"
    )
    print(head)
    print("-" * len(head))
    for cfg, impl, med, iqr, number in rows:
        print(
            f"{cfg:<18} {impl:<7} {med * 1e6:>11.1f} {iqr * 1e6:>9.1f} "
            f"{med / hand[cfg]:>7.2f}x {med / gemm[cfg]:>7.3f}x {number:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
