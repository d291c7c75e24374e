"""Throughput of ``derive grade``: a class of small submissions on examples/mlp_softmax.toml.

Writes N submissions (right ones and the usual mistakes, in turn) into a temporary folder,
grades them with ``--jobs`` sandboxes and prints submissions per second.

    python benchmarks/bench_grade.py               # 1000 submissions, 2 jobs
    python benchmarks/bench_grade.py -n 100 --jobs 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from derive.grading import sandbox
from derive.grading.grade import find_submissions, grade_class
from derive.grading.reference import load_reference

ROOT = Path(__file__).resolve().parents[1]

RIGHT = """\
import numpy as np


def backward(x, t, W1, b1, W2, b2):
    h = 1 / (1 + np.exp(-(x @ W1.T + b1)))
    f = h @ W2.T + b2
    p = np.exp(f - f.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gf = (p - t) / x.shape[0]
    gz = (gf @ W2) * h * (1 - h)
    return {"W1": gz.T @ x, "b1": gz.sum(0), "W2": gf.T @ h, "b2": gf.sum(0)}
"""
MISTAKES = [
    ("/ x.shape[0]", ""),
    ('"b2": gf.sum(0)', '"b2": -gf.sum(0)'),
    ('"W2": gf.T @ h', '"W2": h.T @ gf'),
    (" * h * (1 - h)", ""),
]


def write_class(folder: Path, n: int) -> None:
    for i in range(n):
        k = i % (len(MISTAKES) + 1)
        text = RIGHT if k == 0 else RIGHT.replace(*MISTAKES[k - 1])
        (folder / f"student{i:04d}.py").write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    ref = load_reference(ROOT / "examples" / "mlp_softmax.toml")
    cases = ref.cases(3)
    with tempfile.TemporaryDirectory() as tmp:
        subs_dir, out = Path(tmp) / "subs", Path(tmp) / "out"
        subs_dir.mkdir()
        write_class(subs_dir, args.n)
        subs = find_submissions(subs_dir)
        load0 = os.getloadavg()[0]
        start = time.monotonic()
        result = grade_class(ref, cases, subs, out, jobs=args.jobs)
        seconds = time.monotonic() - start
        load1 = os.getloadavg()[0]
    print(sandbox.protection())
    print(
        f"{args.n} submissions, {args.jobs} jobs, {os.cpu_count()} CPUs: {seconds:.1f} s, "
        f"{args.n / seconds:.2f} submissions/s; {result.full_marks} full marks; "
        f"load average {load0:.1f} before, {load1:.1f} after"
    )


if __name__ == "__main__":
    main()
