"""Deterministic special points (zeros, kinks, saturation, log near 0, zero weights) and the
property that the backward pass is finite wherever the forward pass is.

A rewrite that divides by a value that can be zero passes at every random normal point, yet
gives NaN at z = 0, at zero weights or at saturated inputs; random points never find it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_modules import module, module_of
from test_op_values import BINARY, CASES, ONE_HOT, POSITIVE, PROBS, REAL, UNIT, D

from derive.verify.module import concrete_shape, random_input

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
SATURATED = np.array([[-1000.0, -30.0, 30.0, 1000.0], [-40.0, 0.0, 36.9, 745.0]])
STRICT = {"over": "raise", "divide": "raise", "invalid": "raise"}  # underflow to 0 is fine


def run(mod, x: np.ndarray, t: np.ndarray, **params: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per-example loss and gradients (unit weights) with overflow, 0/0 and x/0 as errors."""
    params = {"w": np.zeros(x.shape[-1]), **params}
    batch = {"x": x, "t": t}
    with np.errstate(**STRICT):
        _loss, cache = mod.forward(params, batch)
        grads = mod.backward(params, batch, cache, g_loss=np.ones(len(x)))
    return cache[mod.LOSS], grads


def stable_sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


#: op -> (value f(z), derivative f'(z)), both stable at |z| = 1000
SMOOTH = {
    "sigmoid": (stable_sigmoid, lambda z: stable_sigmoid(z) * stable_sigmoid(-z)),
    "tanh": (np.tanh, lambda z: 4 * np.exp(-2 * np.abs(z)) / (1 + np.exp(-2 * np.abs(z))) ** 2),
    "softplus": (lambda z: np.logaddexp(0, z), stable_sigmoid),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z >= 0, 1, 0.01)),
    "abs": (np.abs, np.sign),
}


@pytest.mark.parametrize("op", sorted(SMOOTH))
def test_elementwise_op_at_saturation(op: str) -> None:
    """Values and derivatives at |z| = 30 ... 1000: finite, no warning, right to rounding."""
    value, slope = SMOOTH[op]
    t = np.array([[1.0, -0.5, 2.0, 1.5], [0.5, 1.0, -1.0, 0.25]])
    loss, grads = run(module(f'y = "{op}(x + w)"\nL = "sum(t * y)"'), SATURATED, t)
    np.testing.assert_allclose(loss, (t * value(SATURATED)).sum(-1), rtol=1e-13)
    # h(1 - h) at h = 1 - 9e-14 carries the rounding error of h: absolute, 1e-16
    expected = (t * slope(SATURATED)).sum(0)
    np.testing.assert_allclose(grads["w"], expected, rtol=1e-9, atol=1e-15)


BCE_LOGITS = np.array([[-1000.0, -40.0, 40.0, 1000.0], [-1000.0, -40.0, 40.0, 1000.0]])
BCE_TARGETS = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
# -log(1 - sigmoid(z)) = softplus(z), -log sigmoid(z) = softplus(-z): no cancellation at z = 40
BCE_LOSS = np.logaddexp(0, np.where(BCE_TARGETS == 1, -BCE_LOGITS, BCE_LOGITS)).sum(-1)
BCE_GRAD = (stable_sigmoid(BCE_LOGITS) - BCE_TARGETS).sum(0)


