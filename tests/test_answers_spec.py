"""Spec questions: matrix- and vector-valued answers, layout, and the diagnosis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from derive.answers.scalar import BadQuestion
from derive.answers.spec import SpecQuestion
from derive.answers.verdict import Mistake, Status
from derive.autodiff.adjoint import adjoint_name
from derive.cli import main
from derive.emit.numpy_module import render
from derive.pipeline import derive_spec
from derive.verify.module import load_module

SPEC = "examples/mlp_softmax.toml"


@pytest.fixture(scope="module")
def questions() -> dict[str, SpecQuestion]:
    d = derive_spec(SPEC)
    return {w: SpecQuestion.from_derivation(d, w, (), 0, SPEC) for w in ("f", "W2", "z1", "W1")}


def test_reference_values_are_the_generated_backward(questions, tmp_path) -> None:
    q = questions["W1"]
    path = tmp_path / "m.py"
    path.write_text(render(q.derivation))
    module = load_module(path)
    for trial in q.trials:
        params = {n: trial.values[n] for n in module.PARAMS}
        batch = {n: trial.values[n] for n in module.INPUTS}
        _, cache = module.forward(params, batch)
        grads = module.backward(params, batch, cache, g_loss=np.ones(1))
        for name in module.PARAMS:
            assert np.allclose(grads[name], trial.values[adjoint_name(name)], rtol=1e-10)


@pytest.mark.parametrize(
    ("wrt", "answer"),
    [
        ("f", "p - t"),
        ("f", r"\hat{y} - t"),
        ("f", r"p - t \sum_j p_j"),
        ("f", r"\hat{y}_j - t_j"),
        ("W2", "(p - t) h_1^T"),
        ("W2", r"(\mathbf{p} - \mathbf{t}) \mathbf{h}_1^\top"),
        ("W2", "(p - t) @ h1.T"),
        ("z1", r"h_1 \odot (1 - h_1) \odot W_2^T (p - t)"),
        ("z1", r"\sigma'(z_1) \circ \left( W_2^{T} (p - t) \right)"),
        ("z1", r"\delta_1"),
        ("z1", r"g_h1 \odot h_1 \odot (1 - h_1)"),
        ("W1", r"\delta_1 x^T"),
        ("W1", r"(h_1 \odot (1 - h_1) \odot W_2^T (p - t)) x^T"),
    ],
)
def test_right_answers(questions, wrt: str, answer: str) -> None:
    q = questions[wrt]
    if "hat" in answer:
        q = SpecQuestion.from_derivation(q.derivation, wrt, [r"\hat{y}=p"], 0, SPEC)
    v = q.judge(answer)
    assert v.status is Status.EQUIVALENT, (answer, v.text())
    assert v.exit_code == 0


@pytest.mark.parametrize(
    ("wrt", "answer", "mistake", "words"),
    [
        ("f", "t - p", Mistake.T_MINUS_P, "t − p written for p − t"),
        ("f", "-(p - t)", Mistake.SIGN, "sign"),
        ("f", "2(p - t)", Mistake.FACTOR_2_EXTRA, "factor of 2"),
        ("f", "(p - t)/2", Mistake.FACTOR_2_MISSING, "factor of 2"),
        ("W2", r"\frac{1}{3} (p - t) h_1^T", Mistake.CONSTANT_FACTOR, "factor 1/3"),
        ("W2", r"\frac{1}{m} (p - t) h_1^T", Mistake.MEAN_EXTRA, "1/m of the batch mean"),
        ("W2", r"\frac{1}{B} (p - t) h_1^T", Mistake.MEAN_EXTRA, "one example's loss"),
        ("f", r"\mathrm{diag}(p) - p p^T", Mistake.SOFTMAX_JACOBIAN, "softmax Jacobian"),
        ("f", r"p \odot (1 - p) \odot (-t / p)", Mistake.SOFTMAX_ELEMENTWISE, "diagonal"),
        ("W2", "(p - t) z_1^T", Mistake.PRE_ACTIVATION, "z1 is used where h1"),
        ("W2", "p - t", Mistake.WRONG_SHAPE, "k × 1"),
        ("z1", "W_2^T (p - t)", Mistake.SIGMA_PRIME_MISSING, "this is ∂L/∂h1"),
        ("z1", r"h_1 \odot (1 - h_1) \odot W_2 (p - t)", Mistake.TRANSPOSE_MISSING, "W2"),
        ("z1", "h_1 (1 - h_1)", Mistake.INTERMEDIATE, "local derivative ∂h1/∂z1"),
        ("W1", r"(W_2^T (p - t)) x^T", Mistake.SIGMA_PRIME_MISSING, "missing"),
        ("W1", r"x \delta_1^T", Mistake.TRANSPOSE, "transposed"),
    ],
)
def test_wrong_answers_are_diagnosed(questions, wrt, answer, mistake, words) -> None:
    v = questions[wrt].judge(answer)
    assert v.status in (Status.WRONG, Status.LAYOUT), v.text()
    assert v.exit_code == 1
    found = {f.mistake: f.message for f in v.findings}
    assert mistake in found, v.text()
    assert words in found[mistake]


def test_layout_is_its_own_verdict_with_values(questions) -> None:
    v = questions["W2"].judge("h_1 (p - t)^T")
    assert v.status is Status.LAYOUT and v.exit_code == 1
    assert "shape of W2" in v.hint
    assert v.difference is not None
    assert np.allclose(v.difference.answer, v.difference.reference.T)


def test_wrong_answer_without_a_known_mistake_still_gets_a_point(questions) -> None:
    v = questions["f"].judge("p - t + h_1^T W_2^T p")
    assert v.status is Status.WRONG
    assert v.findings == [] or all(f.mistake is not Mistake.SIGN for f in v.findings)
    assert v.difference is not None and not np.allclose(v.difference.answer, v.difference.reference)


def test_unknown_names_and_bad_nodes(questions) -> None:
    v = questions["f"].judge("p - y")
    assert v.status is Status.UNREADABLE and "'y'" in v.error
    with pytest.raises(BadQuestion):
        SpecQuestion.load(SPEC, "q")
    with pytest.raises(BadQuestion):
        SpecQuestion.load("examples/missing.toml", "f")
    with pytest.raises(BadQuestion, match="examples interact"):
        SpecQuestion.load("examples/mlp_batchnorm.toml", "W1")


def test_cli_spec_mode(capsys) -> None:
    base = ["verify", "formula", "--spec", SPEC, "--wrt", "W2"]
    assert main([*base, "--answer", "(p - t) h_1^T"]) == 0
    out = capsys.readouterr().out
    assert "read as:  (p - t)*h1.T" in out and "LaTeX: \\left(p - t\\right) h_{1}^{T}" in out
    assert main([*base, "--answer", "h_1 (p - t)^T", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "right up to transpose"
    assert main([*base, "--answer", r"\input{/etc/passwd}"]) == 2
