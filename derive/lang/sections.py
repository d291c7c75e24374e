"""Readers for each section of a spec (``name``, ``[dims]``, ``[inputs]``, ``[params]``,
``[constants]``, ``[ops]``, ``[forward]``, ``[loss]``), each raising located errors.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from typing import Any

from derive.errors import suggest
from derive.lang.context import (
    ENTRY_KEYS,
    INITS,
    INPUT_KINDS,
    REDUCTIONS,
    ROOT_HINTS,
    SHADOWED_MODULES,
    TOP_KEYS,
    _a,
    _check_keys,
    _check_name,
    _Ctx,
    _is_number,
    _located,
    _or_list,
    _table,
    _type_name,
)
from derive.lang.expr import NAME_RE, Expr, ExprSyntaxError, parse_expression
from derive.lang.records import Equation, OpDecl, TensorDecl
from derive.lang.scope import _Scope
from derive.ops.signatures import HELPER_OPS
from derive.ops.table import BUILTIN_OPS


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
            "params": '{ shape = ["h", "d"] }',
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
            'e.g. shape = ["h", "d"], or shape = [] for a scalar',
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
            'e.g. shape = ["h", "d"] or shape = [3]',
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


def _read_latex(data: Mapping[str, Any], names: Mapping[str, int], ctx: _Ctx) -> dict[str, str]:
    """``[latex] W1 = "\\mathbf{W}^{[1]}"``: how ``derive tex`` writes a declared name."""
    out: dict[str, str] = {}
    for name, value in _table(data, "latex", ctx).items():
        if name not in names:
            raise ctx.error(
                f"latex.{name}: '{name}' is not a declared name",
                ("latex", name),
                _or_list(name, names, "declared"),
            )
        if not isinstance(value, str) or not value.strip():
            raise ctx.error(
                f"latex.{name} must be a LaTeX string, not {_type_name(value)}",
                ("latex", name),
                f'e.g. {name} = "\\\\mathbf{{{name}}}"',
            )
        if not _balanced(value):
            raise ctx.error(
                f"latex.{name} has unbalanced braces: {value}",
                ("latex", name),
                "every { needs its } (write \\\\{ for a literal brace)",
            )
        out[name] = value
    return out


def _balanced(text: str) -> bool:
    """Whether every ``{`` is closed in order (``\\{`` and ``\\}`` are literal braces)."""
    depth = 0
    k = 0
    while k < len(text):
        if text[k] == "\\":
            k += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth < 0:
            return False
        k += 1
    return depth == 0
