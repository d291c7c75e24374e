"""Tests for the safe expression parser."""

from __future__ import annotations

import ast
import importlib.util
import keyword
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

if importlib.util.find_spec("derive") is None:  # plain `pytest` without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from derive.lang import expr as parse
from derive.lang.expr import (
    BinOp,
    Call,
    Expr,
    ExprSyntaxError,
    Name,
    Neg,
    Num,
    Transpose,
    calls_in,
    names_in,
    parse_expression,
    unparse,
    walk,
)


def strip(expr: Expr) -> object:
    """The tree as nested tuples, without columns."""
    if isinstance(expr, Num):
        return ("num", expr.value)
    if isinstance(expr, Name):
        return ("name", expr.id)
    if isinstance(expr, BinOp):
        return (expr.op, strip(expr.left), strip(expr.right))
    if isinstance(expr, Neg):
        return ("neg", strip(expr.operand))
    if isinstance(expr, Transpose):
        return ("T", strip(expr.operand))
    args = tuple(strip(arg) for arg in expr.args)
    kwargs = tuple((key, strip(value)) for key, value in expr.kwargs)
    return ("call", expr.func, args, kwargs)


def shape_of(text: str) -> object:
    """``strip(parse_expression(text))``."""
    return strip(parse_expression(text))


def error_of(text: str) -> ExprSyntaxError:
    """The ExprSyntaxError raised for ``text``."""
    with pytest.raises(ExprSyntaxError) as info:
        parse_expression(text)
    return info.value


# ---------------------------------------------------------------------------------------
# Happy path


def test_affine_layer_with_columns() -> None:
    expr = parse_expression("W1 @ x + b1")
    assert expr == BinOp("+", BinOp("@", Name("W1", 1), Name("x", 6), 1), Name("b1", 10), 1)


def test_row_major_affine() -> None:
    assert shape_of("x @ W + b") == ("+", ("@", ("name", "x"), ("name", "W")), ("name", "b"))


def test_transpose() -> None:
    assert parse_expression("a.T") == Transpose(Name("a", 1), 1)
    assert shape_of("W.T @ d") == ("@", ("T", ("name", "W")), ("name", "d"))
    assert shape_of("(a @ b).T") == ("T", ("@", ("name", "a"), ("name", "b")))


def test_keyword_arguments() -> None:
    expr = parse_expression("leaky_relu(z, slope=alpha)")
    assert expr == Call("leaky_relu", (Name("z", 12),), (("slope", Name("alpha", 21)),), 1)


def test_negated_cross_entropy() -> None:
    expr = parse_expression("-sum(t * log(p))")
    assert isinstance(expr, Neg)
    assert expr.col == 1
    assert strip(expr) == (
        "neg",
        ("call", "sum", (("*", ("name", "t"), ("call", "log", (("name", "p"),), ())),), ()),
    )


def test_unary_minus_binds_looser_than_power() -> None:
    assert shape_of("-x**2") == ("neg", ("**", ("name", "x"), ("num", 2)))
    assert shape_of("x**-2") == ("**", ("name", "x"), ("neg", ("num", 2)))
    assert shape_of("(-x)**2") == ("**", ("neg", ("name", "x")), ("num", 2))


def test_precedence_and_associativity() -> None:
    assert shape_of("a - b - c") == ("-", ("-", ("name", "a"), ("name", "b")), ("name", "c"))
    assert shape_of("a + b * c") == ("+", ("name", "a"), ("*", ("name", "b"), ("name", "c")))
    assert shape_of("a ** b ** c") == ("**", ("name", "a"), ("**", ("name", "b"), ("name", "c")))
    assert shape_of("a / b @ c") == ("@", ("/", ("name", "a"), ("name", "b")), ("name", "c"))


def test_unary_plus_is_dropped() -> None:
    assert parse_expression("+x") == Name("x", 2)


