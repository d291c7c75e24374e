"""``derive verify code``: run one submission in the sandbox and judge every gradient.

The submission is a ``.py`` file or a folder. In a folder the file graded is the one whose
top level defines the entry function (found with ``ast``, which reads and never runs the
code); the folder's other files are importable from it. The entry is called with keyword
arguments, one per declared input and parameter (renamed by ``--map SPEC=SUBMISSION``), or,
when it is declared as ``entry(params, batch)``, with those two dicts (the generated module's
convention), and
returns the gradients as a dict (keys: the parameter names, also accepted as ``dW1``,
``g_W1``, ``grad_W1``, ``dL_dW1``, ``W1_grad``) or as a tuple in the spec's parameter order.
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from derive.grading import sandbox
from derive.grading.reference import Case, Reference
from derive.grading.verdicts import GradResult, Verdict, judge

RUNNER = Path(__file__).with_name("runner.py")
MAX_FILE_BYTES = 4 << 20
MAX_TOTAL_BYTES = 32 << 20
PREFIXES = ("d", "g_", "grad_", "dL_d", "dL/d", "d_")
SUFFIXES = ("_grad", "_gradient")


class BadInput(Exception):
    """A mistake in how the grader was called (exit 2): missing submission, bad --map."""


@dataclass
class CodeReport:
    """Verdicts for one submission."""

    submission: str
    entry: str
    file: str | None
    results: list[GradResult]
    batch_sizes: list[int]
    isolation: str
    stdout: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "submission": self.submission,
            "file": self.file,
            "entry": self.entry,
            "ok": self.ok,
            "gradients": [r.to_json() for r in self.results],
            "batch_sizes": self.batch_sizes,
            "isolation": self.isolation,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        sizes = ", ".join(map(str, self.batch_sizes))
        head = f"{self.submission}: {self.entry}() on {len(self.batch_sizes)} batches ({sizes})"
        lines = [head, f"  {self.isolation}"]
        width = max((len(r.name) for r in self.results), default=0) + 4
        shared = {(r.verdict, r.text()) for r in self.results}
        if len(self.results) > 1 and len(shared) == 1 and not self.ok:
            lines.append(f"  every gradient: {self.results[0].verdict.value}")
            lines += [f"      {line}" for line in self.results[0].text().splitlines()]
        for r in self.results if len(shared) > 1 or self.ok else []:
            lines.append(f"  {'dL/d' + r.name:<{width}} {r.verdict.value}")
            lines += [f"      {line}" for line in r.text().splitlines()]
        lines += [f"  note: {n}" for n in self.notes]
        wrong = sum(not r.ok for r in self.results)
        total = len(self.results)
        lines.append("PASS: all gradients right" if self.ok else f"FAIL: {wrong}/{total} wrong")
        return "\n".join(lines)


def parse_map(text: str | None, ref: Reference) -> dict[str, str]:
    """``"X=x,Y=y"`` -> {spec name: submission name}; unknown spec names are bad input."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        spec_name, eq, sub_name = (s.strip() for s in item.partition("="))
        if not eq or not spec_name or not sub_name.isidentifier():
            raise BadInput(f"--map: '{item}' is not SPEC_NAME=SUBMISSION_NAME")
        if spec_name not in (*ref.inputs, *ref.params):
            known = ", ".join([*ref.inputs, *ref.params])
            raise BadInput(f"--map: '{spec_name}' is not an input or parameter ({known})")
        out[spec_name] = sub_name
    return out


