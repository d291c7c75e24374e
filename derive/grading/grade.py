"""``derive grade``: a whole class, in parallel sandboxes, with Gradescope results and a CSV.

Each entry of the submissions folder is one student: a folder (graded as by ``verify code``)
or a single ``.py`` file. The reference gradients and test batches are computed once, by the
grader, and shared by every submission. Each gradient is one Gradescope test worth one point.

Output, in ``--out``:

- ``students/NAME/results.json``: Gradescope's format (``score``, ``max_score``, ``output``,
  ``tests``: ``name``, ``score``, ``max_score``, ``status``, ``output``);
- ``summary.csv``: one row per student (score, max score, one verdict per gradient, seconds).

Submissions run in ``--jobs`` sandboxes at a time, each in its own slot (its own uid when the
grader runs as root), so that one submission's processes never count against another's.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from derive.grading import sandbox
from derive.grading.code import BadInput, CodeReport, verify_code
from derive.grading.reference import Case, Reference


@dataclass(frozen=True)
class Submission:
    """One student's work: a name and a file or folder."""

    name: str
    path: Path


def find_submissions(folder: Path) -> list[Submission]:
    """Every student folder and ``.py`` file directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder of submissions")
    subs = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "__")) or entry.is_symlink():
            continue
        if entry.is_dir():
            subs.append(Submission(entry.name, entry))
        elif entry.suffix == ".py":
            subs.append(Submission(entry.stem, entry))
    if not subs:
        raise BadInput(f"{folder}: no submissions (one folder or one .py file per student)")
    stems = [s.name for s in subs]
    return [  # alice/ and alice.py both there: the file keeps its suffix in its name
        Submission(s.path.name, s.path) if stems.count(s.name) > 1 and s.path.is_file() else s
        for s in subs
    ]


def gradescope_json(report: CodeReport) -> dict[str, Any]:
    """Gradescope's results.json for one submission: one test of one point per gradient."""
    tests = []
    for r in report.results:
        text = r.verdict.value + (f"\n{r.text()}" if r.text() else "")
        tests.append(
            {
                "name": f"dL/d{r.name}",
                "score": 1.0 if r.ok else 0.0,
                "max_score": 1.0,
                "status": "passed" if r.ok else "failed",
                "output": text,
            }
        )
    output = [report.isolation, *report.notes]
    if report.stdout:
        output.append("Your code printed (last lines):\n" + report.stdout)
    return {
        "score": float(sum(t["score"] for t in tests)),
        "max_score": float(len(tests)),
        "output": "\n".join(output),
        "tests": tests,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def summary_csv(ref: Reference, rows: list[tuple[Submission, CodeReport]]) -> str:
    """The class summary: student, score, max_score, one verdict per gradient, seconds."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", "score", "max_score", *[f"dL/d{n}" for n in ref.params], "seconds"])
    for sub, report in rows:
        score = sum(r.ok for r in report.results)
        verdicts = [r.verdict.value for r in report.results]
        w.writerow([sub.name, score, len(report.results), *verdicts, f"{report.seconds:.2f}"])
    return buf.getvalue()


class Progress:
    """A progress bar on a terminal, one plain line per submission otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.tty = stream.isatty()
        self.start = time.monotonic()

    def step(self, name: str, report: CodeReport) -> None:
        self.done += 1
        score = sum(r.ok for r in report.results)
        if not self.tty:
            print(
                f"[{self.done}/{self.total}] {name}: {score}/{len(report.results)}",
                file=self.stream,
            )
            return
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 30
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total}  {rate:.1f}/s  eta {eta:4.0f} s ")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


@dataclass
class ClassResult:
    """What ``grade`` did: reports in submission order, wall time, jobs."""

    rows: list[tuple[Submission, CodeReport]]
    seconds: float
    jobs: int

    @property
    def full_marks(self) -> int:
        return sum(r.ok for _s, r in self.rows)


def grade_class(
    ref: Reference,
    cases: list[Case],
    submissions: list[Submission],
    out: Path,
    *,
    entry: str = "backward",
    mapping: dict[str, str] | None = None,
    limits: sandbox.Limits | None = None,
    jobs: int = 2,
    progress: Callable[[str, CodeReport], None] | None = None,
) -> ClassResult:
    """Grade every submission, ``jobs`` at a time; write results.json files and summary.csv."""
    slots: queue.Queue[int] = queue.Queue()
    for k in range(jobs):
        slots.put(k)
    start = time.monotonic()

    def one(sub: Submission) -> CodeReport:
        slot = slots.get()
        try:
            report = verify_code(
                ref, cases, sub.path, entry=entry, mapping=mapping, limits=limits, slot=slot
            )
        finally:
            slots.put(slot)
        write_json(out / "students" / sub.name / "results.json", gradescope_json(report))
        return report

    reports: dict[Submission, CodeReport] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, sub): sub for sub in submissions}
        for fut in as_completed(futures):
            sub = futures[fut]
            reports[sub] = fut.result()
            if progress is not None:
                progress(sub.name, reports[sub])
    rows = [(sub, reports[sub]) for sub in submissions]
    (out / "summary.csv").write_text(summary_csv(ref, rows), encoding="utf-8")
    return ClassResult(rows, time.monotonic() - start, jobs)


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def stderr_progress(total: int) -> Callable[[str, CodeReport], None]:
    return Progress(total, sys.stderr).step
