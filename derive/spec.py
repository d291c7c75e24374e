"""Reading a TOML network spec into a checked :class:`Spec`.

Every problem is a :class:`~derive.errors.SpecError` carrying the file, the 1-based line
of the offending key and a hint on how to mend it. ``tomllib`` reports no positions for
valid documents, so a small line scanner (:class:`_Locator`) maps key paths to lines.
Shapes are not checked here.
"""

from __future__ import annotations

import hashlib
import keyword
import math
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derive.errors import SpecError, suggest
from derive.oplist import BUILTIN_OPS, HELPER_OPS, reserved_reason
from derive.parse import (
    NAME_RE,
    Call,
    Expr,
    ExprSyntaxError,
    calls_in,
    names_in,
    parse_expression,
)

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
)
SHADOWED_MODULES = frozenset(
    {*sys.stdlib_module_names, "numpy", "derive", "sympy", "mpmath", "jinja2", "markupsafe"}
)
"""Module names a spec may not take: ``NAME.py`` beside other code would shadow the import."""
TABLES = ("dims", "inputs", "params", "constants", "ops", "forward", "loss")
INPUT_KINDS = ("real", "one_hot", "probability", "binary")
INITS = ("zeros", "ones", "normal", "glorot")
REDUCTIONS = ("mean", "sum")
ENTRY_KEYS = {
    "inputs": ("shape", "kind"),
    "params": ("shape", "init"),
    "ops": ("args", "expr"),
    "loss": ("output", "reduction"),
}
KIND_WORDS = {
    "dims": "dim",
    "inputs": "input",
    "params": "param",
    "constants": "constant",
    "ops": "op",
    "forward": "forward equation",
}
GENERIC_TOML_HINT = (
    "check the quotes, brackets and 'key = value' syntax on this line; "
    'expressions are quoted strings, e.g. h1 = "sigmoid(z1)"'
)
ROOT_HINTS = {
    "name": 'add at the top of the file: name = "my_model"',
    "inputs": 'add:\n[inputs]\nx = { shape = ["d"] }',
    "params": 'add:\n[params]\nW = { shape = ["m", "d"] }',
    "forward": 'add:\n[forward]\nz = "W @ x"',
}


@dataclass(frozen=True)
class TensorDecl:
    """An input or a param; ``kind`` is ``"param"`` for params."""

    name: str
    shape: tuple[str | int, ...]
    kind: str
    init: str | float | None
    line: int | None


@dataclass(frozen=True)
class OpDecl:
    """A custom op: positional ``args`` and a body expression."""

    name: str
    args: tuple[str, ...]
    expr: Expr
    text: str
    line: int | None


@dataclass(frozen=True)
class Equation:
    """One staged forward equation ``name = expr``."""

    name: str
    expr: Expr
    text: str
    line: int | None


@dataclass(frozen=True)
class Spec:
    """A checked network spec.

    ``lines`` maps every declared name to its line, and ``"loss"`` to the line of the
    ``[loss]`` output, unless a declared name is itself ``loss`` (then it keeps its own line).
    """

    file: str
    name: str
    description: str
    dims: dict[str, int | None]
    inputs: dict[str, TensorDecl]
    params: dict[str, TensorDecl]
    constants: dict[str, float]
    ops: dict[str, OpDecl]
    forward: tuple[Equation, ...]
    loss: str
    reduction: str
    lines: dict[str, int]
    sha256: str
    source: str


# ---------------------------------------------------------------------------------------
# Public entry points