def defines(source: str, entry: str) -> bool:
    """Does this module text bind ``entry`` at top level? (``ast`` only; nothing is run)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == entry for t in targets):
                return True
        if isinstance(node, ast.ImportFrom | ast.Import) and any(
            (a.asname or a.name) == entry for a in node.names
        ):
            return True
    return False


def pick_file(submission: Path, entry: str) -> tuple[Path | None, str]:
    """The file to grade in a submission, or None and why none fits."""
    if submission.is_file():
        return submission, ""
    files = sorted(p for p in submission.rglob("*.py") if p.is_file() and not p.is_symlink())
    if not files:
        return None, "no .py file in the submission"
    having = [p for p in files if defines(_read(p), entry)]
    if having:
        return min(having, key=lambda p: (len(p.relative_to(submission).parts), p.name)), ""
    if len(files) == 1:
        return files[0], ""
    names = ", ".join(p.relative_to(submission).as_posix() for p in files[:8])
    return None, f"no file defines a function '{entry}' ({names})"


def _read(path: Path) -> str:
    try:
        return path.read_bytes()[:MAX_FILE_BYTES].decode("utf-8", errors="replace")
    except OSError:
        return ""


def _copy_submission(submission: Path, dest: Path) -> list[str]:
    """Copy regular files (no symlinks followed, size-capped) into ``dest``, world-readable."""
    notes, total = [], 0
    root = submission if submission.is_dir() else submission.parent
    files = sorted(submission.rglob("*")) if submission.is_dir() else [submission]
    for src in files:
        if src.is_symlink() or not src.is_file():
            continue
        size = src.stat().st_size
        rel = src.relative_to(root)
        if size > MAX_FILE_BYTES or total + size > MAX_TOTAL_BYTES:
            notes.append(f"skipped {rel.as_posix()} ({size} bytes): too large")
            continue
        total += size
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    for path in [dest, *dest.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return notes


def verify_code(
    ref: Reference,
    cases: list[Case],
    submission: str | Path,
    *,
    entry: str = "backward",
    mapping: dict[str, str] | None = None,
    limits: sandbox.Limits | None = None,
    slot: int = 0,
) -> CodeReport:
    """Run ``submission`` on ``cases`` in the sandbox and judge each parameter's gradient."""
    limits = limits or sandbox.Limits()
    submission = Path(submission)
    if not submission.exists():
        raise BadInput(f"{submission}: no such file or folder")
    mapping = mapping or {}
    sizes = [c.m for c in cases]
    report = CodeReport(str(submission), entry, None, [], sizes, sandbox.protection())
    file, why = pick_file(submission, entry)
    if file is None:
        report.results = _all(ref, Verdict.MISSING, why)
        return report
    with tempfile.TemporaryDirectory(prefix="derive-grade-") as tmp:
        in_dir, files_dir = Path(tmp) / "in", Path(tmp) / "files"
        in_dir.mkdir()
        files_dir.mkdir()
        os.chmod(tmp, 0o755)
        report.notes += _copy_submission(submission, files_dir)
        rel = file.relative_to(submission if submission.is_dir() else submission.parent)
        report.file = rel.as_posix()
        _write_job(in_dir, ref, cases, rel.as_posix(), entry, mapping)
        run = sandbox.run_python(
            "runner.py", in_dir=in_dir, files_dir=files_dir, limits=limits, slot=slot
        )
    report.seconds = run.seconds
    report.stdout = _tail(run.stdout + run.stderr, 40)
    report.results = _judge_run(ref, cases, run, entry, mapping, limits)
    return report


