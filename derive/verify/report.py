"""Results of the checks and how they are shown: tables for people, JSON for programs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SymbolicResult:
    """Worst error per parameter between the emitted backward and ``sympy.diff``."""

    ok: bool
    max_abs_err: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    note: str = ""
    skipped: bool = False


@dataclass
class FullReport:
    """Finite differences plus the SymPy cross-check."""

    fd: CheckReport
    symbolic: SymbolicResult | None
    magnitudes: SmokeResult | None = None
    size_notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        big_ok = self.magnitudes is None or self.magnitudes.ok
        return self.fd.ok and big_ok and (self.symbolic is None or self.symbolic.ok)

    def to_json(self) -> dict[str, Any]:
        out = self.fd.to_json()
        out["ok"] = self.ok
        if self.size_notes:
            out["sizes"] = self.size_notes
        if self.magnitudes is not None:
            out["large_magnitudes"] = {"ok": self.magnitudes.ok, "note": self.magnitudes.note}
        if self.symbolic is not None:
            out["symbolic"] = {
                "ok": self.symbolic.ok,
                "skipped": self.symbolic.skipped,
                "sizes": self.symbolic.sizes,
                "max_abs_err": self.symbolic.max_abs_err,
                "note": self.symbolic.note,
            }
        return out

    def table(self) -> str:
        text = "".join(f"note: {n}\n" for n in self.size_notes) + self.fd.table()
        if self.magnitudes is not None:
            verdict = "PASS" if self.magnitudes.ok else "FAIL"
            text += f"\n{verdict}: large magnitudes: {self.magnitudes.note}"
        if self.symbolic is not None and self.symbolic.skipped:
            text += f"\nSymPy cross-check {self.symbolic.note}"
        elif self.symbolic is not None:
            s = self.symbolic
            worst = max(s.max_abs_err.values(), default=0.0)
            verdict = "PASS" if s.ok else "FAIL"
            sizes = ", ".join(f"{k}={v}" for k, v in s.sizes.items())
            text += (
                f"\n{verdict}: direct SymPy differentiation of the expanded loss ({sizes}): "
                f"max abs err {worst:.2e}" + (f" ({s.note})" if s.note else "")
            )
        return text


@dataclass
class ParamResult:
    """Outcome for one parameter: worst errors over every comparison made."""

    ok: bool
    max_abs_err: float
    max_rel_err: float
    shape: tuple[int, ...]
    n_compared: int
    note: str = ""
    used: float = math.nan  # the worst error's share of its bound atol + rtol*scale + noise


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
                    "allowance_used": float(r.used),
                }
                for name, r in self.params.items()
            },
            "float32": {"ok": bool(self.float32.ok), "note": self.float32.note},
        }

    def table(self) -> str:
        """Aligned table (param, shape, max abs err, max rel err, verdict) and a summary line."""
        header = ("param", "shape", "max abs err", "max rel err", "allowance", "verdict")
        rows = [
            (
                name,
                str(r.shape),
                _fmt_err(r.max_abs_err),
                _fmt_err(r.max_rel_err),
                _fmt_share(r.used),
                _verdict(r.ok),
            )
            for name, r in self.params.items()
        ]
        rows.append(("(float32 run)", "-", "-", "-", "-", _verdict(self.float32.ok)))
        lines = _align([header, *rows])
        lines.insert(1, "-" * len(lines[0]))
        details = [f"  {n}: {r.note}" for n, r in self.params.items() if not r.ok and r.note]
        if not self.float32.ok:
            details.append(f"  float32 run: {self.float32.note}")
        details += [f"  note: {note}" for note in self.notes]
        return "\n".join([*lines, *details, ALLOWANCE, self._summary()])

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


ALLOWANCE = (
    "allowance: the worst entry's share of atol + rtol * |gradient| + rounding noise\n"
    "  (eps * |loss| / h, what the central difference magnifies); PASS up to 100%"
)


def _fmt_share(x: float) -> str:
    """The share of the allowance used, as a percentage, or ``-`` when never measured."""
    if math.isnan(x):
        return "-"
    return f"{100 * x:.0f}%" if x >= 0.995 else f"{100 * x:.2g}%"


def _fmt_err(x: float) -> str:
    """Scientific notation, or ``-`` for an error that was never measured."""
    return "-" if math.isnan(x) else f"{x:.2e}"


def _verdict(ok: bool) -> str:
    """``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def _align(rows: list[tuple[str, ...]]) -> list[str]:
    """Left-align text columns, right-align the numeric ones (2, 3 and 4)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in (2, 3, 4) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out
