"""Parameter gradients asked for a whole batch (``--batch``): batch matrices, batch sums."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from derive.answers.batchform import batch_findings
from derive.answers.reader import read
from derive.answers.spec import SpecQuestion
from derive.answers.verdict import Mistake, Status
from derive.cli import main
from derive.graph.nodes import BATCH

SPEC = "examples/mlp_softmax.toml"


@pytest.fixture(scope="module")
def mean_q() -> SpecQuestion:
    return SpecQuestion.load(SPEC, "W2", batch=True)


@pytest.fixture(scope="module")
def sum_q(tmp_path_factory) -> SpecQuestion:
    text = Path(SPEC).read_text().replace('reduction = "mean"', 'reduction = "sum"')
    assert 'reduction = "sum"' in text
    path = tmp_path_factory.mktemp("spec") / "mlp_sum.toml"
    path.write_text(text)
    return SpecQuestion.load(path, "W2", batch=True)


def mistakes(verdict) -> list[Mistake]:
    return [f.mistake for f in verdict.findings]


def test_batch_trials_include_the_batch_dimension(mean_q) -> None:
    batch = [t.sizes[BATCH] for t in mean_q.trials]
    assert all(8 <= b <= 11 for b in batch), batch
    assert len(set(batch)) > 1
    env = mean_q.envs()[0]
    assert env["H1"].shape[0] == batch[0] and env["P"].shape == env["T"].shape


def test_sum_loss_batch_form_is_right(sum_q) -> None:
    assert sum_q.judge("(P - T)^T H_1").status is Status.EQUIVALENT
    assert sum_q.judge("H_1^T (P - T)").status is Status.LAYOUT


def test_one_examples_answer_misses_the_batch_sum(sum_q, mean_q) -> None:
    v = sum_q.judge("(p - t) h_1^T")
    assert v.status is Status.WRONG and mistakes(v) == [Mistake.BATCH_SUM_MISSING]
    assert "sum over the batch is missing" in v.findings[0].message
    v = mean_q.judge("(p - t) h_1^T")
    assert mistakes(v) == [Mistake.BATCH_SUM_MISSING]
    assert "1/m of the mean" in v.findings[0].message


def test_mean_loss_needs_its_1_over_b(mean_q, sum_q) -> None:
    assert mean_q.judge(r"\frac{1}{B} (P - T)^T H_1").status is Status.EQUIVALENT
    v = mean_q.judge("(P - T)^T H_1")
    assert v.status is Status.WRONG and mistakes(v) == [Mistake.MEAN_MISSING]
    assert "m" in v.difference.point
    v = sum_q.judge(r"\frac{1}{B} (P - T)^T H_1")
    assert mistakes(v) == [Mistake.MEAN_EXTRA]


def test_other_mistakes_still_diagnosed_in_batch_form(mean_q) -> None:
    assert mistakes(mean_q.judge(r"-\frac{1}{B} (P - T)^T H_1")) == [Mistake.SIGN]
    v = mean_q.judge(r"H_1^T (P - T) / B")
    assert v.status is Status.LAYOUT


def test_a_broken_diagnosis_would_fail(mean_q, sum_q) -> None:
    """Answers that are not a missing batch sum get no batch-sum finding."""
    for q, answer in [
        (sum_q, "2 (p - t) h_1^T"),
        (sum_q, "(p - t) z_1^T"),
        (mean_q, "(t - p) h_1^T"),
        (mean_q, r"\frac{1}{B} (P - T)^T H_1"),
    ]:
        tree = read(answer, set(q.envs()[0]))
        assert batch_findings(q, tree, None) == [], answer
    assert Mistake.BATCH_SUM_MISSING not in mistakes(sum_q.judge("2 (p - t) h_1^T"))


def test_cli_batch_flag(capsys) -> None:
    args = ["verify", "formula", "--spec", SPEC, "--wrt", "W2", "--batch", "--json"]
    assert main([*args, "--answer", r"\frac{1}{m} (P - T)^T H_1"]) == 0
    assert main([*args, "--answer", "(p - t) h_1^T"]) == 1
    out = capsys.readouterr().out.split("\n}\n")[1]
    data = json.loads(out + "\n}")
    assert data["diagnosis"][0]["mistake"] == "batch_sum_missing"
    assert "batch of m examples" in data["question"]
    # batch form is for parameters of a spec only
    assert (
        main(["verify", "formula", "--spec", SPEC, "--wrt", "z1", "--batch", "--answer", "p"]) == 2
    )
    assert (
        main(["verify", "formula", "--expr", "x^2", "--wrt", "x", "--batch", "--answer", "2x"]) == 2
    )