def _write_job(
    in_dir: Path, ref: Reference, cases: list[Case], file: str, entry: str, mapping: dict
) -> None:
    args = {mapping.get(n, n): n for n in (*ref.inputs, *ref.params)}
    params = [mapping.get(n, n) for n in ref.params]
    job = {"file": file, "entry": entry, "cases": len(cases), "args": args, "params": params}
    (in_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
    arrays = {}
    for k, case in enumerate(cases):
        arrays.update({f"c{k}.{n}": a for n, a in {**case.batch, **case.params}.items()})
    np.savez(in_dir / "inputs.npz", **arrays)
    shutil.copyfile(RUNNER, in_dir / "runner.py")
    for p in in_dir.iterdir():
        os.chmod(p, 0o644)


def parse_records(data: bytes) -> list[tuple[dict, list[np.ndarray]]]:
    """The runner's records (see ``runner.py``); stops at the first malformed one."""
    out, pos = [], 0
    while pos + 12 <= len(data) and data[pos : pos + 4] == b"DRV1":
        n = int.from_bytes(data[pos + 4 : pos + 12], "big")
        chunk = data[pos + 12 : pos + 12 + n]
        if len(chunk) != n:
            break
        pos += 12 + n
        try:
            with np.load(io.BytesIO(chunk), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"].astype(np.uint8)).decode("utf-8"))
                count = sum(1 for f in z.files if f != "meta")
                arrays = [np.asarray(z[f"r{i}"], dtype=np.float64) for i in range(count)]
        except Exception:  # anything malformed from the untrusted side ends the stream
            break
        if isinstance(meta, dict):
            out.append((meta, arrays))
    return out


def _all(ref: Reference, verdict: Verdict, detail: str, hints=()) -> list[GradResult]:
    return [GradResult(n, verdict, detail, list(hints)) for n in ref.params]


def _tail(text: str, n: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _judge_run(ref, cases, run, entry, mapping, limits) -> list[GradResult]:
    """Per-gradient results from the sandbox's outcome and records."""
    S = sandbox.Status
    if run.status is S.TIMED_OUT:
        return _all(ref, Verdict.TIMED_OUT, f"no answer within {limits.wall_seconds:g} s")
    if run.status is S.OUTPUT_LIMIT:
        if "result" in run.notes:
            cap = f"{limits.result_bytes >> 20} MiB"
            return _all(ref, Verdict.CRASHED, f"stopped: returned more than {cap} of arrays")
        cap = f"{limits.output_bytes // 1024} KiB"
        return _all(ref, Verdict.CRASHED, f"stopped: printed more than {cap}")
    if run.status is S.FAILED_TO_START:
        raise RuntimeError(f"the sandbox did not start: {run.stderr}")
    if run.signal_name == "SIGXCPU":
        return _all(ref, Verdict.TIMED_OUT, f"CPU time limit of {limits.cpu_seconds} s reached")
    records = parse_records(run.result)
    if not records or records[0][0].get("stage") != "start":
        raise RuntimeError(f"the grading runner failed before the submission ran:\n{run.stderr}")
    records = records[1:]
    first = records[0][0] if records else {}
    if first.get("stage") == "import":
        return _all(ref, Verdict.CRASHED, "failed on import:\n" + str(first.get("error")))
    if first.get("stage") == "entry":
        defined = ", ".join(map(str, first.get("defined") or [])) or "none"
        return _all(ref, Verdict.MISSING, f"no function '{entry}' (defines: {defined})")
    calls = {r[0].get("case"): r for r in records if r[0].get("stage") == "call"}
    for k in range(len(cases)):
        if k not in calls:
            return _all(ref, Verdict.CRASHED, _died(run, limits))
        if calls[k][0].get("error"):
            return _all(ref, Verdict.CRASHED, _call_error(calls[k][0]["error"], mapping))
    per_case = [_lookup(ref, mapping, *calls[k]) for k in range(len(cases))]
    return [
        _worst(
            n, [(found[n], c, k) for k, (c, found) in enumerate(zip(cases, per_case, strict=True))]
        )
        for n in ref.params
    ]


def _died(run: sandbox.RunResult, limits: sandbox.Limits) -> str:
    """Why the process ended without answering every case."""
    sig = run.signal_name
    if sig == "SIGSEGV":
        return "crashed: segmentation fault (SIGSEGV)"
    if sig == "SIGXFSZ":
        return f"stopped: wrote a file larger than {limits.file_bytes >> 20} MiB"
    if sig == "SIGKILL":
        return "killed (SIGKILL), likely past the memory limit"
    if sig:
        return f"killed by {sig}"
    tail = _tail(run.stderr, 6)
    return f"exited with code {run.returncode} before returning" + (f":\n{tail}" if tail else "")


def _call_error(trace: str, mapping: dict[str, str]) -> str:
    text = f"raised an exception:\n{trace}"
    if "SystemExit" in trace:
        text = f"called sys.exit() instead of returning:\n{trace}"
    if "TypeError" in trace and "argument" in trace:
        text += "\nhint: the function is called with keyword arguments named as in the spec;"
        text += " rename with --map SPEC_NAME=YOUR_NAME"
    return text


def _lookup(ref: Reference, mapping: dict[str, str], meta: dict, arrays) -> dict:
    """{param: array, or a GradResult (missing) } for one case's returned value."""
    keys = [str(k) for k in meta.get("keys", [])]
    got = dict(zip(keys, arrays, strict=False))
    notes = "; ".join(map(str, meta.get("notes", [])))
    out: dict[str, Any] = {}
    for i, n in enumerate(ref.params):
        if meta.get("kind") == "tuple":
            value = got.get(str(i))
            why = f"the returned tuple has {len(keys)} items; expected {len(ref.params)}"
        else:
            value = _by_name(got, n, mapping.get(n, n))
            why = f"no '{n}' in the returned dict (keys: {', '.join(keys) or 'none'})"
        if meta.get("kind") == "other" or (value is None and notes):
            why = notes or why
        out[n] = value if value is not None else GradResult(n, Verdict.MISSING, why)
    return out


def _by_name(got: dict[str, np.ndarray], *names: str) -> np.ndarray | None:
    for name in names:
        if name in got:
            return got[name]
    for key, value in got.items():
        stem = key
        for p in PREFIXES:
            if stem.startswith(p) and stem[len(p) :] in names:
                return value
        for s in SUFFIXES:
            if stem.endswith(s) and stem[: -len(s)] in names:
                return value
    return None


def _worst(name: str, found: list[tuple[Any, Case, int]]) -> GradResult:
    """The worst finding over all cases; hints kept only when every failing case shows them."""
    results = [v if isinstance(v, GradResult) else judge(name, v, c, k) for v, c, k in found]
    bad = [r for r in results if not r.ok]
    if not bad:
        return max(results, key=lambda r: r.max_rel_err or 0.0)
    worst = max(bad, key=lambda r: (r.verdict.rank, r.max_rel_err or 0.0))
    same = [r for r in bad if r.verdict is worst.verdict]
    worst.hints = [h for h in worst.hints if all(h in r.hints for r in same)]
    return worst
