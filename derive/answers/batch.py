"""Many answers to one question: a quiz's options, or a class export (CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derive.answers.rubric import Rubric
from derive.answers.scalar import BadQuestion
from derive.answers.verdict import Status, Verdict

MAX_ROWS = 5000
MAX_BYTES = 5_000_000

Judge = Callable[[str], Verdict]


@dataclass
class Row:
    label: str
    answer: str
    verdict: Verdict

    def to_json(self, key: str) -> dict[str, Any]:
        return {key: self.label, "answer": self.answer, **self.verdict.to_json()}

    def line(self) -> str:
        v = self.verdict
        why = v.error or "; ".join(f.message for f in v.findings)
        score = f"  [{v.score:g}]" if v.score is not None else ""
        return f"{self.label}: {v.status.value}{score}" + (f" ({why})" if why else "")


@dataclass
class Result:
    rows: list[Row]
    key: str  # "choice" or "student"

    @property
    def right(self) -> list[str]:
        return [r.label for r in self.rows if r.verdict.status is Status.EQUIVALENT]

    @property
    def exit_code(self) -> int:
        """Choices: 0 if some option is right, 1 if none, 2 if one is unreadable.

        Class: 0 if every answer is right, else 1 (an unreadable answer is a wrong one).
        """
        if self.key == "choice":
            if any(r.verdict.status is Status.UNREADABLE for r in self.rows):
                return 2
            return 0 if self.right else 1
        return 0 if len(self.right) == len(self.rows) else 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "right": self.right,
            "rows": [r.to_json(self.key) for r in self.rows],
        }
        if self.rows:
            out["question"] = self.rows[0].verdict.question
        return out

    def text(self) -> str:
        lines = [f"question: {self.rows[0].verdict.question}"] if self.rows else []
        lines += [r.line() for r in self.rows]
        if self.key == "choice":
            lines.append(f"right: {', '.join(self.right) or 'none'}")
        else:
            lines.append(f"{len(self.right)} of {len(self.rows)} answers right")
        return "\n".join(lines) + "\n"


def _judged(judge: Judge, answer: str, rubric: Rubric | None, memo: dict[str, Verdict]) -> Verdict:
    if answer not in memo:
        verdict = judge(answer)
        if rubric is not None:
            verdict.score = rubric.score(verdict)
        memo[answer] = verdict
    return memo[answer]


def judge_choices(judge: Judge, choices: Sequence[str], rubric: Rubric | None) -> Result:
    """``"A: formula"`` options (a label is optional: they are numbered)."""
    memo: dict[str, Verdict] = {}
    rows = []
    for i, choice in enumerate(choices, 1):
        label, sep, formula = choice.partition(":")
        if not sep:
            label, formula = str(i), choice
        rows.append(
            Row(label.strip(), formula.strip(), _judged(judge, formula.strip(), rubric, memo))
        )
    return Result(rows, "choice")


def judge_csv(judge: Judge, path: str | Path, rubric: Rubric | None) -> Result:
    """A class export with an ``answer`` column and optionally a ``student`` column."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise BadQuestion(f"{p}: cannot read ({err.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise BadQuestion(f"{p}: the file is too large (at most {MAX_BYTES} bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadQuestion(f"{p}: not UTF-8 text; export the CSV as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "answer" not in fields:
        raise BadQuestion(
            f"{p}: line 1: no 'answer' column (columns: {', '.join(fields) or 'none'})"
        )
    reader.fieldnames = fields
    memo: dict[str, Verdict] = {}
    rows = []
    for n, record in enumerate(reader, 2):
        if len(rows) >= MAX_ROWS:
            raise BadQuestion(f"{p}: more than {MAX_ROWS} rows")
        answer = (record.get("answer") or "").strip()
        label = (record.get("student") or "").strip() or f"line {n}"
        rows.append(Row(label, answer, _judged(judge, answer, rubric, memo)))
    return Result(rows, "student")
