"""A safe parser for NumPy-like expression strings.

The text is parsed with :func:`ast.parse` (which builds a syntax tree and evaluates nothing)
and then rebuilt, node by node, into the small tree below. Anything outside an allow-list
is rejected with an :class:`ExprSyntaxError` that names the construct and its column.
Untrusted text never reaches ``eval``, ``sympify`` or ``parse_expr``.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_LENGTH = 2000
MAX_NODES = 500
MAX_DEPTH = 60
MAX_INT = 10**15
MAX_EXPONENT = 100

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

ALLOWED = (
    "allowed: numbers, names, + - * / ** @, unary -, calls like f(x) or "
    "leaky_relu(z, slope=0.1), and .T (transpose)"
)


@dataclass(frozen=True)
class Num:
    """A finite int or float literal."""

    value: int | float
    col: int


@dataclass(frozen=True)
class Name:
    """A reference to a declared name."""

    id: str
    col: int


@dataclass(frozen=True)
class BinOp:
    """A binary operation; ``op`` is one of ``+ - * / ** @``."""

    op: str
    left: Expr
    right: Expr
    col: int


@dataclass(frozen=True)
class Neg:
    """Unary minus (unary plus is dropped while parsing)."""

    operand: Expr
    col: int


@dataclass(frozen=True)
class Call:
    """A call of a named op with positional and keyword arguments."""

    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]
    col: int


@dataclass(frozen=True)
class Transpose:
    """``a.T``."""

    operand: Expr
    col: int


Expr = Num | Name | BinOp | Neg | Call | Transpose


class ExprSyntaxError(Exception):
    """An expression that cannot be parsed or uses a construct outside the allow-list.

    ``col`` is the 1-based column in the text (None when unknown).
    """

    def __init__(self, message: str, col: int | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col
        self.hint = hint


_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "**",
    ast.MatMult: "@",
}

_REJECTED: dict[type[ast.AST], str] = {
    ast.Compare: "comparisons",
    ast.BoolOp: "'and'/'or' operators",
    ast.IfExp: "conditional expressions (x if c else y)",
    ast.Lambda: "lambda expressions",
    ast.Subscript: "indexing and slicing (a[i])",
    ast.Starred: "starred arguments (*a)",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.JoinedStr: "strings",
    ast.Await: "'await' expressions",
    ast.Yield: "'yield' expressions",
    ast.YieldFrom: "'yield' expressions",
    ast.Slice: "slices",
}

_OP_NAMES: dict[type[ast.AST], str] = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Not: "not",
}


def parse_expression(text: str) -> Expr:
    """Parse one expression string into an :data:`Expr` tree; raises :class:`ExprSyntaxError`."""
    if not isinstance(text, str):
        raise ExprSyntaxError(f"an expression must be a string, not {type(text).__name__}")
    _check_text(text)
    body = text.lstrip()
    prefix = len(text) - len(body)
    if not body.strip():
        raise ExprSyntaxError("the expression is empty", 1, "write an expression, e.g. 'W @ x + b'")
    tree = _python_parse(body, prefix)
    return _Builder(body, prefix).build(tree.body, 1)


def _check_text(text: str) -> None:
    """Reject over-long text and control characters before parsing."""
    if len(text) > MAX_LENGTH:
        raise ExprSyntaxError(
            f"the expression is too long ({len(text)} characters; at most {MAX_LENGTH})",
            None,
            "split it into several staged equations",
        )
    for index, char in enumerate(text):
        if (ord(char) < 32 and char not in "\t\n") or ord(char) == 127:
            raise ExprSyntaxError(
                f"control character U+{ord(char):04X} is not allowed",
                index + 1,
                "remove it; expressions are plain text on one line",
            )


def _python_parse(body: str, prefix: int) -> ast.Expression:
    """Run the Python parser, turning every failure into :class:`ExprSyntaxError`."""
    try:
        return ast.parse(body, mode="eval")
    except SyntaxError as err:
        col = _char_col(body, err.lineno or 1, (err.offset or 0) - 1, prefix)
        message = (err.msg or "invalid syntax").split(". Perhaps")[0].split(". Maybe")[0]
        raise ExprSyntaxError(message, col, ALLOWED) from None
    except (RecursionError, MemoryError):
        raise ExprSyntaxError(
            "the expression is nested too deeply", None, "split it into several staged equations"
        ) from None
    except Exception as err:  # any other parser failure (e.g. ValueError)
        raise ExprSyntaxError(f"cannot parse the expression: {err}", None, ALLOWED) from None


def _char_col(body: str, lineno: int, index: int, prefix: int) -> int:
    """1-based column in the full text of character ``index`` on line ``lineno`` of ``body``."""
    lines = body.split("\n")
    lineno = min(max(lineno, 1), len(lines))
    if index < 0:
        return len(body.rstrip()) + prefix + 1
    start = sum(len(line) + 1 for line in lines[: lineno - 1])
    return prefix + start + min(index, len(lines[lineno - 1])) + 1


class _Builder:
    """Rebuilds an allow-listed subset of the Python syntax tree; never evaluates anything."""

    def __init__(self, body: str, prefix: int) -> None:
        self.body = body
        self.prefix = prefix
        self.lines = body.split("\n")
        self.count = 0

    def col(self, node: ast.AST) -> int:
        """1-based column of a node (``col_offset`` counts UTF-8 bytes)."""
        lineno = getattr(node, "lineno", 1)
        line = self.lines[min(max(lineno, 1), len(self.lines)) - 1]
        raw = line.encode("utf-8")[: getattr(node, "col_offset", 0)]
        return _char_col(self.body, lineno, len(raw.decode("utf-8", "ignore")), self.prefix)

    def fail(self, message: str, node: ast.AST, hint: str | None = ALLOWED) -> ExprSyntaxError:
        """An error located at ``node``."""
        return ExprSyntaxError(message, self.col(node), hint)

    def build(self, node: ast.AST, depth: int) -> Expr:
        """Build one node after checking the size and depth caps."""
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(
                f"the expression is too large (more than {MAX_NODES} nodes)",
                node,
                "split it into several staged equations",
            )
        if depth > MAX_DEPTH:
            raise self.fail(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels)",
                node,
                "split it into several staged equations",
            )
        method = getattr(self, f"build_{type(node).__name__}", None)
        if method is None:
            raise self.reject(node)
        return method(node, depth + 1)

    def reject(self, node: ast.AST) -> ExprSyntaxError:
        """The error for a construct outside the allow-list."""
        what = _REJECTED.get(type(node), f"{type(node).__name__} nodes")
        return self.fail(f"{what} are not allowed", node)

    def build_Constant(self, node: ast.Constant, depth: int) -> Expr:
        """Int and float literals only."""
        value = node.value
        if type(value) is int:
            if abs(value) >= MAX_INT:
                raise self.fail(
                    f"the integer {_short(value)} is too large (at most {MAX_INT - 1})",
                    node,
                    "use a float, e.g. 1e15",
                )
            return Num(value, self.col(node))
        if type(value) is float:
            if not math.isfinite(value):
                raise self.fail("the number is not finite", node, "use a finite number")
            return Num(value, self.col(node))
        kind = {bool: "booleans", str: "strings", bytes: "bytes", complex: "complex numbers"}
        what = kind.get(type(value), f"constants like {value!r}")
        raise self.fail(f"{what} are not allowed; only int and float numbers are", node)

    def build_Name(self, node: ast.Name, depth: int) -> Expr:
        """Plain names without a leading underscore."""
        if not NAME_RE.fullmatch(node.id):
            raise self.fail(
                f"the name {node.id!r} is not allowed",
                node,
                "names start with a letter and use only ASCII letters, digits and '_'",
            )
        return Name(node.id, self.col(node))

    def build_BinOp(self, node: ast.BinOp, depth: int) -> Expr:
        """``+ - * / ** @``."""
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.bad_operator(node.op, node)
        left = self.build(node.left, depth)
        right = self.build(node.right, depth)
        if op == "**":
            self.check_exponent(right, node)
        return BinOp(op, left, right, self.col(node))

    def check_exponent(self, exponent: Expr, node: ast.AST) -> None:
        """A constant exponent must stay within ``MAX_EXPONENT`` in magnitude."""
        if any(isinstance(node, Name | Call) for node in walk(exponent)):
            return
        if not _abs_bound(exponent)[1] <= MAX_EXPONENT:
            raise self.fail(
                f"the exponent of ** is too large (a constant exponent must lie between "
                f"-{MAX_EXPONENT} and {MAX_EXPONENT} and may not contain **)",
                node,
                "use a small exponent, e.g. x**2 or x**0.5",
            )

    def build_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Expr:
        """Unary minus; unary plus is dropped."""
        if isinstance(node.op, ast.USub):
            return Neg(self.build(node.operand, depth), self.col(node))
        if isinstance(node.op, ast.UAdd):
            return self.build(node.operand, depth)
        raise self.bad_operator(node.op, node)

    def bad_operator(self, op: ast.AST, node: ast.AST) -> ExprSyntaxError:
        """The error for an operator outside ``+ - * / ** @`` and unary ``- +``."""
        return self.fail(f"the operator {_OP_NAMES.get(type(op), '?')} is not allowed", node)

    def build_Attribute(self, node: ast.Attribute, depth: int) -> Expr:
        """Only ``.T`` (transpose)."""
        if node.attr != "T":
            raise self.fail(
                f"the attribute .{node.attr} is not allowed",
                node,
                "the only attribute is .T (transpose), e.g. W.T @ d",
            )
        return Transpose(self.build(node.value, depth), self.col(node))

    def build_Call(self, node: ast.Call, depth: int) -> Expr:
        """``f(a, b, k=c)`` where ``f`` is a plain name."""
        func = node.func
        if not isinstance(func, ast.Name) or not NAME_RE.fullmatch(func.id):
            raise self.fail(
                "only plain op names can be called",
                node,
                "call an op by name, e.g. sigmoid(z) or leaky_relu(z, slope=0.1)",
            )
        args = tuple(self.build(arg, depth) for arg in node.args)
        return Call(func.id, args, self.build_kwargs(node, depth), self.col(node))

    def build_kwargs(self, node: ast.Call, depth: int) -> tuple[tuple[str, Expr], ...]:
        """Keyword arguments ``name=expr``: no ``**kwargs``, no repeats."""
        kwargs: list[tuple[str, Expr]] = []
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.fail("**kwargs are not allowed", keyword)
            if not NAME_RE.fullmatch(keyword.arg):
                raise self.fail(f"the keyword {keyword.arg!r} is not allowed", keyword)
            if any(name == keyword.arg for name, _ in kwargs):
                raise self.fail(
                    f"the keyword {keyword.arg!r} is repeated", keyword, "give each keyword once"
                )
            kwargs.append((keyword.arg, self.build(keyword.value, depth)))
        return tuple(kwargs)


def _short(value: int) -> str:
    """A readable form of a possibly huge integer."""
    text = str(value)
    return text if len(text) <= 20 else f"{text[:8]}...({len(text)} digits)"


def _abs_bound(expr: Expr) -> tuple[float, float]:
    """Lower and upper bounds of ``|expr|`` for a constant expression, without evaluating it.

    ``**`` and anything unexpected are unbounded.
    """
    inf = math.inf
    if isinstance(expr, Num):
        return float(abs(expr.value)), float(abs(expr.value))
    if isinstance(expr, Neg):
        return _abs_bound(expr.operand)
    if not isinstance(expr, BinOp) or expr.op not in "+-*/":
        return 0.0, inf
    lo_a, hi_a = _abs_bound(expr.left)
    lo_b, hi_b = _abs_bound(expr.right)
    if expr.op in "+-":
        return max(0.0, lo_a - hi_b, lo_b - hi_a), hi_a + hi_b
    if expr.op == "*":
        return lo_a * lo_b, hi_a * hi_b
    lo = lo_a / hi_b if hi_b > 0 else inf
    return lo, hi_a / lo_b if lo_b > 0 else inf


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of ``expr`` in pre-order, left to right (keyword values after positionals)."""
    yield expr
    if isinstance(expr, BinOp):
        yield from walk(expr.left)
        yield from walk(expr.right)
    elif isinstance(expr, Neg | Transpose):
        yield from walk(expr.operand)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from walk(arg)
        for _, value in expr.kwargs:
            yield from walk(value)


