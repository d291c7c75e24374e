"""Wall time of ``derive gen`` against importing JAX and jit-compiling ``value_and_grad``.

Both sides are whole processes started from scratch, timed from outside:

* **derive**: ``derive gen -o TMP SPEC`` for a ``--layers``-layer sigmoid MLP of width
  ``--width`` with softmax cross-entropy (the spec of ``bench_derive.py``), output written
  to a fresh folder each run;
* **jax**: ``python -c`` that imports JAX, defines the same net (``W @ h + b``, sigmoid,
  log-softmax cross-entropy, mean over a batch of 32), and calls
  ``jax.jit(jax.value_and_grad(loss))`` once, blocking until the result is ready: import,
  tracing, XLA compilation and one run.

Runs alternate (derive, jax, derive, jax, ...); the table gives the median of ``--runs``.
JAX need not be installed next to derive: pass the interpreter of a venv that has it::

    python3 -m venv /tmp/jaxvenv && /tmp/jaxvenv/bin/pip install jax jaxlib
    python benchmarks/bench_gen_vs_jax.py --jax-python /tmp/jaxvenv/bin/python
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_derive import mlp_spec

JAX_SCRIPT = """
import jax, jax.numpy as jnp
layers, width, classes, batch = {layers}, {width}, 4, 32
key = jax.random.PRNGKey(0)
params = []
for i in range(layers):
    rows = classes if i == layers - 1 else width
    key, k1 = jax.random.split(key)
    params.append((jax.random.normal(k1, (rows, width)) * 0.1, jnp.zeros(rows)))
x = jax.random.normal(key, (batch, width))
t = jax.nn.one_hot(jnp.arange(batch) % classes, classes)

def loss(params, x, t):
    h = x
    for W, b in params[:-1]:
        h = jax.nn.sigmoid(h @ W.T + b)
    W, b = params[-1]
    f = h @ W.T + b
    return -jnp.mean(jnp.sum(t * jax.nn.log_softmax(f), axis=-1))

value, grads = jax.jit(jax.value_and_grad(loss))(params, x, t)
jax.block_until_ready(grads)
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--jax-python", default=sys.executable, help="interpreter that has JAX")
    args = ap.parse_args(argv)
    derive_exe = shutil.which("derive") or "derive"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    times: dict[str, list[tuple[float, float]]] = {"derive gen": [], "jax import+jit": []}
    with tempfile.TemporaryDirectory(prefix="derive_gen_jax_") as tmp:
        spec = Path(tmp) / "mlp.toml"
        spec.write_text(mlp_spec(args.layers, args.width), encoding="utf-8")
        script = JAX_SCRIPT.format(layers=args.layers, width=args.width)
        timed([args.jax_python, "-c", script], env)  # warm the file cache, once each
        timed([derive_exe, "gen", "-o", str(Path(tmp) / "warm"), str(spec)])
        for k in range(args.runs):
            out = Path(tmp) / f"out{k}"
            times["derive gen"].append(timed([derive_exe, "gen", "-o", str(out), str(spec)]))
            times["jax import+jit"].append(timed([args.jax_python, "-c", script], env))
    print(f"{args.layers}-layer sigmoid MLP, width {args.width}; median of {args.runs} processes")
    print(f"{'':<16} {'wall s':>7} {'min':>6} {'max':>6} {'vs jax':>7} {'cpu s':>7} {'vs jax':>7}")
    jax_wall = statistics.median(w for w, _ in times["jax import+jit"])
    jax_cpu = statistics.median(c for _, c in times["jax import+jit"])
    for name, ts in times.items():
        walls, cpus = [w for w, _ in ts], [c for _, c in ts]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(
            f"{name:<16} {wall:7.3f} {min(walls):6.3f} {max(walls):6.3f} {wall / jax_wall:6.2f}x"
            f" {cpu:7.3f} {cpu / jax_cpu:6.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
