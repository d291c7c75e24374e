"""Scalar questions: ``derive verify formula --expr ... --wrt ... --answer ...``."""

from __future__ import annotations

import json

import pytest

from derive.answers import scalar
from derive.answers.scalar import BadQuestion, judge_scalar
from derive.answers.verdict import Method, Mistake, Status
from derive.cli import main

LOGISTIC = "y*log(sigmoid(w1*x1 + w2*x2)) + (1 - y)*log(1 - sigmoid(w1*x1 + w2*x2))"
RIGHT = r"(1 - \sigma(w_1 x_1 + w_2 x_2)) x_1"


def test_right_answer_decided_symbolically() -> None:
    v = judge_scalar(LOGISTIC, "w1", RIGHT, {"y": 1})
    assert v.status is Status.EQUIVALENT and v.exit_code == 0
    assert v.method is Method.SYMBOLIC
    assert v.reading is not None and v.reading.plain == "(1 - sigmoid(w1*x1 + w2*x2))*x1"
    assert v.reading.latex.startswith(r"\left(1 - \sigma\left(w_{1} x_{1}")


def test_numeric_points_decide_when_symbolic_work_runs_out(monkeypatch) -> None:
    monkeypatch.setattr(scalar, "run_bounded", lambda *args, **kwargs: None)
    v = judge_scalar(LOGISTIC, "w_1", RIGHT, {"y": 1})
    assert v.status is Status.EQUIVALENT and v.method is Method.NUMERIC
    assert "60 random points" in v.detail


def test_tolerance_is_tight() -> None:
    v = judge_scalar("x^2", "x", r"2x (1 + 10^{-6})")
    assert v.status is Status.WRONG


def test_wrong_answer_gives_a_point_values_and_a_diagnosis() -> None:
    v = judge_scalar(LOGISTIC, "w1", "-" + RIGHT, {"y": 1})
    assert v.status is Status.WRONG and v.exit_code == 1
    assert v.difference is not None
    assert v.difference.answer == pytest.approx(-v.difference.reference)
    assert set(v.difference.point) == {"w1", "x1", "w2", "x2"}
    assert [f.mistake for f in v.findings] == [Mistake.SIGN]


def test_wrong_variable_and_underived_answers_are_recognised() -> None:
    v = judge_scalar("w x + w^2", "w", "w")
    assert Mistake.WRONG_VARIABLE in [f.mistake for f in v.findings]
    v = judge_scalar(r"\log(w) x", "w", r"\log(w) x")
    assert [f.mistake for f in v.findings] == [Mistake.NOT_DIFFERENTIATED]


def test_domains_are_respected() -> None:
    v = judge_scalar(r"\log(x) + \sqrt{y}", "x", r"\frac{1}{x}")
    assert v.status is Status.EQUIVALENT
    assert judge_scalar(r"\log(1 - x)", "x", "1/(x - 1)").status is Status.EQUIVALENT


def test_definitions_name_subexpressions() -> None:
    v = judge_scalar(
        r"\hat{y}^2", "w", r"2 \hat{y}^2 (1 - \hat{y}) x", defines=[r"\hat{y}=\sigma(w x)"]
    )
    assert v.status is Status.EQUIVALENT
    assert v.reading is not None and "yhat" in v.reading.plain


def test_unknown_names_and_bad_questions() -> None:
    v = judge_scalar("x^2", "x", "2q")
    assert v.status is Status.UNREADABLE and "q" in v.error
    with pytest.raises(BadQuestion):
        judge_scalar("x^2", "z", "2x")
    with pytest.raises(BadQuestion):
        judge_scalar("x^2", "x", "2x", {"x": 1})
    with pytest.raises(BadQuestion):
        judge_scalar(r"\input{x}", "x", "2x")


def test_cli_exit_codes_and_json(capsys) -> None:
    base = ["verify", "formula", "--expr", LOGISTIC, "--wrt", "w1", "--given", "y=1"]
    assert main([*base, "--answer", RIGHT]) == 0
    assert "equivalent (symbolic" in capsys.readouterr().out
    assert main([*base, "--answer", "x_1", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "not equivalent" and data["read_as"]["latex"] == "x_{1}"
    assert data["difference"]["expected"] != data["difference"]["answer"]
    assert main([*base, "--answer", "(x_1"]) == 2
    assert main([*base[:-2], "--given", "y=one", "--answer", "x1"]) == 2
    assert "NAME=NUMBER" in capsys.readouterr().err


@pytest.mark.parametrize(
    "answer",
    [
        "__import__('os').system('echo hacked')",
        "().__class__.__base__.__subclasses__()",
        r"\input{/etc/passwd}",
        r"\def\x{x}\x",
        "10^{10^{10}}",
        "(" * 5000 + "x" + ")" * 5000,
        "x" * 100_000,
    ],
    ids=["import", "class-chain", "input", "def", "power-tower", "nesting", "100KB"],
)
def test_cli_refuses_hostile_answers(answer: str, capsys) -> None:
    args = ["verify", "formula", "--expr", "x^2", "--wrt", "x", "--answer", answer, "--json"]
    assert main(args) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "cannot read" and data["error"]
    assert "hacked" not in json.dumps(data)


@pytest.mark.parametrize(
    ("answer", "mistake", "words"),
    [
        (r"1 - \sigma(w_1 x_1 + w_2 x_2)", Mistake.FACTOR_MISSING, "a factor x1 is missing"),
        (r"(1 - \sigma(w_1 x_1 + w_2 x_2)) x_1 x_2", Mistake.FACTOR_EXTRA, "extra factor x2"),
        (r"3 (1 - \sigma(w_1 x_1 + w_2 x_2)) x_1", Mistake.CONSTANT_FACTOR, "factor 3"),
    ],
)
def test_factors_are_recognised(answer: str, mistake: Mistake, words: str) -> None:
    v = judge_scalar(LOGISTIC, "w1", answer, {"y": 1})
    assert [(f.mistake, words in f.message) for f in v.findings] == [(mistake, True)]