def test_numbers() -> None:
    assert parse_expression("2.5") == Num(2.5, 1)
    assert parse_expression("1e-3") == Num(0.001, 1)
    assert parse_expression("42") == Num(42, 1)
    assert type(parse_expression("42").value) is int
    assert parse_expression(str(10**15 - 1)) == Num(10**15 - 1, 1)


def test_allowed_exponents() -> None:
    assert shape_of("x ** 100") == ("**", ("name", "x"), ("num", 100))
    assert shape_of("x ** -100")[0] == "**"
    assert shape_of("x ** (1/2)") == ("**", ("name", "x"), ("/", ("num", 1), ("num", 2)))
    assert shape_of("x ** y")[0] == "**"
    assert shape_of("2 ** x")[0] == "**"


def test_columns_with_leading_space_and_newlines() -> None:
    assert parse_expression("   x") == Name("x", 4)
    expr = parse_expression("(a +\n b)")
    assert isinstance(expr, BinOp)
    assert expr.right == Name("b", 7)


def test_parenthesised_function_name_is_a_plain_name() -> None:
    assert shape_of("(f)(x)") == ("call", "f", (("name", "x"),), ())


def test_names_in_and_calls_in_follow_text_order() -> None:
    expr = parse_expression("f(a, k=b) + g(c) * d.T")
    assert [name.id for name in names_in(expr)] == ["a", "b", "c", "d"]
    assert [call.func for call in calls_in(expr)] == ["f", "g"]
    assert [name.col for name in names_in(expr)] == [3, 8, 15, 20]


def test_walk_visits_every_node_once() -> None:
    expr = parse_expression("-f(a, k=2).T + b")
    kinds = [type(node).__name__ for node in walk(expr)]
    assert kinds == ["BinOp", "Neg", "Transpose", "Call", "Name", "Num", "Name"]


def test_nodes_are_frozen_and_hashable() -> None:
    expr = parse_expression("f(a, k=b)")
    assert hash(expr) == hash(parse_expression("f(a, k=b)"))
    with pytest.raises(AttributeError):
        expr.func = "g"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------
# Rejections


REJECTED = [
    ("x.shape", "attribute .shape", 1),
    ("a + x.__class__", "attribute .__class__", 5),
    ("x[0]", "indexing", 1),
    ("x[1:2]", "indexing", 1),
    ("a < b", "comparisons", 1),
    ("lambda: 1", "lambda", 1),
    ("[v for v in x]", "comprehensions", 1),
    ("f(v for v in x)", "comprehensions", 2),
    ("'abc'", "strings", 1),
    ("f'{x}'", "strings", 1),
    ("b'x'", "bytes", 1),
    ("True", "booleans", 1),
    ("None", "None", 1),
    ("1j", "complex", 1),
    ("a and b", "'and'/'or'", 1),
    ("a if b else c", "conditional", 1),
    ("f(*a)", "starred", 3),
    ("f((y := 1))", "assignment expressions", 4),
    ("a // b", "operator //", 1),
    ("a % b", "operator %", 1),
    ("~a", "operator ~", 1),
    ("not a", "operator not", 1),
    ("a | b", "operator |", 1),
    ("{1: 2}", "dicts", 1),
    ("{1}", "sets", 1),
    ("[1]", "lists", 1),
    ("(1, 2)", "tuples", 1),
    ("f(**k)", "**kwargs", 3),
    ("f(k='é', *a)", "starred", 10),
    ("f(a=1, a=2)", "keyword 'a' is repeated", 8),
    ("_x + 1", "name '_x'", 1),
    ("x + é", "name 'é'", 5),
    ("f(x)(y)", "only plain op names", 1),
    ("a.b(x)", "only plain op names", 1),
    ("__import__('os')", "only plain op names", 1),
    ("1e309", "not finite", 1),
    (str(10**15), "too large", 1),
    ("x ** 101", "exponent", 1),
    ("x ** -101", "exponent", 1),
    ("x ** (50 + 51)", "exponent", 1),
    ("x ** (2 ** 3)", "exponent", 1),
    ("x ** (1 / 0.001)", "exponent", 1),
]


