"""Per-gradient verdicts and hints: a submitted array against derive's reference gradient.

Two arrays agree when every entry satisfies

    |v - r| <= RTOL * max(|v|, |r|) + ATOL * max(1, max |r|),

and the reported relative error of an entry is ``|v - r| / max(|v|, |r|, ATOL max(1, max|r|))``.
Float64 code that computes the same quantity in another order lands near 1e-15; a real mistake
(a missing factor, a wrong sign, a dropped term) is of order one.

Hints name the common mistakes by testing the submitted value against simple transforms of
the reference (each test uses the same agreement rule): the transpose, a sum or mean over a
leading batch axis, a constant factor (the batch size m in particular), the negation, another
parameter's gradient, and the same formula built from another adjoint or value
(``g_X.T @ V`` and ``V.T @ g_X`` for matrices, ``sum_b g_X[b]`` for vectors).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derive.grading.reference import Case
from derive.lang.naming import gradient_of

RTOL = 1e-6
ATOL = 1e-9


class Verdict(enum.Enum):
    """One gradient's verdict; later members are worse."""

    OK = "ok"
    WRONG_VALUES = "wrong values"
    WRONG_SHAPE = "wrong shape"
    MISSING = "missing"
    CRASHED = "crashed"
    TIMED_OUT = "timed out"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


@dataclass
class GradResult:
    """The verdict on one parameter's gradient, with what was found and hints."""

    name: str
    verdict: Verdict
    detail: str = ""
    hints: list[str] = field(default_factory=list)
    max_rel_err: float | None = None
    where: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "ok": self.ok,
            "detail": self.detail,
            "hints": list(self.hints),
            "max_rel_err": self.max_rel_err,
            "where": self.where,
        }

    def text(self) -> str:
        """``detail`` and one ``hint:`` line per hint."""
        lines = [self.detail] if self.detail else []
        lines += [f"hint: {h}" for h in self.hints]
        return "\n".join(lines)


def close(v: np.ndarray, r: np.ndarray) -> bool:
    """The agreement rule of this module (same shapes assumed)."""
    if v.shape != r.shape or not np.all(np.isfinite(v)):
        return False
    atol = ATOL * max(1.0, float(np.abs(r).max(initial=0.0)))
    return bool(np.all(np.abs(v - r) <= RTOL * np.maximum(np.abs(v), np.abs(r)) + atol))


def judge(name: str, v: np.ndarray, case: Case, index: int) -> GradResult:
    """Compare the submitted ``v`` for parameter ``name`` with the reference of ``case``."""
    r = case.grads[name]
    label = f"case {index + 1}, batch of {case.m}"
    if v.shape != r.shape:
        detail = f"shape {v.shape} where {r.shape} was expected ({label})"
        return GradResult(name, Verdict.WRONG_SHAPE, detail, _shape_hints(name, v, case))
    if close(v, r):
        return GradResult(name, Verdict.OK, max_rel_err=_rel_err(v, r).max(initial=0.0))
    rel = _rel_err(v, r)
    worst = np.unravel_index(int(np.argmax(np.nan_to_num(rel, nan=np.inf))), r.shape)
    where = f"{name}[{', '.join(str(int(i)) for i in worst)}]" if r.ndim else name
    atol = ATOL * max(1.0, float(np.abs(r).max(initial=0.0)))
    bad = int(np.sum(~(np.abs(v - r) <= RTOL * np.maximum(np.abs(v), np.abs(r)) + atol)))
    detail = (
        f"{bad} of {r.size} entries wrong, max relative error {float(np.max(rel)):.2g} at {where}:"
        f" got {float(v[worst]):.6g}, expected {float(r[worst]):.6g} ({label})"
    )
    return GradResult(
        name, Verdict.WRONG_VALUES, detail, _value_hints(name, v, case), float(np.max(rel)), where
    )


def _rel_err(v: np.ndarray, r: np.ndarray) -> np.ndarray:
    floor = ATOL * max(1.0, float(np.abs(r).max(initial=0.0)))
    with np.errstate(invalid="ignore"):
        err = np.abs(v - r) / np.maximum(np.maximum(np.abs(v), np.abs(r)), floor)
    return np.where(np.isfinite(v), err, np.inf)


