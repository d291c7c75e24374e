"""Line breaking of printed NumPy expressions, the way ``ruff format`` breaks them.

An expression that does not fit in the width is broken at its loosest top-level
operators, one operand a line with the operator in front; an operand that still
does not fit is broken in turn (a tighter operator chain flattened into the same
lines, a call or parenthesis opened with its contents indented four more).  A
call's arguments go on one line inside the parentheses when they fit there, else
one a line, each with a trailing comma.
"""

from __future__ import annotations

import re
from itertools import pairwise

# loosest first; ruff breaks a chain at its loosest operators before any tighter ones
LEVELS: tuple[tuple[str, ...], ...] = (
    (" < ", " <= ", " > ", " >= ", " == ", " != "),
    (" + ", " - "),
    (" * ", " / ", " // ", " % ", " @ "),
    (" ** ",),
)
OPEN, CLOSE = "([{", ")]}"


def _top_level(code: str) -> list[int]:
    """Indices of ``code`` outside every bracket and string literal."""
    out, depth, quote = [], 0, ""
    for k, ch in enumerate(code):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in OPEN:
            depth += 1
        elif ch in CLOSE:
            depth -= 1
        elif depth == 0:
            out.append(k)
    return out


def operands(code: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``code`` as ``(first, [(op, operand), ...])`` at its loosest top-level operator."""
    top = _top_level(code)
    for ops in LEVELS:
        parts, start = [], 0
        for k in top:
            if k == 0 or start > k:
                continue
            for op in ops:
                if code.startswith(op, k):
                    parts.append((start, k, op))
                    start = k + len(op)
                    break
        if parts:
            first = code[: parts[0][1]]
            rest = []
            for n, (_, k, op) in enumerate(parts):
                end = parts[n + 1][1] if n + 1 < len(parts) else len(code)
                rest.append((op.strip(), code[k + len(op) : end]))
            return first, rest
    return None


def split_args(content: str) -> list[str]:
    """Top-level comma-separated pieces of a bracket's contents."""
    cuts = [k for k in _top_level(content) if content[k] == ","]
    bounds = [-1, *cuts, len(content)]
    return [content[a + 1 : b].strip() for a, b in pairwise(bounds)]


def _bracketed(code: str) -> tuple[str, str, str] | None:
    """``head(``, contents, ``)`` when ``code`` ends in a bracket opened at top level."""
    if not code or code[-1] not in CLOSE:
        return None
    depth, quote = 0, ""
    for k in range(len(code) - 1, -1, -1):
        ch = code[k]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in CLOSE:
            depth += 1
        elif ch in OPEN:
            depth -= 1
            if depth == 0:
                return code[: k + 1], code[k + 1 : -1], code[-1]
    return None


def _leading_group(code: str) -> tuple[str, str] | None:
    """``(inner)`` and ``.method(...)`` when ``code`` is a parenthesis with a method trailer."""
    if not code.startswith("("):
        return None
    top = _top_level(code)
    close = next((k for k in top if k > 0), None)  # the first index back at depth 0
    if close is None or not code.startswith(").", close - 1):
        return None
    trailer = code[close:]
    bracket = _bracketed(trailer)
    if bracket is None or not bracket[0][1:-1].isidentifier():
        return None
    return code[1 : close - 1], trailer


def layout(code: str, indent: str, width: int, prefix: str = "", suffix: str = "") -> list[str]:
    """``prefix + code + suffix`` as source lines of at most ``width`` characters if possible."""
    line = f"{indent}{prefix}{code}{suffix}"
    if len(line) <= width:
        return [line]
    chain = operands(code)
    if chain is not None:
        first, rest = chain
        pieces = [(prefix, first), *((f"{op} ", operand) for op, operand in rest)]
        out: list[str] = []
        for n, (pre, operand) in enumerate(pieces):
            end = suffix if n == len(pieces) - 1 else ""
            out += layout(operand, indent, width, pre, end)
        return out
    bare = re.search(r"\.\w+\(\)$", code)
    if bare and bare.start() > 0 and code[bare.start() - 1] in CLOSE:  # x(...).copy(): as ruff,
        trailer = bare.group(0)  # split the call before the empty one
        return layout(code[: bare.start()], indent, width, prefix, trailer + suffix)
    group = _leading_group(code)
    call = _bracketed(code)
    if call is not None and len(f"{indent}{prefix}{call[0]}") <= width:
        group = None  # ruff splits the last call's arguments while what leads to it fits
    if group is not None:  # (a + b).sum(axis=-1): the group opens, the trailer stays short
        inner, trailer = group
        body = layout(inner, indent + "    ", width)
        return [f"{indent}{prefix}(", *body, f"{indent}){trailer}{suffix}"]
    parts = _bracketed(code)
    if parts is None:
        return [line]
    head, content, close = parts
    inner = indent + "    "
    args = split_args(content)
    if len(args) == 1:
        body = layout(args[0], inner, width) if args[0] else []
    elif len(f"{inner}{', '.join(args)}") <= width:
        body = [f"{inner}{', '.join(args)}"]
    else:
        body = [ln for a in args if a for ln in layout(a, inner, width, suffix=",")]
    return [f"{indent}{prefix}{head}", *body, f"{indent}{close}{suffix}"]
