"""Batch norm's running statistics: batch statistics in training, running ones in eval."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from derive.emit.numpy_module import render
from derive.pipeline import derive_spec
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
BN = ROOT / "generated" / "mlp_batchnorm.py"


def _data(rng: np.random.Generator, n: int = 6) -> dict[str, np.ndarray]:
    return {"x": rng.normal(2.0, 3.0, (n, 4)), "t": np.eye(3)[rng.integers(0, 3, n)]}


@pytest.fixture(scope="module")
def bn():
    return load_module(BN)


def test_eval_uses_running_statistics(bn) -> None:
    rng = np.random.default_rng(1)
    params = bn.init_params(seed=2)
    params["gamma"] = rng.normal(1.0, 0.5, 5)
    params["beta"] = rng.normal(0.0, 0.5, 5)
    batch = _data(rng)
    state = {"z1.mean": rng.normal(0.0, 1.0, 5), "z1.var": rng.uniform(0.5, 4.0, 5)}
    kept = {k: v.copy() for k, v in state.items()}
    _loss, cache = bn.forward(params, batch, train=False, state=state)
    z = batch["x"] @ params["W1"].T
    want = params["gamma"] * (z - state["z1.mean"]) / np.sqrt(state["z1.var"] + bn.eps)
    want = want + params["beta"]
    np.testing.assert_allclose(cache["y1"], want, rtol=1e-12, atol=1e-12)
    for k in state:  # evaluation leaves the running statistics alone
        np.testing.assert_array_equal(state[k], kept[k])
    # one example at a time gives the same rows: no batch statistics in evaluation
    _loss, one = bn.forward(params, {k: v[2:3] for k, v in batch.items()}, False, state)
    np.testing.assert_allclose(one["y1"][0], want[2], rtol=1e-12)
    with pytest.raises(ValueError, match="running statistics"):
        bn.forward(params, batch, train=False)


def test_running_statistics_after_training_steps(bn) -> None:
    rng = np.random.default_rng(3)
    params = bn.init_params(seed=4)
    state = bn.init_state()
    np.testing.assert_array_equal(state["z1.mean"], np.zeros(5))
    np.testing.assert_array_equal(state["z1.var"], np.ones(5))
    mean, var, momentum = np.zeros(5), np.ones(5), 0.3
    for size in (6, 4, 9):
        batch = _data(rng, size)
        bn.forward(params, batch, train=True, state=state, momentum=momentum)
        z = batch["x"] @ params["W1"].T
        mu = z.sum(axis=0) / size
        unbiased = ((z - mu) ** 2).sum(axis=0) / (size - 1)
        mean = (1 - momentum) * mean + momentum * mu
        var = (1 - momentum) * var + momentum * unbiased
    np.testing.assert_allclose(state["z1.mean"], mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state["z1.var"], var, rtol=1e-12)


def test_train_mode_is_unchanged_by_state(bn) -> None:
    rng = np.random.default_rng(5)
    params, batch = bn.init_params(seed=6), _data(rng)
    loss, cache = bn.forward(params, batch)
    loss_s, cache_s = bn.forward(params, batch, train=True, state=bn.init_state())
    assert loss == loss_s
    for k in cache:
        np.testing.assert_array_equal(cache[k], cache_s[k])
    z = batch["x"] @ params["W1"].T
    xhat = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + bn.eps)  # biased batch variance
    np.testing.assert_allclose(cache["xhat"], xhat, rtol=1e-10)
    _, grads = bn.loss_and_grad(params, batch)
    _, grads_s = bn.loss_and_grad(params, batch, True, bn.init_state())
    for k in grads:
        np.testing.assert_array_equal(grads[k], grads_s[k])


def test_modules_without_batchnorm_have_no_state() -> None:
    for path in ("digits_dropout.py", "digits_mlp.py"):
        mod = load_module(ROOT / "generated" / path)
        assert "state" not in inspect.signature(mod.forward).parameters
        assert not hasattr(mod, "init_state")


SPEC = """
name = "two_bn"
[dims]
d = 4
m = 5
k = 3
[inputs]
x = { shape = ["d"] }
t = { shape = ["k"], kind = "one_hot" }
[params]
W1 = { shape = ["m", "d"] }
g1 = { shape = ["m"] }
b1 = { shape = ["m"] }
W2 = { shape = ["k", "m"] }
g2 = { shape = ["k"] }
b2 = { shape = ["k"] }
[forward]
h1 = "dropout(relu(batchnorm(W1 @ x, g1, b1)), drop=0.3)"
f = "batchnorm(W2 @ h1, g2, b2, eps=1e-3)"
L = "softmax_cross_entropy(f, t)"
[loss]
output = "L"
reduction = "mean"
"""


def test_nested_batchnorms_with_dropout(tmp_path: Path) -> None:
    spec = tmp_path / "two_bn.toml"
    spec.write_text(SPEC)
    out = tmp_path / "two_bn.py"
    out.write_text(render(derive_spec(spec)))
    mod = load_module(out)
    rng = np.random.default_rng(7)
    params, batch = mod.init_params(seed=8), _data(rng)
    state = mod.init_state()
    assert sorted(state) == ["z_f.mean", "z_f.var", "z_h1.mean", "z_h1.var"]
    mod.forward(params, batch, train=True, seed=1, state=state, momentum=1.0)
    z = batch["x"] @ params["W1"].T
    np.testing.assert_allclose(state["z_h1.mean"], z.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(state["z_h1.var"], z.var(axis=0, ddof=1), rtol=1e-12)
    _loss, cache = mod.forward(params, batch, train=False, state=state)
    y = params["g1"] * (z - state["z_h1.mean"]) / np.sqrt(state["z_h1.var"] + 1e-5) + params["b1"]
    h1 = np.maximum(y, 0)  # evaluation: dropout is the identity
    zf = h1 @ params["W2"].T
    f = params["g2"] * (zf - state["z_f.mean"]) / np.sqrt(state["z_f.var"] + 1e-3) + params["b2"]
    np.testing.assert_allclose(cache["f"], f, rtol=1e-10)


def test_training_keeps_running_statistics_and_evaluates_with_them(tmp_path: Path, capsys) -> None:
    """`derive train` moves the running statistics every step, reports validation figures
    computed with them (train=False), and saves them beside the weights."""
    import json

    from derive.cli import main
    from derive.train.datasets import load_data

    save = tmp_path / "w.npz"
    spec = ROOT / "examples" / "mlp_batchnorm.toml"  # d = 4, k = 3, like the blobs
    blobs = ROOT / "derive" / "data" / "blobs.csv"
    argv = ["train", str(spec), "--data", str(blobs), "--epochs", "3", "--seed", "1"]
    assert main([*argv, "--save", str(save), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    saved = dict(np.load(save))
    bn = load_module(BN)
    assert set(saved) == set(bn.PARAMS) | {"z1.mean", "z1.var"}
    assert np.abs(saved["z1.mean"]).max() > 1e-3  # moved from its start at 0
    assert not np.allclose(saved["z1.var"], 1.0)
    state = {k: saved[k] for k in ("z1.mean", "z1.var")}
    _, val = load_data(str(blobs), bn, "spec").split(0.2, seed=1)
    batch = {"x": val.X, "t": val.T}
    _loss, cache = bn.forward(saved, batch, train=False, state=state)
    assert float(np.mean(cache["L"])) == pytest.approx(result["val_loss"])
    _loss, batch_stats = bn.forward(saved, batch)  # what evaluating in training mode gives
    assert float(np.mean(batch_stats["L"])) != pytest.approx(result["val_loss"])


def test_a_batch_of_one_leaves_the_running_variance(bn) -> None:
    rng = np.random.default_rng(5)
    params = bn.init_params(seed=6)
    state = bn.init_state()
    with np.errstate(all="raise"):
        bn.forward(params, _data(rng, 1), state=state)
    np.testing.assert_array_equal(state["z1.var"], 1.0)  # no variance in one example
    assert np.abs(state["z1.mean"]).max() > 0  # the mean still moves
    bn.forward(params, _data(rng, 3), state=state)
    assert np.all(np.isfinite(state["z1.var"])) and not np.allclose(state["z1.var"], 1.0)
