"""Inverted dropout: a mask input, train and eval modes, the same mask forward and backward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.cli import main
from derive.emit.numpy_module import render
from derive.errors import SpecError
from derive.graph.dropout import mask_expectation
from derive.pipeline import derive_spec
from derive.show import show_text
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_dropout.toml"

SPEC = """
name = "NAME"
[dims]
d = 4
m = 6
k = 3
[inputs]
x = { shape = ["d"] }
t = { shape = ["k"], kind = "one_hot" }
[params]
W1 = { shape = ["m", "d"] }
b1 = { shape = ["m"] }
W2 = { shape = ["k", "m"] }
[forward]
h1 = "tanh(W1 @ x + b1)"
HIDDEN
L = "softmax_cross_entropy(W2 @ h1d, t)"
[loss]
output = "L"
"""


def _module(tmp_path: Path, name: str, hidden: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.replace("NAME", name).replace("HIDDEN", hidden), encoding="utf-8")
    out = tmp_path / f"{name}.py"
    out.write_text(render(derive_spec(path)), encoding="utf-8")
    return load_module(out)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dropout")
    drop = _module(tmp, "with_drop", 'h1d = "dropout(h1, drop=0.25)"')
    plain = _module(tmp, "no_drop", 'h1d = "h1"')
    rng = np.random.default_rng(0)
    params = drop.init_params(seed=1)
    batch = {"x": rng.normal(size=(40, 4)), "t": np.eye(3)[rng.integers(0, 3, 40)]}
    return drop, plain, params, batch


def test_eval_mode_is_the_identity(pair) -> None:
    drop, plain, params, batch = pair
    loss, cache = drop.forward(params, batch, train=False)
    assert loss == plain.forward(params, batch)[0]
    np.testing.assert_array_equal(cache["h1d"], cache["h1"])
    np.testing.assert_array_equal(cache["mask_h1"], 1.0)


def test_training_masks_are_inverted_and_seeded(pair) -> None:
    drop, _plain, params, batch = pair
    _, a = drop.forward(params, batch, seed=3)
    _, b = drop.forward(params, batch, seed=3)
    _, c = drop.forward(params, batch, seed=4)
    mask = a["mask_h1"]
    assert set(np.unique(mask)) == {0.0, 1 / 0.75}
    assert 0.15 < np.mean(mask == 0) < 0.35  # 240 draws at p = 0.25
    np.testing.assert_array_equal(mask, b["mask_h1"])
    assert not np.array_equal(mask, c["mask_h1"])
    np.testing.assert_allclose(a["h1d"], a["h1"] * mask)
    big = drop.with_dropout(params, {"x": np.zeros((20000, 4)), "t": batch["t"][:1]}, seed=0)
    assert abs(big["mask_h1"].mean() - 1.0) < 0.01  # E[mask] = 1


def test_backward_uses_the_forward_mask(pair) -> None:
    """Central differences of forward(seed) against loss_and_grad(seed): one mask for both."""
    drop, plain, params, batch = pair
    _, grads = drop.loss_and_grad(params, batch, seed=7)
    h = 1e-6
    for name in ("W1", "b1", "W2"):
        for idx in [(0,) * params[name].ndim, tuple(s - 1 for s in params[name].shape)]:
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[name][idx] += h
            down[name][idx] -= h
            fd = (drop.forward(up, batch, seed=7)[0] - drop.forward(down, batch, seed=7)[0]) / 2 / h
            assert grads[name][idx] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    _, plain_grads = plain.loss_and_grad(params, batch)
    assert not np.allclose(grads["W1"], plain_grads["W1"])  # the mask does reach the gradient


def test_derivation_shows_the_expectation_and_the_shared_mask() -> None:
    p = sp.Symbol("p", positive=True)
    outcomes, value = mask_expectation(p)
    assert value == 1 and outcomes.has(p)
    text = show_text(derive_spec(EXAMPLE))
    assert "mask_h1: dropout mask of h1 (drop p = 0.2)" in text
    assert "= 1, so E[h1d] = h1" in text
    assert "g_h1 = g_h1d*mask_h1" in text
    module = (ROOT / "generated" / "digits_dropout.py").read_text(encoding="utf-8")
    assert 'mask_h1 = cache["mask_h1"]' in module  # backward reads the forward's mask
    plain = (ROOT / "generated" / "digits_mlp.py").read_text(encoding="utf-8")
    assert "DROPOUT" not in plain and "train=True" not in plain


@pytest.mark.parametrize("drop", ["1.0", "-0.1", "1.5"])
def test_drop_must_be_a_probability_below_one(tmp_path, drop) -> None:
    with pytest.raises(SpecError, match=r"drop must be a probability in \[0, 1\)"):
        _module(tmp_path, "bad", f'h1d = "dropout(h1, drop={drop})"')


def test_check_and_train_with_dropout(tmp_path, capsys) -> None:
    assert main(["check", str(EXAMPLE), "--no-symbolic"]) == 0
    spec = tmp_path / "blobs_drop.toml"
    spec.write_text(
        SPEC.replace("NAME", "blobs_drop").replace("HIDDEN", 'h1d = "dropout(h1, drop=0.1)"'),
        encoding="utf-8",
    )
    data = ROOT / "derive" / "data" / "blobs.csv"
    argv = ["train", str(spec), "--data", str(data), "--epochs", "4", "--lr", "0.05"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "validation accuracy" in out