def names_in(expr: Expr) -> list[Name]:
    """Every :class:`Name` node (not call function names), in order."""
    return [node for node in walk(expr) if isinstance(node, Name)]


def calls_in(expr: Expr) -> list[Call]:
    """Every :class:`Call` node, in order."""
    return [node for node in walk(expr) if isinstance(node, Call)]


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "neg": 3, "**": 4}


def unparse(expr: Expr) -> str:
    """Text that parses back to ``expr`` (up to columns), with minimal parentheses."""
    if isinstance(expr, Num):
        return repr(expr.value)
    if isinstance(expr, Name):
        return expr.id
    if isinstance(expr, Transpose):
        return f"{_wrap(expr.operand, 5)}.T"
    if isinstance(expr, Neg):
        return f"-{_wrap(expr.operand, 3)}"
    if isinstance(expr, Call):
        parts = [unparse(arg) for arg in expr.args]
        parts += [f"{key}={unparse(value)}" for key, value in expr.kwargs]
        return f"{expr.func}({', '.join(parts)})"
    level = _PRECEDENCE[expr.op]
    if expr.op == "**":
        return f"{_wrap(expr.left, 5)} ** {_wrap(expr.right, 3)}"
    return f"{_wrap(expr.left, level)} {expr.op} {_wrap(expr.right, level + 1)}"


def _wrap(expr: Expr, level: int) -> str:
    """``unparse(expr)``, parenthesised when it binds more loosely than ``level``."""
    text = unparse(expr)
    if isinstance(expr, Num) and (expr.value < 0 or level >= 5):
        return f"({text})"
    return f"({text})" if _binding(expr) < level else text


def _binding(expr: Expr) -> int:
    """How tightly ``expr`` binds when printed."""
    if isinstance(expr, BinOp):
        return _PRECEDENCE[expr.op]
    return 3 if isinstance(expr, Neg) else 6
