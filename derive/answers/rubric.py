"""Partial credit as data: a TOML rubric maps verdicts and recognised mistakes to marks.

```toml
full = 10          # an equivalent answer
default = 0        # a wrong answer with no recognised mistake
unreadable = 0     # an answer that cannot be read
[mistakes]         # the best mark among the answer's recognised mistakes counts
transpose = 8      # right up to transpose / layout
sign = 5
sigma_prime_missing = 4
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from derive.answers.scalar import BadQuestion
from derive.answers.verdict import Mistake, Status, Verdict

TOP = {"full", "default", "unreadable", "mistakes"}


@dataclass(frozen=True)
class Rubric:
    full: float = 1.0
    default: float = 0.0
    unreadable: float = 0.0
    mistakes: dict[Mistake, float] = field(default_factory=dict)

    def score(self, verdict: Verdict) -> float:
        if verdict.status is Status.EQUIVALENT:
            return self.full
        if verdict.status is Status.UNREADABLE:
            return self.unreadable
        marks = [self.mistakes[f.mistake] for f in verdict.findings if f.mistake in self.mistakes]
        return max(marks, default=self.default)


def load_rubric(path: str | Path) -> Rubric:
    """Read and check a rubric file; every problem is a :class:`BadQuestion` (exit 2)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadQuestion(f"{p}: cannot read the rubric ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BadQuestion(f"{p}: not valid TOML: {err}") from None
    unknown = set(data) - TOP
    if unknown:
        raise BadQuestion(
            f"{p}: unknown key {sorted(unknown)[0]!r}; a rubric has {', '.join(sorted(TOP))}"
        )
    marks = {k: _mark(p, k, data[k]) for k in ("full", "default", "unreadable") if k in data}
    table = data.get("mistakes", {})
    if not isinstance(table, dict):
        raise BadQuestion(f"{p}: [mistakes] must be a table of name = marks")
    names = {m.value: m for m in Mistake}
    mistakes: dict[Mistake, float] = {}
    for key, value in table.items():
        if key not in names:
            raise BadQuestion(
                f"{p}: [mistakes] {key!r} is not a recognised mistake; known: {', '.join(names)}"
            )
        mistakes[names[key]] = _mark(p, f"mistakes.{key}", value)
    return Rubric(**marks, mistakes=mistakes)


def _mark(path: Path, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise BadQuestion(f"{path}: {key} must be a number of marks (0 or more), got {value!r}")
    return float(value)
