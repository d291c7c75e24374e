"""Quiz choices, class exports and rubrics."""

from __future__ import annotations

import json

import pytest

from derive.answers.rubric import load_rubric
from derive.answers.scalar import BadQuestion
from derive.cli import main

SPEC = ["verify", "formula", "--spec", "examples/mlp_softmax.toml", "--wrt", "W2"]


@pytest.fixture
def rubric(tmp_path):
    path = tmp_path / "rubric.toml"
    path.write_text("full = 10\ndefault = 1\n[mistakes]\ntranspose = 8\npre_activation = 5\n")
    return path


def test_choices_name_the_right_options(capsys) -> None:
    args = [*SPEC, "--choices", "A: (p - t) h_1^T", "B: h_1 (p - t)^T", "C: (p - t) @ h1.T"]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["right"] == ["A", "C"]
    assert [r["verdict"] for r in data["rows"]] == [
        "equivalent",
        "right up to transpose",
        "equivalent",
    ]
    assert main([*SPEC, "--choices", "A: p - t", "B: h_1"]) == 1
    assert "right: none" in capsys.readouterr().out
    assert main([*SPEC, "--choices", "A: p - t", r"B: \input{x}"]) == 2


def test_class_export_with_rubric(tmp_path, rubric, capsys) -> None:
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "Student,Answer\n"
        "alice,(p - t) h_1^T\n"
        "bob,h_1 (p - t)^T\n"
        'carol,"\\input{/etc/passwd}"\n'
        "dan,(p - t) z_1^T\n"
        "erin,h_1\n"
        ",(p - t) h_1^T\n"
    )
    assert main([*SPEC, "--answers", str(answers), "--rubric", str(rubric), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    scores = {r["student"]: r["score"] for r in data["rows"]}
    assert scores == {"alice": 10, "bob": 8, "carol": 0, "dan": 5, "erin": 1, "line 7": 10}
    assert data["rows"][2]["verdict"] == "cannot read"
    assert data["right"] == ["alice", "line 7"]


def test_bad_class_files_and_rubrics_exit_2(tmp_path, rubric, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("student,formula\nalice,p - t\n")
    assert main([*SPEC, "--answers", str(bad)]) == 2
    assert "no 'answer' column" in capsys.readouterr().err
    assert main([*SPEC, "--answers", str(tmp_path / "missing.csv")]) == 2
    wrong = tmp_path / "wrong.toml"
    for text, words in [
        ("full = 10\n[mistakes]\nsigns = 1\n", "not a recognised mistake"),
        ("full = 'ten'\n", "number of marks"),
        ("fulll = 1\n", "unknown key"),
        ("full = \n", "not valid TOML"),
    ]:
        wrong.write_text(text)
        with pytest.raises(BadQuestion, match=words):
            load_rubric(wrong)
    assert main([*SPEC, "--answer", "p - t", "--rubric", str(wrong)]) == 2
    assert main([*SPEC]) == 2
    assert main([*SPEC, "--answer", "p", "--choices", "A: p"]) == 2


def test_single_answer_scored(rubric, capsys) -> None:
    assert main([*SPEC, "--answer", "h_1 (p - t)^T", "--rubric", str(rubric), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["score"] == 8
