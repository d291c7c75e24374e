"""Time derive itself: importing it, and deriving and emitting a module from a spec.

For a 2-layer and a 20-layer sigmoid MLP (every layer ``--width`` wide, softmax cross-entropy
on top) a TOML spec is written to a temporary folder. Each measurement runs in a fresh Python
subprocess, so nothing (SymPy's caches, imported modules, compiled templates) carries over from
one run to the next; a run reports

* ``import``: ``from derive.pipeline import ...`` (SymPy, Jinja2, NumPy and derive itself);
* ``spec+graph``: reading the TOML spec and building the graph of index expressions;
* ``derive``: the symbolic reverse-mode derivation and its simplification;
* ``render``: printing the derivation as the NumPy module's text (not written to disk);
* ``derive+emit``: the last three together, i.e. spec → graph → derivation → rendered text.

After timing, each subprocess executes the rendered module once on a small random batch (not
timed), so a broken emission fails loudly instead of being timed.

The table gives the median over ``--runs`` subprocesses (default 5) of each stage, and of the
subprocess's whole wall time (interpreter start-up included).

Run from the repository root::

    python benchmarks/bench_derive.py
    python benchmarks/bench_derive.py --layers 2 20 40 --width 8 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

STAGES = ("import", "spec+graph", "derive", "render", "derive+emit")


def mlp_spec(layers: int, width: int, classes: int = 4) -> str:
    """TOML spec of a ``layers``-layer MLP: sigmoid hidden layers, softmax cross-entropy output.

    ``layers`` counts weight matrices: ``layers - 1`` hidden sigmoid layers of ``width`` units
    between an input of ``width`` features and ``classes`` logits.
    """
    if layers < 2:
        raise ValueError("an MLP here has at least 2 layers (one hidden layer)")
    lines = [
        f'name = "mlp{layers}_w{width}"',
        f'description = "{layers}-layer sigmoid MLP, width {width} (derive benchmark)"',
        "",
        "[dims]",
        f"d = {width}",
        f"k = {classes}",
        "",
        "[inputs]",
        'x = { shape = ["d"] }',
        't = { shape = ["k"], kind = "one_hot" }',
        "",
        "[params]",
    ]
    for i in range(1, layers + 1):
        rows = "k" if i == layers else "d"
        lines += [f'W{i} = {{ shape = ["{rows}", "d"] }}', f'b{i} = {{ shape = ["{rows}"] }}']
    lines += ["", "[forward]"]
    prev = "x"
    for i in range(1, layers):
        lines.append(f'z{i} = "W{i} @ {prev} + b{i}"')
        lines.append(f'h{i} = "sigmoid(z{i})"')
        prev = f"h{i}"
    lines += [
        f'f = "W{layers} @ {prev} + b{layers}"',
        'L = "softmax_cross_entropy(f, t)"',
        "",
        "[loss]",
        'output = "L"',
        'reduction = "mean"',
        "",
    ]
    return "\n".join(lines)


def smoke_test(text: str, name: str) -> None:
    """Run the emitted module's ``loss_and_grad`` once on a small random batch (untimed).

    Raises if the text does not execute or gives a non-finite loss or gradient, so that a
    timing is never reported for code that does not work.
    """
    import numpy as np

    namespace: dict[str, object] = {"__name__": f"_bench_{name}"}
    exec(compile(text, f"{name}.py", "exec"), namespace)
    inputs: dict[str, tuple[tuple[str | int, ...], str]] = namespace["INPUTS"]  # type: ignore[assignment]
    dims: dict[str, int] = namespace["DIMS"]  # type: ignore[assignment]
    rng = np.random.default_rng(0)
    batch = {}
    for key, (shape, kind) in inputs.items():
        size = tuple(d if isinstance(d, int) else dims[d] for d in shape)
        if kind == "one_hot":
            batch[key] = np.eye(size[-1])[rng.integers(0, size[-1], 3)]
        else:
            batch[key] = rng.standard_normal((3, *size))
    params = namespace["init_params"](seed=0)  # type: ignore[operator]
    loss, grads = namespace["loss_and_grad"](params, batch)  # type: ignore[operator]
    if not np.isfinite(loss) or not all(np.isfinite(g).all() for g in grads.values()):
        raise RuntimeError(f"{name}: non-finite loss or gradient")


def child(spec: str) -> None:
    """Time the stages for one spec in this (fresh) process and print them as JSON."""
    t0 = time.perf_counter()
    from derive.autodiff.reverse import derive
    from derive.emit.numpy_module import render
    from derive.pipeline import load_graph

    t1 = time.perf_counter()
    graph = load_graph(spec)
    t2 = time.perf_counter()
    derivation = derive(graph)
    t3 = time.perf_counter()
    text = render(derivation, spec_path=Path(spec).name)
    t4 = time.perf_counter()
    smoke_test(text, graph.name)
    times = {
        "import": t1 - t0,
        "spec+graph": t2 - t1,
        "derive": t3 - t2,
        "render": t4 - t3,
        "derive+emit": t4 - t1,
        "lines": text.count("\n"),
    }
    print(json.dumps(times))


def run_once(spec: Path) -> dict[str, float]:
    """Stage times of one fresh subprocess for ``spec``, plus its whole wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child for {spec.name} failed:\n{proc.stderr}")
    times = json.loads(proc.stdout.strip().splitlines()[-1])
    times["process"] = wall
    return times


def main(argv: Sequence[str] | None = None) -> int:
    """Write the specs, time ``--runs`` fresh subprocesses per spec, print medians."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, nargs="+", default=[2, 20], help="weight layers")
    p.add_argument("--width", type=int, default=8, help="width of input and hidden layers")
    p.add_argument("--runs", type=int, default=5, help="fresh subprocesses per spec")
    p.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    cols = (*STAGES, "process")
    head = f"{'net':<14} {'lines':>5} " + " ".join(f"{c + ' s':>13}" for c in cols)
    print(f"median of {args.runs} fresh subprocesses, python {sys.version.split()[0]}\n")
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory(prefix="derive_bench_") as tmp:
        for layers in args.layers:
            spec = Path(tmp) / f"mlp{layers}.toml"
            spec.write_text(mlp_spec(layers, args.width), encoding="utf-8")
            runs = [run_once(spec) for _ in range(args.runs)]
            med = {c: statistics.median(r[c] for r in runs) for c in cols}
            name = f"{layers}-layer w{args.width}"
            row = " ".join(f"{med[c]:>13.3f}" for c in cols)
            print(f"{name:<14} {int(runs[0]['lines']):>5} {row}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
