"""What judging an answer found: a typed record, printed as text or JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np


class Status(Enum):
    EQUIVALENT = "equivalent"
    LAYOUT = "right up to transpose"
    WRONG = "not equivalent"
    UNREADABLE = "cannot read"

    @property
    def exit_code(self) -> int:
        return {Status.EQUIVALENT: 0, Status.UNREADABLE: 2}.get(self, 1)


class Method(Enum):
    SYMBOLIC = "symbolic"
    NUMERIC = "numeric"


class Mistake(Enum):
    """Recognised mistakes; rubric files name them by value."""

    SIGN = "sign"
    FACTOR_2_EXTRA = "factor_2_extra"
    FACTOR_2_MISSING = "factor_2_missing"
    CONSTANT_FACTOR = "constant_factor"
    FACTOR_MISSING = "factor_missing"
    FACTOR_EXTRA = "factor_extra"
    MEAN_EXTRA = "mean_extra"
    MEAN_MISSING = "mean_missing"
    BATCH_SUM_MISSING = "batch_sum_missing"
    TRANSPOSE = "transpose"
    TRANSPOSE_MISSING = "transpose_missing"
    PRE_ACTIVATION = "pre_activation"
    T_MINUS_P = "t_minus_p"
    SOFTMAX_JACOBIAN = "softmax_jacobian"
    SOFTMAX_ELEMENTWISE = "softmax_elementwise"
    SIGMA_PRIME_MISSING = "sigma_prime_missing"
    WRONG_SHAPE = "wrong_shape"
    INTERMEDIATE = "intermediate"
    NOT_DIFFERENTIATED = "not_differentiated"
    WRONG_VARIABLE = "wrong_variable"


@dataclass(frozen=True)
class Finding:
    mistake: Mistake
    message: str


@dataclass(frozen=True)
class Reading:
    """How a formula was read: plain math, LaTeX and MathML."""

    plain: str
    latex: str
    mathml: str


@dataclass(frozen=True)
class Difference:
    """A point where answer and reference differ, with both values."""

    point: dict[str, Any]
    answer: Any
    reference: Any


@dataclass
class Verdict:
    status: Status
    question: str
    reading: Reading | None = None
    reference: Reading | None = None
    method: Method | None = None
    detail: str = ""
    difference: Difference | None = None
    findings: list[Finding] = field(default_factory=list)
    error: str = ""
    hint: str = ""
    score: float | None = None

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.status.value,
            "equivalent": self.status is Status.EQUIVALENT,
            "question": self.question,
        }
        if self.reading:
            out["read_as"] = {"plain": self.reading.plain, "latex": self.reading.latex}
        if self.error:
            out["error"] = self.error
        if self.hint:
            out["hint"] = self.hint
        if self.method:
            out["method"] = self.method.value
            out["detail"] = self.detail
        if self.reference:
            out["reference"] = {"plain": self.reference.plain, "latex": self.reference.latex}
        if self.difference:
            d = self.difference
            out["difference"] = {
                "point": _jsonable(d.point),
                "answer": _jsonable(d.answer),
                "expected": _jsonable(d.reference),
            }
        out["diagnosis"] = [
            {"mistake": f.mistake.value, "message": f.message} for f in self.findings
        ]
        if self.score is not None:
            out["score"] = self.score
        return out

    def text(self) -> str:
        lines = [f"question: {self.question}"]
        if self.reading:
            lines += [f"read as:  {self.reading.plain}", f"   LaTeX: {self.reading.latex}"]
        if self.error:
            lines.append(f"verdict:  cannot read the answer: {self.error}")
            if self.hint:
                lines.append(f"  hint: {self.hint}")
            return "\n".join(lines) + "\n"
        how = f" ({self.method.value}: {self.detail})" if self.method else ""
        lines.append(f"verdict:  {self.status.value}{how}")
        if self.difference:
            d = self.difference
            lines.append(f"  at {point_text(d.point)}")
            lines.append(f"    answer   = {value_text(d.answer)}")
            lines.append(f"    expected = {value_text(d.reference)}")
        if self.reference and self.status is not Status.EQUIVALENT:
            lines.append(f"expected: {self.reference.plain}")
        for f in self.findings:
            lines.append(f"diagnosis: {f.message}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        if self.score is not None:
            lines.append(f"score:    {self.score:g}")
        return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        v = float(value)
        return v if np.isfinite(v) else str(v)
    return value


def value_text(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.ndim:
        text = np.array2string(value, precision=4, suppress_small=True)
        return text.replace("\n", "\n" + " " * 15)
    return f"{float(value):.10g}"


def point_text(point: dict[str, Any]) -> str:
    parts = []
    for name, value in point.items():
        if isinstance(value, np.ndarray) and value.ndim:
            parts.append(f"{name} ({' × '.join(map(str, value.shape))})")
        else:
            parts.append(f"{name} = {float(value):.4g}")
    return ", ".join(parts)
