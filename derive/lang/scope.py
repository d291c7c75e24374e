"""Cross-checks of a spec's names: unique declarations, known names and ops, calls with
the right arguments, forward equations in order and without cycles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from derive.errors import SpecError, suggest
from derive.lang.context import KIND_WORDS, _a, _Ctx, _located
from derive.lang.expr import Call, Expr, calls_in, names_in
from derive.lang.records import Equation, OpDecl, TensorDecl
from derive.ops.signatures import BindError, bind
from derive.ops.table import BUILTIN_OPS

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
    """The op exists and its values fit its signature (positionally or by keyword)."""
    if call.func in BUILTIN_OPS:
        sig = BUILTIN_OPS[call.func]
        params = _bind(call, sig.args, tuple(sig.kwargs), sig.signature(call.func), site, ctx)
        for key, value in params.items():
            _check_param(call, key, value, site, ctx)
    elif call.func in site.ops:
        op = scope.ops[call.func]
        _bind(call, op.args, (), f"{call.func}({', '.join(op.args)})", site, ctx)
    else:
        raise _unknown_op(call, site, scope, ctx)


def _bind(
    call: Call,
    args: tuple[str, ...],
    params: tuple[str, ...],
    signature: str,
    site: _Site,
    ctx: _Ctx,
) -> dict[str, Expr]:
    """The parameters a call gives, or an error whose hint is the whole signature."""
    try:
        return bind(call.func, args, params, call.args, call.kwargs)[1]
    except BindError as e:
        col = call.col if e.index is None else call.kwargs[e.index][1].col
        hint = f"call it as {signature}"
        if e.index is not None and e.unknown:
            close = suggest(call.kwargs[e.index][0], [*args, *params])
            hint = f"{close}; the signature is {signature}" if close else hint
        raise _expr_error(site, e.message, col, hint, ctx) from None


def _check_param(call: Call, key: str, value: Expr, site: _Site, ctx: _Ctx) -> None:
    """An op parameter (``slope``, ``eps``, ``axis``) is a number or a declared constant."""
    keyword = any(k == key for k, _ in call.kwargs)
    example = "-1" if key == "axis" else "0.1"
    what = f"the keyword {key}=" if keyword else f"the parameter {key}"
    for node in names_in(value):
        if node.id not in site.kwarg_names:
            raise _expr_error(
                site,
                f"{what} of {call.func}() must be a number or a constant, not '{node.id}'",
                node.col,
                f"e.g. {key}={example}, or declare '{node.id}' under [constants]",
                ctx,
            )
    if calls_in(value):
        raise _expr_error(
            site,
            f"{what} of {call.func}() must be a number or a constant",
            value.col,
            f"e.g. {key}={example}",
            ctx,
        )


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
