"""The answer reader: notation students type, names, and refusals of hostile text."""

from __future__ import annotations

import pytest

from derive.answers.reader import read
from derive.answers.symbolic import latex, plain, to_sympy
from derive.answers.tree import AnswerError, Bin, Call, Name, Op, Transpose


def text(answer: str, matrix: bool = False, known: tuple[str, ...] = ()) -> str:
    return plain(to_sympy(read(answer, known), matrix=matrix, evaluate=False))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (r"(1 - \sigma(w_1 x_1 + w_2 x_2)) x_1", "(1 - sigmoid(w1*x1 + w2*x2))*x1"),
        ("(1 - sigmoid(w1*x1 + w2*x2))*x1", "(1 - sigmoid(w1*x1 + w2*x2))*x1"),
        (r"\frac{1}{1 + e^{-z}}", "1/(1 + exp(-z))"),
        (r"\frac12 x", "x/2"),
        (r"\exp(z) - \log(y)", "exp(z) - log(y)"),
        (r"\ln y", "log(y)"),
        (r"\log \sigma(w_1 x_1)", "log(sigmoid(w1*x1))"),
        (r"\hat{y} - y", "yhat - y"),
        (r"\mathbf{W}_2 \boldsymbol{\delta}", "W2*delta"),
        (r"\left( a + b \right) \cdot c", "(a + b)*c"),
        (r"\sum_{j=1}^{3} w_j x_j", "w1*x1 + w2*x2 + w3*x3"),
        (r"\sigma'(z)", "sigmoid'(z)"),
        (r"\sigma^{\prime}(z)", "sigmoid'(z)"),
        ("x^23", "x**23"),
        (r"x^23 \cdot 1", "x**2*3*1"),
        ("2x y", "2*x*y"),
        (r"\tanh z", "tanh(z)"),
        ("$p - t$", "p - t"),
        ("σ(z) − 1", "sigmoid(z) - 1"),
    ],
)
def test_reads_notation(answer: str, expected: str) -> None:
    assert text(answer) == expected


def test_same_name_three_ways() -> None:
    assert read("w_1") == read("w1") == read("w_{1}") == Name("w1")
    assert read(r"x^{(1)}_2") == Name("x2^(1)")
    assert read(r"W^{(1)}", known=("W1",)) == Name("W1")


def test_known_names_with_underscores() -> None:
    known = ("g_W1", "W1", "log_p", "p")
    assert read("g_W1", known) == read("g_{W1}", known) == Name("g_W1")
    assert read("log_p", known) == Name("log_p")
    assert read(r"\log p", known) == Call("log", (Name("p"),))
    assert read("W_1", known) == Name("W1")


def test_transpose_spellings() -> None:
    for answer in ("h_1^T", r"h_1^\top", "h_1^{T}", "h1.T", "h_1ᵀ"):
        assert read(answer) == Transpose(Name("h1")), answer


def test_matrix_answers_keep_order_and_hadamard_binds_loosely() -> None:
    tree = read(r"h_1 \odot (1 - h_1) \odot W_2^T (p - t)")
    assert isinstance(tree, Bin) and tree.op is Op.HADAMARD
    assert tree.right == Bin(Op.PRODUCT, Transpose(Name("W2")), read("p - t"))
    shown = latex(to_sympy(read(r"(p - t) h_1^T"), matrix=True, evaluate=False))
    assert shown == r"\left(p - t\right) h_{1}^{T}"


def test_known_letters_split_unknown_words() -> None:
    assert read("xy", known=("x", "y")) == Bin(Op.PRODUCT, Name("x"), Name("y"))
    assert read("xy") == Name("xy")
    assert read("e^{z}") == Call("exp", (Name("z"),))
    assert read("e^{z}", known=("e", "z")) == Bin(Op.POW, Name("e"), Name("z"))


HOSTILE = [
    "__import__('os').system('true')",
    "().__class__.__bases__[0].__subclasses__()",
    "().mro()[1]",
    "lambda: 1",
    r"\input{/etc/passwd}",
    r"\include{secret}",
    r"\def\x{1}\x",
    r"\newcommand{\x}{1}",
    r"\immediate\write18{ls}",
    "10^{10^{10}}",
    "10**10**10",
    "(10^{100})^{100}",
    "2^{1000}",
    "9" * 40,
    "(" * 5000 + "x" + ")" * 5000,
    "(" * 200 + "x" + ")" * 200,
    "{" * 200 + "x" + "}" * 200,
    "x + " * 400 + "x",
    "-" * 1999 + "x",
    r"\exp " * 399 + "x",
    r"\frac" * 399 + "x",
    "x^{" * 499 + "x" + "}" * 499,
    "x**" * 600 + "x",
    "x^{" * 600 + "x" + "}" * 600,
    r"\sigma(" * 300 + "x" + ")" * 300,
    "x" * 100_000,
    "a" * 2001,
    "",
    "x +",
    "(x",
    r"\frac{1}",
    "\x00",
    r"\unknowncommand x",
    "f'(x)",
]


@pytest.mark.parametrize("answer", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_answers_are_refused(answer: str) -> None:
    with pytest.raises(AnswerError) as err:
        read(answer)
    assert err.value.message


def test_errors_name_a_column() -> None:
    with pytest.raises(AnswerError) as err:
        read(r"p - \input{x}")
    assert err.value.col == 5
    assert "not allowed" in str(err.value)


@pytest.mark.parametrize("answer", ["w_1.T", "x.", "W. x"])
def test_a_lone_point_is_refused_not_a_crash(answer: str) -> None:
    with pytest.raises(AnswerError, match=r"not a number|expected"):
        read(answer)