def _shape_hints(name: str, v: np.ndarray, case: Case) -> list[str]:
    r, m = case.grads[name], case.m
    if v.ndim == 2 and v.shape == r.shape[::-1]:
        if close(v.T, r):
            return ["equals the reference transposed"]
        more = _value_hints(name, v.T, case)
        return ["transposed", *more] if more else []
    if v.shape == (m, *r.shape):
        if close(v.sum(axis=0), r):
            return ["looks like per-example gradients: sum over the batch axis"]
        if close(v.mean(axis=0), r):
            return ["looks like per-example gradients: average over the batch axis"]
        return ["has a leading batch axis: a parameter's gradient is summed over the batch"]
    if v.size == r.size and close(v.reshape(r.shape), r):
        return [f"right values, but reshape to {r.shape}"]
    return []


def _value_hints(name: str, v: np.ndarray, case: Case) -> list[str]:
    r = case.grads[name]
    if close(-v, r):
        return ["sign flipped"]
    if r.ndim == 2 and close(v.T, r):
        return ["equals the reference transposed"]
    hints = _factor_hint(v, r, case.m, case.reduction, case.batch_size)
    for label, cand in _candidates(name, case):
        if close(v, cand):
            hints.append(label)
            break
    return hints


def _factor_hint(
    v: np.ndarray, r: np.ndarray, m: int, reduction: str, size: str = "m"
) -> list[str]:
    """``off by a factor of ...`` when ``v = c r`` for a constant ``c`` other than 1.

    ``m`` is the case's batch size and ``size`` the spec's name for it."""
    rr = float(np.vdot(r, r))
    if rr == 0.0:
        return []
    c = float(np.vdot(v, r)) / rr
    if not np.isfinite(c) or abs(c) < 1e-12 or not close(v, c * r):
        return []
    if abs(c - m) <= 1e-6 * m:
        why = f"the loss is the mean over the batch, divide the sum by {size}"
        if reduction == "sum":
            why = "multiplied by the batch size where the loss is already a sum"
        return [f"off by a factor of {size} = batch size: {why}"]
    if abs(c * m - 1) <= 1e-6:
        why = "divided by the batch size once too often"
        if reduction == "sum":
            why = f"the loss is a sum over the batch, not a mean: do not divide by {size}"
        return [f"off by a factor of 1/{size} ({size} = batch size): {why}"]
    return [f"off by a factor of {c:.4g}"]


def _candidates(name: str, case: Case) -> list[tuple[str, np.ndarray]]:
    """Labelled wrong-but-plausible values for ``name``'s gradient (memoised on the case)."""
    memo = case.__dict__.setdefault("_hint_candidates", {})
    if name not in memo:
        memo[name] = list(_build_candidates(name, case))
    return memo[name]


def _build_candidates(name: str, case: Case):
    r = case.grads[name]
    for other, g in case.grads.items():
        if other != name and g.shape == r.shape:
            yield f"uses dL/d{other} where dL/d{name} was meant", g
    adj = {x: a for x, a in case.adjoints.items() if a.ndim == 2}
    if r.ndim == 1:
        right = [x for x, a in adj.items() if a.shape[1:] == r.shape and close(a.sum(0), r)]
        for x in right:
            for y, a in adj.items():
                if y != x and a.shape[1:] == r.shape:
                    yield f"uses dL/d{y} where dL/d{x} was meant", a.sum(0)
        return
    if r.ndim != 2:
        return
    operands = {n: a for n, a in case.values.items() if a.ndim == 2}
    operands.update({f"g_{n}": a for n, a in adj.items()})
    for x, a in adj.items():
        for key, b in operands.items():
            for order, cand in (("ab", a.T @ b), ("ba", b.T @ a)):
                if cand.shape == r.shape and close(cand, r):
                    yield from _swaps(x, key, order, adj, operands, r.shape)


def _says(key: str) -> str:
    """How an operand is named in a hint: ``dL/dh1`` for ``g_h1``, else the value's name."""
    of = gradient_of(key)
    return f"dL/d{of}" if of else key


def _swaps(x, key, order, adj, operands, shape):
    """Variants of the right product of ``g_x`` and ``operands[key]`` with one factor swapped."""

    def product(a, b):
        return a.T @ b if order == "ab" else b.T @ a

    b = operands[key]
    for y, a in adj.items():
        if y != x and a.shape[1] == adj[x].shape[1]:
            yield f"uses dL/d{y} where dL/d{x} was meant", product(a, b)
    for other, b2 in operands.items():
        if other in (key, f"g_{x}") or b2.shape[1] != b.shape[1]:
            continue
        cand = product(adj[x], b2)
        if cand.shape == shape:
            yield f"uses {_says(other)} where {_says(key)} was meant", cand