def load_spec(path: str | Path) -> Spec:
    """Read and check the spec file at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(
            f"cannot read the spec file: {err.strerror or err}",
            file=str(path),
            hint="check the path; a spec is a TOML file such as examples/mlp.toml",
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            "the file is not valid UTF-8",
            file=str(path),
            line=raw[: err.start].count(b"\n") + 1,
            hint="save the spec as UTF-8 text",
        ) from None
    return _parse(text, str(path), hashlib.sha256(raw).hexdigest())


def parse_spec(text: str, file: str = "<string>") -> Spec:
    """Check spec ``text``; ``file`` is only used in error messages and ``Spec.file``."""
    return _parse(text, file, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _parse(text: str, file: str, digest: str) -> Spec:
    """Read every section in turn, then cross-check names and expressions."""
    ctx = _Ctx(file, _Locator(text))
    data = _load_toml(text.removeprefix("\ufeff"), ctx)
    _check_top(data, ctx)
    name = _read_string(data, "name", ctx)
    description = _read_string(data, "description", ctx)
    dims = _read_dims(data, ctx)
    constants = _read_constants(data, ctx)
    inputs = _read_tensors(data, "inputs", dims, ctx)
    params = _read_tensors(data, "params", dims, ctx)
    ops = _read_ops(data, ctx)
    forward = _read_forward(data, ctx)
    lines = _check_unique(ctx, dims, inputs, params, constants, ops, forward)
    scope = _Scope(dims, inputs, params, constants, ops, forward)
    _check_op_bodies(scope, ctx)
    _check_forward(scope, ctx)
    loss, reduction = _read_loss(data, scope, ctx)
    loss_line = ctx.line("loss", "output")
    if loss_line is not None:
        lines.setdefault("loss", loss_line)
    return Spec(
        file=file,
        name=name,
        description=description,
        dims=dims,
        inputs=inputs,
        params=params,
        constants=constants,
        ops=ops,
        forward=forward,
        loss=loss,
        reduction=reduction,
        lines=lines,
        sha256=digest,
        source=text,
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


def _check_top(data: dict[str, Any], ctx: _Ctx) -> None:
    """Unknown top-level keys and missing required ones."""
    for key in data:
        if key not in TOP_KEYS:
            label = f"[{key}]" if isinstance(data[key], dict) else f"'{key}'"
            raise ctx.error(
                f"unknown top-level key or section {label}",
                (key,),
                _or_list(key, TOP_KEYS, "allowed"),
            )
    for key in ("name", "inputs", "params", "forward"):
        if key not in data:
            what = "the 'name' key" if key == "name" else f"the [{key}] section"
            raise ctx.error(f"{what} is missing", (), ROOT_HINTS[key])


def _read_string(data: Mapping[str, Any], key: str, ctx: _Ctx) -> str:
    """``name`` (identifier-like) or ``description`` (free text)."""
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ctx.error(
            f"'{key}' must be a string, not {_type_name(value)}",
            (key,),
            'e.g. name = "mlp_softmax"' if key == "name" else 'e.g. description = "A small MLP"',
        )
    if key == "name" and (not NAME_RE.fullmatch(value) or keyword.iskeyword(value)):
        raise ctx.error(
            f"invalid spec name {value!r}",
            (key,),
            "use letters, digits and '_' starting with a letter (e.g. \"mlp_softmax\"); "
            "free text belongs in description",
        )
    if key == "name" and value in SHADOWED_MODULES:
        raise ctx.error(
            f"spec name {value!r} is the name of a Python module; the generated file "
            f"{value}.py would shadow it for code that imports it",
            (key,),
            f'pick another name, e.g. name = "{value}_net"',
        )
    return value


# ---------------------------------------------------------------------------------------
# [dims], [constants], [inputs], [params]


def _read_dims(data: Mapping[str, Any], ctx: _Ctx) -> dict[str, int | None]:
    """Sizes: an int >= 1, or "any" (None)."""
    dims: dict[str, int | None] = {}
    for name, value in _table(data, "dims", ctx).items():
        _check_name(name, "dims", ctx)
        if value == "any":
            dims[name] = None
        elif type(value) is int and value >= 1:
            dims[name] = value
        else:
            raise ctx.error(
                f'dims.{name} must be an integer >= 1 or "any", not {value!r}',
                ("dims", name),
                f'e.g. {name} = 4, or {name} = "any" to leave the size open',
            )
    return dims


def _read_constants(data: Mapping[str, Any], ctx: _Ctx) -> dict[str, float]:
    """``name = number``."""
    constants: dict[str, float] = {}
    for name, value in _table(data, "constants", ctx).items():
        _check_name(name, "constants", ctx)
        if not _is_number(value):
            raise ctx.error(
                f"constants.{name} must be a finite number, not {_type_name(value)}",
                ("constants", name),
                f"e.g. {name} = 0.01",
            )
        constants[name] = float(value)
    return constants


def _read_tensors(
    data: Mapping[str, Any], section: str, dims: Mapping[str, int | None], ctx: _Ctx
) -> dict[str, TensorDecl]:
    """[inputs] or [params]: ``name = { shape = [...], kind/init = ... }``."""
    tensors: dict[str, TensorDecl] = {}
    for name, entry in _table(data, section, ctx).items():
        _check_name(name, section, ctx)
        path = (section, name)
        _check_entry_table(entry, path, ctx)
        if "shape" not in entry:
            raise ctx.error(
                f"{section}.{name} has no shape", path, f'e.g. {name} = {{ shape = ["d"] }}'
            )
        shape = _read_shape(entry["shape"], path, dims, ctx)
        if section == "inputs":
            kind, init = _read_kind(entry, path, ctx), None
        else:
            kind, init = "param", _read_init(entry, path, ctx)
        tensors[name] = TensorDecl(name, shape, kind, init, ctx.line(*path))
    return tensors


def _check_entry_table(entry: Any, path: tuple[str, str], ctx: _Ctx) -> None:
    """An entry of [inputs], [params] or [ops] must be an inline table with known keys."""
    section, name = path
    if not isinstance(entry, dict):
        example = {
            "inputs": '{ shape = ["d"] }',
            "params": '{ shape = ["m", "d"] }',
            "ops": '{ args = ["z"], expr = "z * sigmoid(z)" }',
        }[section]
        raise ctx.error(
            f"{section}.{name} must be a table, not {_type_name(entry)}",
            path,
            f"e.g. {name} = {example}",
        )
    _check_keys(entry, ENTRY_KEYS[section], path, ctx)


def _read_shape(
    value: Any, path: tuple[str, str], dims: Mapping[str, int | None], ctx: _Ctx
) -> tuple[str | int, ...]:
    """A list of declared dim names and ints >= 1; ``[]`` is a scalar."""
    where = ".".join(path)
    if not isinstance(value, list):
        raise ctx.error(
            f"{where}.shape must be a list, not {_type_name(value)}",
            (*path, "shape"),
            'e.g. shape = ["m", "d"], or shape = [] for a scalar',
        )
    for item in value:
        _check_shape_item(item, where, path, dims, ctx)
    return tuple(value)


def _check_shape_item(
    item: Any, where: str, path: tuple[str, str], dims: Mapping[str, int | None], ctx: _Ctx
) -> None:
    """One entry of a shape list."""
    at = (*path, "shape")
    if isinstance(item, str):
        if item not in dims:
            fallback = f"declare it under [dims], e.g.\n[dims]\n{item} = 4"
            raise ctx.error(
                f"{where}.shape uses the unknown dim '{item}'",
                at,
                suggest(item, dims) or fallback,
            )
    elif type(item) is not int or item < 1:
        raise ctx.error(
            f"{where}.shape entries must be dim names or integers >= 1, not {item!r}",
            at,
            'e.g. shape = ["m", "d"] or shape = [3]',
        )


def _read_kind(entry: Mapping[str, Any], path: tuple[str, str], ctx: _Ctx) -> str:
    """Input kind, default "real"."""
    kind = entry.get("kind", "real")
    if kind not in INPUT_KINDS:
        raise ctx.error(
            f"{'.'.join(path)}.kind must be one of {', '.join(INPUT_KINDS)}, not {kind!r}",
            (*path, "kind"),
            _or_list(str(kind), INPUT_KINDS, "kinds"),
        )
    return kind


def _read_init(entry: Mapping[str, Any], path: tuple[str, str], ctx: _Ctx) -> str | float | None:
    """Param init: one of INITS or a number; None when absent."""
    if "init" not in entry:
        return None
    init = entry["init"]
    if _is_number(init):
        return float(init)
    if isinstance(init, str) and init in INITS:
        return init
    raise ctx.error(
        f"{'.'.join(path)}.init must be one of {', '.join(INITS)} or a number, not {init!r}",
        (*path, "init"),
        _or_list(str(init), INITS, "inits"),
    )


# ---------------------------------------------------------------------------------------
# [ops] and [forward]


def _parse_text(value: Any, path: tuple[str, ...], example: str, ctx: _Ctx) -> Expr:
    """Parse one expression string, mapping parser errors to a located SpecError."""
    where = ".".join(path)
    if not isinstance(value, str):
        raise ctx.error(
            f"{where} must be a quoted expression string, not {_type_name(value)}",
            path,
            f"e.g. {example}",
        )
    try:
        return parse_expression(value)
    except ExprSyntaxError as err:
        raise ctx.error(_located(where, err.message, value, err.col), path, err.hint) from None


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


def _read_ops(data: Mapping[str, Any], ctx: _Ctx) -> dict[str, OpDecl]:
    """``name = { args = [...], expr = "..." }``; bodies are checked later."""
    ops: dict[str, OpDecl] = {}
    for name, entry in _table(data, "ops", ctx).items():
        _check_name(name, "ops", ctx)
        if name in HELPER_OPS:
            raise ctx.error(
                f"'{name}' in [ops] is the name of a helper that built-in ops use "
                f"({', '.join(sorted(HELPER_OPS))})",
                ("ops", name),
                f"pick another name, e.g. '{name}_'",
            )
        path = ("ops", name)
        _check_entry_table(entry, path, ctx)
        for key in ("args", "expr"):
            if key not in entry:
                raise ctx.error(
                    f"ops.{name} has no {key}",
                    path,
                    f'e.g. {name} = {{ args = ["z"], expr = "z * sigmoid(z)" }}',
                )
        args = _read_op_args(entry["args"], name, ctx)
        expr = _parse_text(entry["expr"], (*path, "expr"), 'expr = "z * sigmoid(z)"', ctx)
        ops[name] = OpDecl(name, args, expr, entry["expr"], ctx.line(*path))
    return ops


def _read_op_args(value: Any, op: str, ctx: _Ctx) -> tuple[str, ...]:
    """A non-empty list of distinct argument names."""
    path = ("ops", op, "args")
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise ctx.error(
            f"ops.{op}.args must be a non-empty list of argument names",
            path,
            'e.g. args = ["z"] or args = ["a", "b"]',
        )
    for arg in value:
        if not NAME_RE.fullmatch(arg) or keyword.iskeyword(arg) or arg in BUILTIN_OPS:
            raise ctx.error(
                f"ops.{op}.args: invalid argument name '{arg}'",
                path,
                "argument names start with a letter, use ASCII letters, digits and '_', "
                "and are not op names",
            )
    if len(set(value)) != len(value):
        dup = next(a for a in value if value.count(a) > 1)
        raise ctx.error(f"ops.{op}.args lists '{dup}' twice", path, "give each argument once")
    return tuple(value)


def _read_forward(data: Mapping[str, Any], ctx: _Ctx) -> tuple[Equation, ...]:
    """The staged equations, in file order; at least one."""
    table = _table(data, "forward", ctx)
    if not table:
        raise ctx.error(
            "the [forward] section is empty",
            ("forward",),
            'add at least one equation, e.g.\n[forward]\nz = "W @ x"',
        )
    equations = []
    for name, text in table.items():
        _check_name(name, "forward", ctx)
        path = ("forward", name)
        expr = _parse_text(text, path, f'{name} = "W @ x + b"', ctx)
        equations.append(Equation(name, expr, text, ctx.line(*path)))
    return tuple(equations)


# ---------------------------------------------------------------------------------------
# Cross-checks


def _check_unique(
    ctx: _Ctx,
    dims: Mapping[str, object],
    inputs: Mapping[str, object],
    params: Mapping[str, object],
    constants: Mapping[str, object],
    ops: Mapping[str, object],
    forward: tuple[Equation, ...],
) -> dict[str, int]:
    """Every declared name is unique across sections; returns name -> line."""
    entries: list[tuple[int, str, str]] = []
    groups = {"dims": dims, "inputs": inputs, "params": params, "constants": constants}
    groups |= {"ops": ops, "forward": {eq.name: eq for eq in forward}}
    for section, names in groups.items():
        for name in names:
            entries.append((ctx.line(section, name) or 0, section, name))
    seen: dict[str, tuple[int, str]] = {}
    for line, section, name in sorted(entries):
        if name in seen:
            first_line, first = seen[name]
            raise SpecError(
                f"'{name}' is declared twice: as {_a(KIND_WORDS[first])} (line {first_line}) "
                f"and as {_a(KIND_WORDS[section])}",
                file=ctx.file,
                line=line or None,
                hint="names must be unique across dims, inputs, params, constants, ops "
                "and forward; rename one of them",
            )
        seen[name] = (line, section)
    return {name: line for name, (line, _) in seen.items() if line}


@dataclass(frozen=True)
class _Scope:
    """Everything an expression may refer to."""

    dims: Mapping[str, int | None]
    inputs: Mapping[str, TensorDecl]
    params: Mapping[str, TensorDecl]
    constants: Mapping[str, float]
    ops: Mapping[str, OpDecl]
    forward: tuple[Equation, ...]

    def kind_of(self, name: str) -> str | None:
        """``"input"``, ``"param"``, ... for a declared name, else None."""
        for section in ("dims", "inputs", "params", "constants", "ops"):
            if name in getattr(self, section):
                return KIND_WORDS[section]
        if any(eq.name == name for eq in self.forward):
            return KIND_WORDS["forward"]
        return "built-in op" if name in BUILTIN_OPS else None

    def values(self) -> list[str]:
        """Names usable as values in a forward expression (any order)."""
        names = [*self.inputs, *self.params, *self.constants, *self.dims]
        return names + [eq.name for eq in self.forward]


@dataclass(frozen=True)
class _Site:
    """Where an expression lives: its key path, its text and the calling context."""

    path: tuple[str, ...]
    text: str
    ops: tuple[str, ...]  # custom ops callable from here
    kwarg_names: frozenset[str]  # names allowed inside keyword values

    @property
    def where(self) -> str:
        """``forward.h1`` or ``ops.swish.expr``."""
        return ".".join(self.path)


def _expr_error(
    site: _Site, message: str, col: int | None, hint: str | None, ctx: _Ctx
) -> SpecError:
    """A SpecError pointing into the expression text."""
    return ctx.error(_located(site.where, message, site.text, col), site.path, hint)


def _check_op_bodies(scope: _Scope, ctx: _Ctx) -> None:
    """Op bodies use only their args and constants, and call only ops declared above."""
    order = list(scope.ops)
    for index, op in enumerate(scope.ops.values()):
        allowed = frozenset(op.args) | frozenset(scope.constants)
        site = _Site(("ops", op.name, "expr"), op.text, tuple(order[:index]), allowed)
        for node in names_in(op.expr):
            if node.id not in allowed:
                raise _op_name_error(node.id, node.col, op, site, scope, ctx)
        for call in calls_in(op.expr):
            _check_op_call_order(call, op, order, site, ctx)
            _check_call(call, site, scope, ctx)


def _op_name_error(
    name: str, col: int, op: OpDecl, site: _Site, scope: _Scope, ctx: _Ctx
) -> SpecError:
    """The error for a name an op body may not use."""
    kind = scope.kind_of(name)
    message = f"'{name}' is not an argument of '{op.name}' or a constant"
    if kind is not None:
        message += f" (it is {_a(kind)}; custom ops see only their args and [constants])"
    args = ", ".join(f'"{arg}"' for arg in (*op.args, name))
    fallback = f"add it to args, e.g. args = [{args}], or declare it under [constants]"
    hint = suggest(name, [*op.args, *scope.constants]) or fallback
    return _expr_error(site, message, col, hint, ctx)


def _check_op_call_order(call: Call, op: OpDecl, order: list[str], site: _Site, ctx: _Ctx) -> None:
    """No recursion: an op may call only ops declared above it."""
    if call.func == op.name:
        raise _expr_error(
            site,
            f"'{op.name}' calls itself: custom ops cannot be recursive",
            call.col,
            "write the body with built-in ops and ops declared above it",
            ctx,
        )
    if call.func in order[order.index(op.name) :]:
        raise _expr_error(
            site,
            f"'{op.name}' calls '{call.func}', which is declared below it",
            call.col,
            f"declare '{call.func}' above '{op.name}'; an op may call only ops declared "
            "above it (no recursion)",
            ctx,
        )


def _check_forward(scope: _Scope, ctx: _Ctx) -> None:
    """Names resolve to declarations or earlier equations; calls are valid."""
    index = {eq.name: i for i, eq in enumerate(scope.forward)}
    kwarg_names = frozenset(scope.constants) | frozenset(scope.dims)
    for i, eq in enumerate(scope.forward):
        site = _Site(("forward", eq.name), eq.text, tuple(scope.ops), kwarg_names)
        for node in names_in(eq.expr):
            _check_forward_name(node.id, node.col, i, index, scope, site, ctx)
        for call in calls_in(eq.expr):
            _check_call(call, site, scope, ctx)


def _check_forward_name(
    name: str,
    col: int,
    i: int,
    index: Mapping[str, int],
    scope: _Scope,
    site: _Site,
    ctx: _Ctx,
) -> None:
    """One Name in forward equation ``i``."""
    if name in scope.inputs or name in scope.params or name in scope.constants:
        return
    if name in scope.dims:
        return
    j = index.get(name)
    if j is not None and j < i:
        return
    if j is not None:
        raise _order_error(name, i, j, scope, site, col, ctx)
    kind = scope.kind_of(name)
    if kind in ("op", "built-in op"):
        raise _expr_error(
            site, f"'{name}' is an op, not a value", col, f"call it, e.g. {name}(...)", ctx
        )
    fallback = (
        "declare it under [inputs], [params], [constants] or [dims], "
        "or define it in [forward] above this line"
    )
    hint = suggest(name, scope.values()) or fallback
    raise _expr_error(site, f"unknown name '{name}'", col, hint, ctx)


def _order_error(
    name: str, i: int, j: int, scope: _Scope, site: _Site, col: int, ctx: _Ctx
) -> SpecError:
    """Equation ``i`` uses equation ``j >= i``: a cycle, or simply out of order."""
    eqs = scope.forward
    if j == i:
        message = f"'{name}' refers to itself: that is a cycle"
        return _expr_error(site, message, col, _cycle_hint(name), ctx)
    cycle = _path_back(j, i, eqs)
    if cycle is not None:
        chain = " -> ".join([eqs[i].name, *cycle])
        message = f"'{name}' is used before it is defined and depends back on it: cycle {chain}"
        return _expr_error(site, message, col, _cycle_hint(name), ctx)
    message = f"'{name}' is used before it is defined: forward equations run in order"
    hint = (
        f"move the equation for '{name}' (line {eqs[j].line}) above "
        f"'{eqs[i].name}' (line {eqs[i].line})"
    )
    return _expr_error(site, message, col, hint, ctx)


def _cycle_hint(name: str) -> str:
    """How to break a cycle among forward equations."""
    return (
        "forward equations run in order and each may use only names defined above it; "
        f"give the new value its own name instead of reusing '{name}'"
    )


def _path_back(start: int, target: int, eqs: tuple[Equation, ...]) -> list[str] | None:
    """Names along a dependency path from equation ``start`` back to ``target``, if any."""
    index = {eq.name: k for k, eq in enumerate(eqs)}
    stack: list[tuple[int, list[str]]] = [(start, [eqs[start].name])]
    seen = {start}
    while stack:
        k, trail = stack.pop()
        for node in names_in(eqs[k].expr):
            nxt = index.get(node.id)
            if nxt == target:
                return [*trail, eqs[target].name]
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, node.id]))
    return None


def _check_call(call: Call, site: _Site, scope: _Scope, ctx: _Ctx) -> None:
    """The op exists, gets the right number of positional args and known keywords."""
    if call.func in BUILTIN_OPS:
        sig = BUILTIN_OPS[call.func]
        _check_arity(call, sig.args, site, ctx)
        _check_kwargs(call, tuple(sig.kwargs), site, ctx)
    elif call.func in site.ops:
        op = scope.ops[call.func]
        _check_arity(call, op.args, site, ctx)
        if call.kwargs:
            raise _expr_error(
                site,
                f"custom op '{call.func}' takes only positional arguments",
                call.col,
                f"call it as {call.func}({', '.join(op.args)})",
                ctx,
            )
    else:
        raise _unknown_op(call, site, scope, ctx)


def _unknown_op(call: Call, site: _Site, scope: _Scope, ctx: _Ctx) -> SpecError:
    """The error for calling something that is not an op."""
    kind = scope.kind_of(call.func)
    if kind is not None:
        return _expr_error(
            site,
            f"'{call.func}' is {_a(kind)}, not an op, and cannot be called",
            call.col,
            "multiply with * (elementwise) or @ (matrix product), e.g. W1 @ x",
            ctx,
        )
    ops = [*BUILTIN_OPS, *site.ops]
    fallback = f"built-in ops: {', '.join(BUILTIN_OPS)}; declare your own under [ops]"
    hint = suggest(call.func, ops) or fallback
    return _expr_error(site, f"unknown op '{call.func}'", call.col, hint, ctx)


def _check_arity(call: Call, args: tuple[str, ...], site: _Site, ctx: _Ctx) -> None:
    """Exactly ``len(args)`` positional arguments."""
    if len(call.args) != len(args):
        plural = "argument" if len(args) == 1 else "arguments"
        raise _expr_error(
            site,
            f"{call.func}() takes {len(args)} positional {plural} ({', '.join(args)}), "
            f"got {len(call.args)}",
            call.col,
            f"call it as {call.func}({', '.join(args)})",
            ctx,
        )


def _check_kwargs(call: Call, known: tuple[str, ...], site: _Site, ctx: _Ctx) -> None:
    """Only known keywords, whose values use numbers and allowed names only."""
    for key, value in call.kwargs:
        if key not in known:
            fallback = f"its keywords: {', '.join(known)}" if known else "it takes no keywords"
            raise _expr_error(
                site,
                f"{call.func}() has no keyword '{key}'",
                value.col,
                suggest(key, known) or fallback,
                ctx,
            )
        for node in names_in(value):
            if node.id not in site.kwarg_names:
                raise _expr_error(
                    site,
                    f"the keyword {key}= of {call.func}() must be a number or a constant, "
                    f"not '{node.id}'",
                    node.col,
                    f"e.g. {key}=0.1, or declare '{node.id}' under [constants]",
                    ctx,
                )
        if calls_in(value):
            raise _expr_error(
                site,
                f"the keyword {key}= of {call.func}() must be a number or a constant",
                value.col,
                f"e.g. {key}=0.1",
                ctx,
            )


# ---------------------------------------------------------------------------------------
# [loss]


def _read_loss(data: Mapping[str, Any], scope: _Scope, ctx: _Ctx) -> tuple[str, str]:
    """``output`` names a forward equation; ``reduction`` is "mean" (default) or "sum"."""
    last = scope.forward[-1].name
    hint = f'add:\n[loss]\noutput = "{last}"\nreduction = "mean"'
    if "loss" not in data:
        raise ctx.error("the [loss] section is missing", ("loss",), hint)
    table = _table(data, "loss", ctx)
    _check_keys(table, ENTRY_KEYS["loss"], ("loss",), ctx)
    if "output" not in table:
        raise ctx.error("[loss] has no output", ("loss",), f'add: output = "{last}"')
    return _read_output(table["output"], scope, ctx), _read_reduction(table, ctx)


def _read_output(output: Any, scope: _Scope, ctx: _Ctx) -> str:
    """The loss output must name a forward equation."""
    at = ("loss", "output")
    names = [eq.name for eq in scope.forward]
    if not isinstance(output, str):
        raise ctx.error(
            f"loss.output must be a string, not {_type_name(output)}",
            at,
            f'e.g. output = "{names[-1]}"',
        )
    if output in names:
        return output
    kind = scope.kind_of(output)
    if kind is not None:
        raise ctx.error(
            f"loss.output must name a forward equation, but '{output}' is {_a(kind)}",
            at,
            f"forward equations: {', '.join(names)}",
        )
    raise ctx.error(
        f"loss.output names an unknown equation '{output}'",
        at,
        _or_list(output, names, "forward equations"),
    )


def _read_reduction(table: Mapping[str, Any], ctx: _Ctx) -> str:
    """How the per-example losses are combined over the batch."""
    reduction = table.get("reduction", "mean")
    if reduction not in REDUCTIONS:
        raise ctx.error(
            f'loss.reduction must be "mean" or "sum", not {reduction!r}',
            ("loss", "reduction"),
            _or_list(str(reduction), REDUCTIONS, "reductions"),
        )
    return reduction
