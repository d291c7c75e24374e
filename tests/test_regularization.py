"""Penalties declared per parameter (l2, l1, both), their derived gradients, their refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from derive.cli import main
from derive.emit.numpy_module import render
from derive.errors import SpecError
from derive.lang.spec import parse_spec
from derive.pipeline import derive_spec
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mlp_elastic_net.toml"


def _spec_text(params: str = "", loss: str = "", reduction: str = "mean") -> str:
    return f"""
name = "net"
[dims]
d = 3
m = 4
k = 2
[inputs]
x = {{ shape = ["d"] }}
t = {{ shape = ["k"], kind = "one_hot" }}
[params]
W1 = {{ shape = ["m", "d"]{params} }}
b1 = {{ shape = ["m"] }}
W2 = {{ shape = ["k", "m"] }}
[forward]
h = "tanh(W1 @ x + b1)"
L = "softmax_cross_entropy(W2 @ h, t)"
[loss]
output = "L"
reduction = "{reduction}"
{loss}
"""


def test_defaults_cover_matrices_and_leave_biases_out() -> None:
    spec = parse_spec(_spec_text(loss="l2 = 0.1"))
    assert [(p.param, p.kind, p.coefficient) for p in spec.penalties] == [
        ("W1", "l2", 0.1),
        ("W2", "l2", 0.1),
    ]
    spec = parse_spec(_spec_text(params=", l2 = 0, l1 = 0.5", loss="l2 = 0.1"))
    assert [(p.param, p.kind) for p in spec.penalties] == [("W2", "l2"), ("W1", "l1")]
    assert parse_spec(_spec_text()).penalties == ()


def _load(tmp_path: Path, text: str, name: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace('name = "net"', f'name = "{name}"'), encoding="utf-8")
    out = tmp_path / f"{name}.py"
    out.write_text(render(derive_spec(path)), encoding="utf-8")
    return load_module(out)


@pytest.mark.parametrize(
    ("params", "loss", "expected"),
    [
        ("", "l2 = 0.1", lambda p: {"W1": 0.1 * p["W1"], "W2": 0.1 * p["W2"]}),
        (", l1 = 0.2", "", lambda p: {"W1": 0.2 * np.sign(p["W1"])}),
        (
            ", l1 = 0.2",
            "l2 = 0.1",
            lambda p: {"W1": 0.1 * p["W1"] + 0.2 * np.sign(p["W1"]), "W2": 0.1 * p["W2"]},
        ),
    ],
)
def test_derived_gradient_gains_the_penalty_term(tmp_path, params, loss, expected) -> None:
    """l2: + c w; l1: + c sign(w); both: elastic net. Biases unchanged."""
    plain = _load(tmp_path, _spec_text(), "plain")
    reg = _load(tmp_path, _spec_text(params, loss), "reg")
    rng = np.random.default_rng(0)
    p = plain.init_params(seed=1)
    p = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in p.items()}
    batch = {"x": rng.normal(size=(5, 3)), "t": np.eye(2)[rng.integers(0, 2, 5)]}
    _, g0 = plain.loss_and_grad(p, batch)
    value, g1 = reg.loss_and_grad(p, batch)
    extra = expected(p)
    for name in p:
        np.testing.assert_allclose(g1[name] - g0[name], extra.get(name, 0.0), atol=1e-12)
    penalty = sum(0.05 * np.sum(p[n] ** 2) for n in ("W1", "W2") if "l2" in loss)
    penalty += 0.2 * np.sum(np.abs(p["W1"])) if "l1" in params else 0.0
    assert value == pytest.approx(plain.forward(p, batch)[0] + penalty, rel=1e-12)


@pytest.mark.parametrize(
    ("params", "loss", "reduction", "message"),
    [
        ("", "l2 = -1", "mean", r":\d+: error: loss\.l2 must be a number >= 0"),
        (', l1 = "big"', "", "mean", r"params\.W1\.l1 must be a number >= 0"),
        ("", "l2 = 0.1", "sum", 'penalties need reduction = "mean"'),
        ("", "l3 = 0.1", "mean", "unknown key 'l3' in loss"),
    ],
)
def test_bad_penalties_are_refused(params, loss, reduction, message) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec_text(params, loss, reduction), file="net.toml")


def test_example_checks_and_shows_the_decay(capsys) -> None:
    assert main(["check", str(EXAMPLE), "--no-symbolic"]) == 0
    capsys.readouterr()
    text = (ROOT / "generated" / "mlp_elastic_net.py").read_text(encoding="utf-8")
    assert "l2_W1 = 0.01" in text and "l1_W1 = 0.001" in text and "l2_b1" not in text
    assert "l1_W1 * np.sign(W1)" in text