def test_bce_with_logits_of_a_named_value_at_saturation() -> None:
    loss, grads = run(
        module('z = "x + w"\nL = "sum(bce_with_logits(z, t))"'), BCE_LOGITS, BCE_TARGETS
    )
    np.testing.assert_allclose(loss, BCE_LOSS, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(grads["w"], BCE_GRAD, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "forward",
    ['L = "sum(bce_with_logits(x + w, t))"', 'L = "sum(binary_cross_entropy(sigmoid(x + w), t))"'],
    ids=["bce_with_logits", "bce_of_sigmoid"],
)
def test_bce_of_an_unnamed_argument_at_saturation(forward: str) -> None:
    loss, grads = run(module(forward), BCE_LOGITS, BCE_TARGETS)
    np.testing.assert_allclose(loss, BCE_LOSS, rtol=1e-13)
    np.testing.assert_allclose(grads["w"], BCE_GRAD, rtol=1e-12, atol=1e-15)


HUGE_LOGITS = np.array([[1000.0, 0.0, -1000.0, 500.0], [-800.0, -800.0, 0.0, 1e4]])


def test_softmax_cross_entropy_with_huge_logits() -> None:
    """log p = f - max f - log sum exp(f - max f); the gradient is p - t."""
    t = np.eye(D)[[2, 0]]
    loss, grads = run(module('L = "softmax_cross_entropy(x + w, t)"'), HUGE_LOGITS, t)
    shifted = HUGE_LOGITS - HUGE_LOGITS.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss, [2000.0, 10800.0], rtol=1e-15)
    np.testing.assert_allclose(loss, -(t * log_p).sum(-1), rtol=1e-15)
    np.testing.assert_allclose(grads["w"], (np.exp(log_p) - t).sum(0), atol=1e-15)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax_with_huge_logits(op: str) -> None:
    t = np.array([[1.0, -2.0, 0.5, 1.0], [0.25, 1.0, -1.0, 2.0]])
    loss, grads = run(module(f'y = "{op}(x + w)"\nL = "sum(t * y)"'), HUGE_LOGITS, t)
    shifted = HUGE_LOGITS - HUGE_LOGITS.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    p = np.exp(log_p)
    y = p if op == "softmax" else log_p
    np.testing.assert_allclose(loss, (t * y).sum(-1), rtol=1e-15)
    if op == "softmax":  # d/df sum_j t_j p_j = p * (t - sum_j t_j p_j)
        expected = p * (t - (t * p).sum(-1, keepdims=True))
    else:  # d/df sum_j t_j log p_j = t - p sum_j t_j
        expected = t - p * t.sum(-1, keepdims=True)
    np.testing.assert_allclose(grads["w"], expected.sum(0), atol=1e-15)


NEAR_ZERO = np.array([[1e-300, 1e-200, 1e-12, 1.0]])
ONE_ROW = np.ones((1, D))


def test_log_and_sqrt_near_zero() -> None:
    loss, grads = run(module('L = "sum(t * log(x + w)) + sum(sqrt(x + w))"'), NEAR_ZERO, ONE_ROW)
    np.testing.assert_allclose(loss, (np.log(NEAR_ZERO) + np.sqrt(NEAR_ZERO)).sum(-1), rtol=1e-15)
    expected = (1 / NEAR_ZERO + 0.5 / np.sqrt(NEAR_ZERO)).sum(0)
    np.testing.assert_allclose(grads["w"], expected, rtol=1e-14)


