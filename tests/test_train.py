"""Training loop, update rules and the shipped blobs dataset."""

from __future__ import annotations

import math
import re
from pathlib import Path

import fake_modules as fm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import derive
from derive.train.data import BLOBS_CENTERS, blobs_csv_text, load_blobs, make_blobs, one_hot
from derive.train.loop import train
from derive.train.optim import Optimizer

HIDDEN = {"n_hidden": 8}


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Shipped features and one-hot targets."""
    X, labels = load_blobs()
    return X, one_hot(labels, 3)


# ---------------------------------------------------------------------------------------------
# dataset


def test_make_blobs_is_deterministic() -> None:
    X1, l1 = make_blobs()
    X2, l2 = make_blobs()
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(l1, l2)
    assert not np.array_equal(make_blobs(seed=1)[0], X1)
    assert X1.shape == (300, 4) and X1.dtype == np.float64
    assert np.bincount(l1).tolist() == [100, 100, 100]


def test_shipped_csv_matches_make_blobs() -> None:
    X, labels = load_blobs()
    X_ref, labels_ref = make_blobs(300, 0)
    assert X.dtype == np.float64 and np.issubdtype(labels.dtype, np.integer)
    np.testing.assert_array_equal(labels, labels_ref)
    assert np.max(np.abs(X - X_ref)) <= 0.5e-4 + 1e-12
    path = Path(derive.__file__).parent / "data" / "blobs.csv"
    assert path.read_text(encoding="utf-8") == blobs_csv_text(300, 0)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "x1,x2,x3,x4,label"


def test_blobs_overlap_a_little() -> None:
    X, labels = load_blobs()
    nearest = np.argmin(((X[:, None, :] - BLOBS_CENTERS[None]) ** 2).sum(axis=-1), axis=1)
    assert 0.88 <= np.mean(nearest == labels) <= 0.98


@given(st.lists(st.integers(0, 4), min_size=1, max_size=20))
def test_one_hot_round_trips(labels: list[int]) -> None:
    T = one_hot(np.array(labels), 5)
    assert T.shape == (len(labels), 5) and T.dtype == np.float64
    np.testing.assert_array_equal(T.sum(axis=1), 1.0)
    np.testing.assert_array_equal(T.argmax(axis=1), labels)


def test_one_hot_rejects_bad_labels() -> None:
    with pytest.raises(ValueError):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        one_hot(np.array([0.0, 1.0]), 2)


# ---------------------------------------------------------------------------------------------
# update rules


def test_sgd_step() -> None:
    opt = Optimizer.make("sgd", epsilon=0.1)
    out = opt.step({"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, 1.0])})
    np.testing.assert_allclose(out["w"], [0.95, -2.1])


def test_momentum_steps() -> None:
    opt = Optimizer.make("momentum", epsilon=0.1, alpha=0.9)
    g = {"w": np.array([1.0])}
    one = opt.step({"w": np.array([0.0])}, g)  # v = -0.1
    two = opt.step(one, g)  # v = 0.9 * -0.1 - 0.1 = -0.19
    np.testing.assert_allclose(one["w"], [-0.1])
    np.testing.assert_allclose(two["w"], [-0.29])


def test_adam_steps_with_bias_correction() -> None:
    opt = Optimizer.make("adam", epsilon=0.01)
    g1, g2 = np.array([3.0, -1e-3]), np.array([1.0, 2e-3])
    one = opt.step({"w": np.zeros(2)}, {"w": g1})
    np.testing.assert_allclose(one["w"], -0.01 * g1 / (np.abs(g1) + 1e-8))
    two = opt.step(one, {"w": g2})
    s_hat = (0.9 * 0.1 * g1 + 0.1 * g2) / (1 - 0.9**2)
    r_hat = (0.999 * 0.001 * g1**2 + 0.001 * g2**2) / (1 - 0.999**2)
    np.testing.assert_allclose(two["w"], one["w"] - 0.01 * s_hat / (np.sqrt(r_hat) + 1e-8))


def test_unknown_optimizer() -> None:
    with pytest.raises(ValueError, match="adam"):
        Optimizer.make("lbfgs", epsilon=0.1)


@settings(max_examples=25, deadline=None)
@given(
    theta=st.floats(-10, 10), g=st.floats(-10, 10), lr=st.floats(1e-4, 1.0), steps=st.integers(1, 5)
)
def test_sgd_and_momentum_agree_when_alpha_is_zero(
    theta: float, g: float, lr: float, steps: int
) -> None:
    sgd, mom = Optimizer.make("sgd", epsilon=lr), Optimizer.make("momentum", epsilon=lr, alpha=0.0)
    a = b = {"w": np.array([theta])}
    for _ in range(steps):
        a, b = sgd.step(a, {"w": np.array([g])}), mom.step(b, {"w": np.array([g])})
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a["w"], theta - steps * lr * g, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# training


def test_training_softmax_net_on_blobs(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, T = blobs
    lines: list[str] = []
    result = train(fm.SoftmaxMLP(), X, T, epochs=6, dims=HIDDEN, log=lines.append)
    assert len(result.losses) == 6 == len(lines)
    assert result.losses[-1] < result.losses[0] < math.log(3) + 0.5
    assert result.losses[-1] < 0.5
    assert result.final_accuracy > 0.8
    assert result.params["W1"].shape == (4, 8) and result.params["W2"].shape == (8, 3)
    pattern = r"epoch +(\d+)  loss (\d+\.\d{4})  acc (\d\.\d{3})"
    match = re.fullmatch(pattern, lines[2])
    assert match and match.group(1) == "3"
    assert float(match.group(2)) == pytest.approx(result.losses[2], abs=1e-4)
    assert lines[2].startswith("epoch  3  loss ")


@pytest.mark.parametrize(("optimizer", "lr"), [("momentum", 0.1), ("adam", 0.02)])
def test_other_optimizers_train(
    blobs: tuple[np.ndarray, np.ndarray], optimizer: str, lr: float
) -> None:
    X, T = blobs
    result = train(
        fm.SoftmaxMLP(), X, T, epochs=5, lr=lr, optimizer=optimizer, dims=HIDDEN, log=None
    )
    assert result.losses[-1] < 0.7 * result.losses[0]
    assert result.final_accuracy > 0.8


def test_training_is_seeded(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    X, T = blobs
    start = fm.SoftmaxMLP().init_params(seed=5, dims={"n_in": 4, "n_hidden": 8, "n_out": 3})
    runs = [
        train(fm.SoftmaxMLP(), X, T, epochs=2, params=start, seed=s, log=None).losses
        for s in (0, 0, 1)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]  # same start, different minibatch order


def test_training_reports_unknown_sizes_and_probabilities(
    blobs: tuple[np.ndarray, np.ndarray],
) -> None:
    X, T = blobs
    with pytest.raises(ValueError, match="n_hidden"):
        train(fm.SoftmaxMLP(), X, T, epochs=1, log=None)
    with pytest.raises(KeyError, match="probs"):
        train(fm.SoftmaxMLP(), X, T, epochs=1, dims=HIDDEN, prob_name="probs", log=None)


def test_training_with_other_input_names() -> None:
    class Renamed(fm.SoftmaxMLP):
        INPUTS = {"u": (("n_in",), "real"), "target": (("n_out",), "one_hot")}  # noqa: RUF012

        def forward(self, params, batch):
            return super().forward(params, {"x": batch["u"], "t": batch["target"]})

        def backward(self, params, batch, cache, g_loss=None):
            renamed = {"x": batch["u"], "t": batch["target"]}
            return super().backward(params, renamed, cache, g_loss)

    X, labels = make_blobs(60, seed=3)
    result = train(
        Renamed(),
        X,
        one_hot(labels, 3),
        epochs=2,
        input_names=("u", "target"),
        dims=HIDDEN,
        log=None,
    )
    assert len(result.losses) == 2 and result.params["W1"].shape == (4, 8)
