"""Any text: the reader returns a tree or refuses it; judging returns a verdict, never a crash."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.answers.reader import read
from derive.answers.scalar import judge_scalar
from derive.answers.spec import SpecQuestion
from derive.answers.tree import AnswerError
from derive.pipeline import derive_spec

PIECES = [
    "x", "y", "w_1", "x1", "h_1", "W_2", "p", "t", "z1", "e", "T", "2", "0", "10", "0.5",
    "+", "-", "*", "/", "^", "_", "(", ")", "{", "}", "[", "]", "|", ",", "'", ".T", "@",
    r"\frac", r"\sqrt", r"\sigma", r"\exp", r"\log", r"\ln", r"\tanh", r"\odot", r"\cdot",
    r"\sum", r"\hat", r"\mathbf", r"\top", r"\left(", r"\right)", r"\delta", r"\prime",
    r"\input", r"\max", "diag", "softmax", "sum", " ", "__", "=",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=25).map("".join)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(texts)
def test_reader_returns_a_tree_or_refuses(text: str) -> None:
    try:
        read(text, known={"x", "y", "p", "t", "h1", "W2"})
    except AnswerError as err:
        assert err.message


@pytest.fixture(scope="module")
def question() -> SpecQuestion:
    d = derive_spec("examples/mlp_softmax.toml")
    return SpecQuestion.from_derivation(d, "W2", (), 0, "mlp_softmax")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_judging_never_crashes(question, text: str) -> None:
    assert question.judge(text).exit_code in (0, 1, 2)
    assert judge_scalar("x^2 y + \\log(y)", "x", text).exit_code in (0, 1, 2)