@pytest.mark.parametrize(("text", "fragment", "col"), REJECTED)
def test_rejected_constructs(text: str, fragment: str, col: int) -> None:
    err = error_of(text)
    assert fragment in err.message
    assert err.col == col
    assert err.hint


def test_rejected_construct_hint_lists_what_is_allowed() -> None:
    assert error_of("a < b").hint == parse.ALLOWED
    assert ".T" in (error_of("x.shape").hint or "")


@pytest.mark.parametrize(
    ("text", "message", "col"),
    [
        ("sigmoid(z1", "'(' was never closed", 8),
        ("1 +", "invalid syntax", 4),
        ("x y", "invalid syntax", 3),
        ("a = 1", "invalid syntax", 3),
        ("a)", "unmatched ')'", 2),
        ("x + é é", "invalid syntax", 7),
    ],
)
def test_syntax_errors_report_the_column(text: str, message: str, col: int) -> None:
    err = error_of(text)
    assert err.message == message
    assert err.col == col
    assert err.hint == parse.ALLOWED


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_expression(text: str) -> None:
    assert "empty" in error_of(text).message


def test_control_characters_are_rejected() -> None:
    err = error_of("x +\x00 y")
    assert err.message == "control character U+0000 is not allowed"
    assert err.col == 4


def test_non_string_input() -> None:
    assert "must be a string" in error_of(3).message  # type: ignore[arg-type]


def test_length_cap() -> None:
    assert parse_expression("x" + " " * 1999) == Name("x", 1)
    err = error_of("x" + " " * 2000)
    assert "too long" in err.message
    assert "2001" in err.message


def test_depth_cap() -> None:
    assert isinstance(parse_expression("-" * 59 + "x"), Neg)
    err = error_of("-" * 60 + "x")
    assert "nested too deeply" in err.message
    assert err.col == 61


def test_parentheses_do_not_count_towards_depth() -> None:
    assert parse_expression("(" * 150 + "x" + ")" * 150) == Name("x", 151)


def test_node_cap() -> None:
    assert isinstance(parse_expression("f(" + "x," * 498 + "x)"), Call)
    err = error_of("f(" + "x," * 499 + "x)")
    assert "too large" in err.message
    assert "500" in err.message


def test_long_left_nested_sum_hits_depth_cap() -> None:
    assert isinstance(parse_expression("+".join(["a"] * 60)), BinOp)
    err = error_of("+".join(["a"] * 61))
    assert "nested too deeply" in err.message
    assert "split" in (err.hint or "")


