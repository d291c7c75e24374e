"""Binding a call to an op's signature, and the names a spec may not take.

SymPy-free, so that the spec reader can check calls without importing SymPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from derive.lang.naming import MODULE_NAMES, is_gradient_name

T = TypeVar("T")


class BindError(ValueError):
    """A call whose values do not fit the op's signature; ``index`` is the offending keyword."""

    def __init__(self, message: str, index: int | None = None, unknown: bool = False) -> None:
        super().__init__(message)
        self.message, self.index, self.unknown = message, index, unknown


def bind(
    name: str,
    args: Sequence[str],
    params: Sequence[str],
    positional: Sequence[T],
    keywords: Sequence[tuple[str, T]],
) -> tuple[list[T], dict[str, T]]:
    """Match a call's values to an op's ``args`` then ``params``, as Python binds a call.

    Positional values fill the arguments, then the parameters in order; keywords name
    either.  Returns the argument values in order and the parameters given (by name).
    Raises :class:`BindError` for too many values, an unknown or repeated keyword, or a
    missing argument.
    """
    names = [*args, *params]
    n = len(args)
    plural = "argument" if n == 1 else "arguments"
    takes = f"{name}() takes {n} positional {plural} ({', '.join(args)})"
    if len(positional) > len(names):
        more = f" and {len(params)} parameters ({', '.join(params)})" if params else ""
        raise BindError(f"{takes}{more}, got {len(positional)}")
    bound: dict[str, T] = dict(zip(names, positional, strict=False))
    for k, (key, value) in enumerate(keywords):
        if key not in names:
            raise BindError(f"{name}() has no keyword '{key}'", k, unknown=True)
        if key in bound:
            raise BindError(f"{name}() got '{key}' twice (by position and by keyword)", k)
        bound[key] = value
    if any(a not in bound for a in args):
        raise BindError(f"{takes}, got {len(positional)}")
    return [bound[a] for a in args], {p: bound[p] for p in params if p in bound}


HELPER_OPS = frozenset({"max", "total", "size", "stop"})
"""Names the built-in macros rely on (softmax's max shift, l1/l2's total, the gradient stop);
an [ops] entry cannot take them.  Of these only ``max`` may be called from a spec."""


RESERVED_NAMES = MODULE_NAMES
"""Names a spec may not declare; ``g_`` and ``_`` prefixes are reserved too (gradients, helpers)."""


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot be declared, or None when it can."""
    if is_gradient_name(name):
        return "names starting with 'g_' are reserved for gradients (g_X is dL/dX)"
    if name in RESERVED_NAMES:
        return f"'{name}' is used by the generated module itself"
    return None
