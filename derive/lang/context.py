"""Section names and allowed keys, the error context (file + key locator), and small
helpers shared by the section readers and the cross-checks.
"""

from __future__ import annotations

import keyword
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from derive.errors import SpecError, suggest
from derive.lang.expr import NAME_RE
from derive.lang.toml_text import _Locator
from derive.ops.signatures import reserved_reason
from derive.ops.table import BUILTIN_OPS

TOP_KEYS = (
    "name",
    "description",
    "dims",
    "inputs",
    "params",
    "constants",
    "ops",
    "forward",
    "loss",
    "latex",
)
SHADOWED_MODULES = frozenset(
    {*sys.stdlib_module_names, "numpy", "derive", "sympy", "mpmath", "jinja2", "markupsafe"}
)
"""Module names a spec may not take: ``NAME.py`` beside other code would shadow the import."""
TABLES = ("dims", "inputs", "params", "constants", "ops", "forward", "loss", "latex")
INPUT_KINDS = ("real", "one_hot", "probability", "binary")
INITS = ("zeros", "ones", "normal", "glorot")
REDUCTIONS = ("mean", "sum")
ENTRY_KEYS = {
    "inputs": ("shape", "kind"),
    "params": ("shape", "init", "l1", "l2"),
    "ops": ("args", "expr"),
    "loss": ("output", "reduction", "l1", "l2"),
}
KIND_WORDS = {
    "dims": "dim",
    "inputs": "input",
    "params": "param",
    "constants": "constant",
    "ops": "op",
    "forward": "forward equation",
}
ROOT_HINTS = {
    "name": 'add at the top of the file: name = "my_model"',
    "inputs": 'add:\n[inputs]\nx = { shape = ["d"] }',
    "params": 'add:\n[params]\nW = { shape = ["h", "d"] }',
    "forward": 'add:\n[forward]\nz = "W @ x"',
}


# ---------------------------------------------------------------------------------------
# Context and small helpers


@dataclass
class _Ctx:
    """The file name and locator used to build located errors."""

    file: str
    locator: _Locator

    def line(self, *path: str) -> int | None:
        """The line of a key path (see :meth:`_Locator.line`)."""
        return self.locator.line(*path)

    def error(self, message: str, path: Iterable[str], hint: str | None = None) -> SpecError:
        """A :class:`SpecError` located at the key ``path``."""
        return SpecError(message, file=self.file, line=self.line(*path), hint=hint)


def _type_name(value: object) -> str:
    """``"a string"``, ``"a list"``, ... for messages."""
    names = {bool: "a boolean", str: "a string", int: "an integer", float: "a number"}
    names |= {list: "a list", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def _or_list(name: str, candidates: Iterable[str], label: str) -> str:
    """A did-you-mean hint, or the list of allowed names."""
    candidates = list(candidates)
    close = suggest(name, candidates)
    if close:
        return close
    return f"{label}: {', '.join(candidates)}" if candidates else f"no {label} are declared"


def _a(word: str) -> str:
    """``word`` with its indefinite article."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _is_number(value: object) -> bool:
    """An int or a finite float, but not a bool."""
    if type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)


def _table(data: Mapping[str, Any], key: str, ctx: _Ctx) -> dict[str, Any]:
    """The table ``[key]`` (empty when absent)."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ctx.error(
            f"'{key}' must be a table (a [{key}] section), not {_type_name(value)}",
            (key,),
            f"write it as a section:\n[{key}]\n...",
        )
    return value


def _check_keys(
    entry: Mapping[str, Any], allowed: tuple[str, ...], path: tuple[str, ...], ctx: _Ctx
) -> None:
    """Reject unknown keys in one entry."""
    where = ".".join(path)
    for key in entry:
        if key not in allowed:
            raise ctx.error(
                f"unknown key '{key}' in {where}",
                (*path, key),
                _or_list(key, allowed, "allowed keys"),
            )


def _check_name(name: str, section: str, ctx: _Ctx) -> None:
    """A declared name: identifier-like, not a keyword, not a built-in op."""
    where = (section, name)
    if not NAME_RE.fullmatch(name):
        raise ctx.error(
            f"invalid name '{name}' in [{section}]",
            where,
            "names start with a letter and use only ASCII letters, digits and '_'",
        )
    if keyword.iskeyword(name):
        raise ctx.error(f"'{name}' in [{section}] is a Python keyword", where, "pick another name")
    if name in BUILTIN_OPS:
        raise ctx.error(
            f"'{name}' in [{section}] is the name of a built-in op",
            where,
            f"pick another name, e.g. '{name}_'",
        )
    reason = reserved_reason(name)
    if reason:
        raise ctx.error(
            f"'{name}' in [{section}] is reserved: {reason}", where, "pick another name"
        )


def _located(where: str, message: str, text: str, col: int | None) -> str:
    """``where: message at column N`` followed by the text and a caret line."""
    shown = text.replace("\n", " ").replace("\t", " ")
    if col is None:
        return f"{where}: {message}\n    {_clip(shown, 0)[0]}"
    clipped, caret = _clip(shown, col - 1)
    return f"{where}: {message} at column {col}\n    {clipped}\n    {' ' * caret}^"


def _clip(text: str, index: int, width: int = 60) -> tuple[str, int]:
    """A window of ``text`` around ``index`` and the index within it."""
    if len(text) <= 2 * width:
        return text, index
    start = max(0, index - width)
    end = min(len(text), index + width)
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return head + text[start:end] + tail, index - start + len(head)