@pytest.mark.parametrize("failure", [RecursionError, MemoryError, ValueError])
def test_parser_failures_become_expr_syntax_errors(
    monkeypatch: pytest.MonkeyPatch, failure: type[Exception]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise failure("boom")

    monkeypatch.setattr(parse.ast, "parse", boom)
    with pytest.raises(ExprSyntaxError):
        parse_expression("x + y")


MALICIOUS = [
    "__import__('os').system('x')",
    "().__class__.__base__.__subclasses__()",
    "10**10**10",
    "(" * 5000,
    "9**9**9**9",
    "(lambda: 1)()",
    "eval('1')",
    "x.__globals__",
    "[x for x in ().__class__.__mro__]",
    "-" * 1999 + "x",
    "(" * 199 + "x" + ")" * 199 + "**" + "9" * 1500,
    "f(" * 400 + ")" * 400,
    "a**" * 400 + "a",
    "9" * 2000,
]


@pytest.mark.parametrize("text", MALICIOUS, ids=lambda t: repr(t[:24]))
def test_malicious_strings_are_rejected(text: str) -> None:
    # no evaluation happens, so nothing can hang: the caps reject these before any work
    with pytest.raises(ExprSyntaxError):
        parse_expression(text)


def test_eval_is_never_called(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated")

    monkeypatch.setattr("builtins.eval", forbidden)
    monkeypatch.setattr("builtins.exec", forbidden)
    assert isinstance(parse_expression("-sum(t * log(p)) + x ** 2"), BinOp)


def imported_modules(path: str) -> set[str]:
    """Top-level names of every module imported by the file at ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_module_does_not_import_sympy_or_numpy() -> None:
    imported = imported_modules(parse.__file__)
    assert "ast" in imported
    assert imported.isdisjoint({"sympy", "numpy"})


# ---------------------------------------------------------------------------------------
# Unparsing and properties


@pytest.mark.parametrize(
    "text",
    [
        "W1 @ x + b1",
        "-x ** 2",
        "(-x) ** 2",
        "x ** -2",
        "a - (b - c)",
        "a / (b * c)",
        "(a + b).T",
        "(2).T",
        "(2) ** x",
        "-(-x)",
        "leaky_relu(z, slope=0.1)",
        "-sum(t * log(p))",
        "a * -b",
    ],
)
def test_unparse_round_trips(text: str) -> None:
    expr = parse_expression(text)
    assert strip(parse_expression(unparse(expr))) == strip(expr)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_raises_expr_syntax_error(text: str) -> None:
    try:
        parse_expression(text)
    except ExprSyntaxError as err:
        assert err.message
        assert err.col is None or 1 <= err.col <= len(text) + 1


EXPRESSION_ALPHABET = st.sampled_from([*"abxyzT_019.()+-*/@,= eE", "**", ".T", "f("])


@settings(max_examples=300, deadline=None)
@given(st.lists(EXPRESSION_ALPHABET, max_size=40).map("".join))
def test_expression_like_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        expr = parse_expression(text)
    except ExprSyntaxError as err:
        assert err.col is None or 1 <= err.col <= len(text) + 1
        return
    assert strip(parse_expression(unparse(expr))) == strip(expr)
    for node in walk(expr):
        assert 1 <= node.col <= len(text)


NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,4}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0, max_value=1e9, allow_nan=False).map(abs),
)
LEAVES = st.one_of(NAMES.map(lambda n: Name(n, 0)), NUMBERS.map(lambda v: Num(v, 0)))
SMALL_EXPONENTS = st.one_of(
    NAMES.map(lambda n: Name(n, 0)), st.integers(0, 5).map(lambda v: Num(v, 0))
)


def _branches(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    """Non-leaf nodes over ``children``."""
    binop = st.builds(
        lambda op, a, b: BinOp(op, a, b, 0), st.sampled_from("+-*/@"), children, children
    )
    power = st.builds(lambda a, b: BinOp("**", a, b, 0), children, SMALL_EXPONENTS)
    kwargs = st.dictionaries(NAMES, children, max_size=2).map(lambda d: tuple(d.items()))
    call = st.builds(
        lambda f, args, kw: Call(f, tuple(args), kw, 0),
        NAMES,
        st.lists(children, max_size=3),
        kwargs,
    )
    neg = children.map(lambda e: Neg(e, 0))
    transpose = children.map(lambda e: Transpose(e, 0))
    return st.one_of(binop, power, call, neg, transpose)


TREES = st.recursive(LEAVES, _branches, max_leaves=25)


def depth(expr: Expr) -> int:
    """Levels in the tree."""
    children: list[Expr] = []
    if isinstance(expr, BinOp):
        children = [expr.left, expr.right]
    elif isinstance(expr, Neg | Transpose):
        children = [expr.operand]
    elif isinstance(expr, Call):
        children = [*expr.args, *(value for _, value in expr.kwargs)]
    return 1 + max((depth(child) for child in children), default=0)


@settings(max_examples=300, deadline=None)
@given(TREES)
def test_well_formed_trees_round_trip(expr: Expr) -> None:
    assume(depth(expr) <= parse.MAX_DEPTH and sum(1 for _ in walk(expr)) <= parse.MAX_NODES)
    text = unparse(expr)
    parsed = parse_expression(text)
    assert strip(parsed) == strip(expr)
    assert len(names_in(parsed)) == sum(isinstance(node, Name) for node in walk(expr))
    assert len(calls_in(parsed)) == sum(isinstance(node, Call) for node in walk(expr))
