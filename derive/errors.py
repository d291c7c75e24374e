"""User-facing errors: a file, a line, what is wrong and how to mend it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A mistake in a spec (or in a graph built from Python), reported without a traceback.

    ``str(err)`` reads ``FILE:LINE: MESSAGE`` followed by an indented ``hint:`` line
    when a hint is known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.hint = hint

    def __str__(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the nearest candidate, or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