def test_cross_entropies_near_zero_and_one() -> None:
    t = np.array([[1.0, 0.0, 0.0, 0.0]])
    loss, grads = run(module('L = "cross_entropy(x + w, t)"'), NEAR_ZERO, t)
    np.testing.assert_allclose(loss, [-np.log(1e-300)], rtol=1e-15)
    np.testing.assert_allclose(grads["w"], [-1e300, 0, 0, 0], rtol=1e-15)
    yhat = np.array([[1e-300, 1 - 2**-52, 0.5, 1e-12]])
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    loss, grads = run(module('L = "sum(binary_cross_entropy(x + w, t))"'), yhat, y)
    expected = -(y * np.log(yhat) + (1 - y) * np.log1p(-yhat)).sum(-1)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    np.testing.assert_allclose(grads["w"], ((yhat - y) / (yhat * (1 - yhat)))[0], rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# kinks and zeros


@pytest.mark.parametrize(
    ("forward", "slope"),
    [
        ('L = "sum(t * relu(x + w))"', 0.0),
        ('L = "sum(t * relu(x + w, at_zero=1))"', 1.0),
        ('L = "sum(t * leaky_relu(x + w))"', 1.0),
        ('L = "sum(t * leaky_relu(x + w, slope=0.3, at_zero=0.3))"', 0.3),
        ('L = "sum(t * abs(x + w))"', 0.0),
    ],
)
def test_derivative_at_the_kink(forward: str, slope: float) -> None:
    loss, grads = run(module(forward), np.zeros((2, D)), np.ones((2, D)))
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    np.testing.assert_array_equal(grads["w"], np.full(D, 2 * slope))


def test_l1_and_l2_at_zero_weights() -> None:
    mod = module(
        'L = "sum(t * (x + w)) + l1(W) + l2(W)"',
        params='w = { shape = ["d"] }\nW = { shape = ["d", "d"] }',
    )
    loss, grads = run(mod, REAL, np.ones_like(REAL), W=np.zeros((D, D)))
    np.testing.assert_allclose(loss, REAL.sum(-1), rtol=1e-15)
    np.testing.assert_array_equal(grads["W"], np.zeros((D, D)))  # |w|'(0) = 0, (w^2)'(0) = 0


def example_module(path: Path):
    return module_of(path.read_text(encoding="utf-8"))


def example_data(mod, m: int, rng: np.random.Generator, scale: float) -> tuple[dict, dict]:
    """Parameters N(0, scale^2) and inputs by kind (real ones N(0, scale^2)), sizes 3 if open."""
    dims = {d: (3 if v is None else v) for d, v in mod.DIMS.items()}
    params = {
        n: scale * rng.standard_normal(concrete_shape(s, dims)) for n, s in mod.PARAMS.items()
    }
    batch = {}
    for name, (shape, kind) in mod.INPUTS.items():
        value = random_input(kind, (m, *concrete_shape(shape, dims)), rng)
        batch[name] = scale * value if kind == "real" else value
    return params, batch


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_at_zero_parameters_and_zero_inputs(path: Path) -> None:
    mod = example_module(path)
    params, batch = example_data(mod, 3, np.random.default_rng(0), 1.0)
    params = {n: np.zeros_like(v) for n, v in params.items()}
    batch = {n: np.zeros_like(v) if mod.INPUTS[n][1] == "real" else v for n, v in batch.items()}
    with np.errstate(**STRICT):
        loss, cache = mod.forward(params, batch)
        grads = mod.backward(params, batch, cache)
        zero = mod.backward(params, batch, cache, g_loss=np.zeros(3))
    assert np.isfinite(loss)
    for name in mod.PARAMS:
        assert np.all(np.isfinite(grads[name])), name
        np.testing.assert_array_equal(zero[name], 0.0)  # zero weights: zero gradient


def test_softmax_mlp_at_zero_weights_by_hand() -> None:
    """W = b = 0: h = 1/2, p = 1/k; g_b2 = mean(p - t), g_W2 = mean((p - t) h^T), g_W1 = 0."""
    mod = example_module(ROOT / "examples" / "mlp_softmax.toml")
    params, batch = example_data(mod, 4, np.random.default_rng(1), 1.0)
    params = {n: np.zeros_like(v) for n, v in params.items()}
    with np.errstate(**STRICT):
        loss, grads = mod.loss_and_grad(params, batch)
    k = params["b2"].size
    t = batch["t"]
    np.testing.assert_allclose(loss, np.log(k), rtol=1e-15)
    np.testing.assert_allclose(grads["b2"], (1 / k - t).mean(0), rtol=1e-14)
    np.testing.assert_allclose(grads["W2"], 0.5 * np.outer((1 / k - t).mean(0), np.ones(5)))
    np.testing.assert_array_equal(grads["W1"], 0.0)
    np.testing.assert_array_equal(grads["b1"], 0.0)


# ---------------------------------------------------------------------------------------------
# the property: backward finite wherever forward is

PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
SPECIAL = [0.0, -0.0, 1.0, -1.0, 30.0, -30.0, 40.0, -40.0, 1e3, -1e3]


def _domain(case_x: np.ndarray) -> st.SearchStrategy[float]:
    if case_x is POSITIVE:
        return st.floats(1e-6, 1e3) | st.sampled_from([1e-6, 1.0, 1e3])
    if case_x is UNIT:
        return st.floats(1e-9, 1 - 1e-9) | st.sampled_from([1e-9, 0.5, 1 - 1e-9])
    assert case_x is REAL
    return st.floats(-1e3, 1e3) | st.sampled_from(SPECIAL)


def _special_row(case_x: np.ndarray) -> list[float]:
    if case_x is POSITIVE:
        return [1e-6, 1e-3, 1.0, 1e3]
    if case_x is UNIT:
        return [1e-9, 0.5, 1 - 1e-9, 1e-3]
    return [-1e3, -40.0, 40.0, 1e3]


def _targets(case_t: np.ndarray, rows: int, data: st.DataObject) -> np.ndarray:
    if case_t is ONE_HOT:
        return np.eye(D)[data.draw(st.lists(st.integers(0, D - 1), min_size=rows, max_size=rows))]
    if case_t is BINARY:
        bits = st.lists(st.sampled_from([0.0, 1.0]), min_size=rows * D, max_size=rows * D)
        return np.array(data.draw(bits)).reshape(rows, D)
    if case_t is PROBS:
        raw = st.lists(st.floats(0.0, 1.0), min_size=D, max_size=D).filter(lambda v: sum(v) > 0)
        rows_ = [np.array(data.draw(raw)) for _ in range(rows)]
        return np.array([r / r.sum() for r in rows_])
    weights = st.floats(-1.5, 1.5) | st.sampled_from([0.0, 1.0, -1.0])
    return np.array(data.draw(st.lists(weights, min_size=rows * D, max_size=rows * D))).reshape(
        rows, D
    )


@pytest.mark.parametrize("op", sorted(CASES))
@PROPERTY
@given(data=st.data(), m=st.integers(1, 3))
def test_op_backward_is_finite_wherever_forward_is(op: str, data: st.DataObject, m: int) -> None:
    """Drawn rows (zeros, +-30, +-1000 and everything between) plus one row of special points."""
    case = CASES[op]
    mod = module(case.forward, params=case.params, extra=case.extra)
    rows = [data.draw(st.lists(_domain(case.x), min_size=D, max_size=D)) for _ in range(m)]
    x = np.array([*rows, _special_row(case.x)])
    t = _targets(case.t, m + 1, data)
    params = {"w": np.zeros(D), **dict(case.values)}
    with np.errstate(all="ignore"):
        _loss, cache = mod.forward(params, {"x": x, "t": t})
    if not all(np.all(np.isfinite(v)) for v in cache.values()):
        return
    with np.errstate(all="ignore"):
        grads = mod.backward(params, {"x": x, "t": t}, cache, g_loss=np.linspace(0.5, 1.5, m + 1))
    for name, g in grads.items():
        assert np.all(np.isfinite(g)), (name, x, t, g)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.0, 1e-3, 1.0, 30.0, 1e3]),
    zero_fraction=st.sampled_from([0.0, 0.5, 1.0]),
    m=st.integers(1, 4),
)
def test_example_backward_is_finite_wherever_forward_is(
    path: Path, seed: int, scale: float, zero_fraction: float, m: int
) -> None:
    mod = example_module(path)
    rng = np.random.default_rng(seed)
    params, batch = example_data(mod, m, rng, scale)
    params = {n: np.where(rng.random(v.shape) < zero_fraction, 0.0, v) for n, v in params.items()}
    with np.errstate(all="ignore"):
        _loss, cache = mod.forward(params, batch)
        if not all(np.all(np.isfinite(v)) for v in cache.values()):
            return
        grads = mod.backward(params, batch, cache, g_loss=rng.uniform(0.5, 1.5, m))
    for name in mod.PARAMS:
        assert np.all(np.isfinite(grads[name])), (name, scale, zero_fraction)
