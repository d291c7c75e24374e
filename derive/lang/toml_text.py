"""Lines of keys in the raw TOML text, and TOML syntax errors turned into located errors.

``tomllib`` reports no positions for valid documents, so a small line scanner
(:class:`_Locator`) maps key paths to their 1-based lines.
"""

from __future__ import annotations

import re
import tomllib
from typing import TYPE_CHECKING, Any

from derive.errors import SpecError

if TYPE_CHECKING:
    from derive.lang.context import _Ctx

GENERIC_TOML_HINT = (
    "check the quotes, brackets and 'key = value' syntax on this line; "
    'expressions are quoted strings, e.g. h1 = "sigmoid(z1)"'
)


# ---------------------------------------------------------------------------------------
# Locating keys in the raw text

_HEADER_RE = re.compile(r"\s*\[\[?(?P<key>[^\[\]]*)\]\]?\s*(?:#.*)?")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\\\n]*"|'[^'\n]*')"""
_KEY_RE = re.compile(rf"\s*(?P<key>{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_PART_RE = re.compile(_KEY_PART)


def _key_path(key: str) -> tuple[str, ...]:
    """``a."b c".d`` -> ``("a", "b c", "d")``."""
    return tuple(part.strip("\"'") for part in _PART_RE.findall(key))


class _Locator:
    """Maps key paths such as ``("params", "W1")`` to 1-based lines.

    Keys inside an inline table (``W1 = { shape = [...] }``) fall back to the line of the
    table's own key, which is where they are written.
    """

    def __init__(self, text: str) -> None:
        self.paths: dict[tuple[str, ...], int] = {}
        self.duplicates: list[tuple[tuple[str, ...], int]] = []
        self.last_line = max(1, len(text.rstrip().split("\n")))
        self._scan(text.removeprefix("\ufeff").split("\n"))

    def _scan(self, lines: list[str]) -> None:
        """Record headers and keys.

        Lines inside multi-line strings and continuation lines of multi-line arrays are skipped.
        """
        table: tuple[str, ...] = ()
        state: str | None = None
        depth = 0
        for number, raw in enumerate(lines, start=1):
            inside = state is not None or depth > 0
            code, state = _blank_strings(raw.rstrip("\r"), state)
            depth = max(0, depth + _balance(code))
            if inside:
                continue
            header = _HEADER_RE.fullmatch(code)
            if header:
                depth = 0
                table = _key_path(raw[header.start("key") : header.end("key")])
                self._record(table, number)
                continue
            match = _KEY_RE.match(raw)
            if match:
                self._record(table + _key_path(match["key"]), number)

    def _record(self, path: tuple[str, ...], number: int) -> None:
        """First occurrence wins; later ones are remembered as duplicates."""
        if path in self.paths:
            self.duplicates.append((path, number))
        else:
            self.paths[path] = number

    def line(self, *path: str) -> int | None:
        """The line of ``path``, else of its nearest recorded parent, else None."""
        for end in range(len(path), 0, -1):
            found = self.paths.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def _blank_strings(line: str, state: str | None) -> tuple[str, str | None]:
    """``line`` with string contents replaced by spaces and its comment removed.

    ``state`` is the delimiter of a multi-line string still open at the start of the line.
    """
    out: list[str] = []
    i = 0
    while i < len(line):
        if state is not None:
            end = line.find(state, i)
            if end < 0:
                return "".join(out), state
            out.append(" " * (end - i) + state)
            i, state = end + 3, None
            continue
        char = line[i]
        if line.startswith(('"""', "'''"), i):
            state = line[i : i + 3]
            out.append(state)
            i += 3
        elif char in "\"'":
            end = _string_end(line, i)
            out.append(char + " " * (end - i - 1))
            i = end
        elif char == "#":
            break
        else:
            out.append(char)
            i += 1
    return "".join(out), state


def _balance(code: str) -> int:
    """Opened minus closed brackets and braces in a line whose strings are blanked."""
    return sum(code.count(c) for c in "[{") - sum(code.count(c) for c in "]}")


def _string_end(line: str, start: int) -> int:
    """Index just past the one-line string opening at ``start``."""
    quote = line[start]
    i = start + 1
    while i < len(line):
        if quote == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return len(line)


# ---------------------------------------------------------------------------------------
# TOML and the top level


def _load_toml(text: str, ctx: _Ctx) -> dict[str, Any]:
    """``tomllib.loads`` with the decoder's position turned into a located error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _toml_error(str(err), text, ctx) from None
    except RecursionError:
        raise SpecError(
            "invalid TOML: values are nested too deeply",
            file=ctx.file,
            hint="a spec needs at most a list inside an inline table",
        ) from None


def _toml_error(message: str, text: str, ctx: _Ctx) -> SpecError:
    """A SpecError for a TOMLDecodeError message."""
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    reason = message[: match.start()] if match else message.split(" (at end")[0]
    line = int(match[1]) if match else ctx.locator.last_line
    if reason.startswith("Cannot overwrite") and ctx.locator.duplicates:
        path, line = ctx.locator.duplicates[0]
        return SpecError(
            f"invalid TOML: '{'.'.join(path)}' is given twice",
            file=ctx.file,
            line=line,
            hint="remove or rename one of them",
        )
    where = f" (column {match[2]})" if match else ""
    lines = text.split("\n")
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    return SpecError(
        f"invalid TOML: {reason}{where}", file=ctx.file, line=line, hint=_toml_hint(source)
    )


def _toml_hint(source: str) -> str:
    """Suggest quoting when a value looks like an unquoted expression."""
    match = re.match(r"\s*([A-Za-z0-9_]+)\s*=\s*(.+?)\s*$", source)
    if match and not re.match(r"""["'\[{0-9+\-.]|true|false|inf|nan""", match[2]):
        return f'strings need quotes, e.g. {match[1]} = "{match[2]}"'
    return GENERIC_TOML_HINT
