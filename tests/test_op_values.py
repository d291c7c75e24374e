"""Every op's forward value against plain NumPy written here, independently of derive.

Finite differences and the SymPy cross-check only confirm that the backward pass agrees with
a forward pass built from the same definition; a wrong definition passes both. These tests
compare the emitted forward pass with textbook formulas, and test every documented default
(relu's and leaky_relu's f'(0), leaky_relu's slope, batchnorm's eps, the loss reductions and
``init_params``) by itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp
from spec_modules import module

from derive.ops.functions import ELEMENTWISE, H, Z, output_form, written_out
from derive.ops.table import BUILTIN_OPS

RNG = np.random.default_rng(20261201)
M = 3  # examples per batch
D = 4
REAL = np.array([[-2.5, -0.5, 0.0, 0.7], [3.1, -1e-3, 1.5, -4.0], [0.25, 2.0, -1.25, 9.0]])
POSITIVE = np.array([[0.1, 0.5, 2.0, 7.0], [1e-3, 1.0, 3.5, 0.25], [4.0, 0.9, 1.1, 12.0]])
UNIT = np.array([[0.1, 0.5, 0.9, 0.3], [1e-3, 0.999, 0.6, 0.25], [0.4, 0.7, 0.05, 0.8]])
WEIGHTS = RNG.uniform(0.5, 1.5, (M, D)) * RNG.choice([-1.0, 1.0], (M, D))
ONE_HOT = np.eye(D)[[2, 0, 3]]
BINARY = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
PROBS = RNG.dirichlet(np.ones(D), M)
W2 = RNG.standard_normal((D, D))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(f):
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(f):
    shifted = f - f.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def batchnorm(z, gamma, beta, eps):
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)  # the biased (population) variance of the batch
    return gamma * (z - mu) / np.sqrt(var + eps) + beta


@dataclass(frozen=True)
class Case:
    """A spec's forward section, its inputs, and the per-example loss computed by NumPy."""

    forward: str
    x: np.ndarray
    t: np.ndarray
    expected: Callable[[np.ndarray, np.ndarray], np.ndarray]
    params: str = 'w = { shape = ["d"] }'
    values: tuple[tuple[str, np.ndarray], ...] = ()
    extra: str = ""
    inputs: tuple[tuple[str, np.ndarray], ...] = ()


def elementwise(op: str, x: np.ndarray, ref: Callable) -> Case:
    """L = sum(t * op(x + w)) with w = 0 and random signed weights t."""
    return Case(
        f'y = "{op}(x + w)"\nL = "sum(t * y)"', x, WEIGHTS, lambda x, t: (t * ref(x)).sum(-1)
    )


MASK = np.array([[0.0, 4 / 3, 4 / 3, 0.0], [4 / 3, 4 / 3, 4 / 3, 0.0], [0.0, 0.0, 4 / 3, 4 / 3]])
GAMMA = np.array([1.5, -0.5, 2.0, 0.75])
BETA = np.array([0.1, -0.2, 0.3, 0.0])
BN_PARAMS = 'w = { shape = ["d"] }\ngamma = { shape = ["d"] }\nbeta = { shape = ["d"] }'

CASES: dict[str, Case] = {
    "exp": elementwise("exp", REAL, np.exp),
    "log": elementwise("log", POSITIVE, np.log),
    "sqrt": elementwise("sqrt", POSITIVE, np.sqrt),
    "abs": elementwise("abs", REAL, np.abs),
    "sigmoid": elementwise("sigmoid", REAL, sigmoid),
    "tanh": elementwise("tanh", REAL, np.tanh),
    "relu": elementwise("relu", REAL, lambda z: np.maximum(z, 0.0)),
    "leaky_relu": elementwise("leaky_relu", REAL, lambda z: np.where(z > 0, z, 0.01 * z)),
    "softplus": elementwise("softplus", REAL, lambda z: np.log1p(np.exp(z))),
    "gelu": elementwise(
        "gelu", REAL, lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
    ),
    "sum": Case('L = "sum((x + w) * t)"', REAL, WEIGHTS, lambda x, t: (x * t).sum(-1)),
    "mean": Case('L = "mean((x + w) * t)"', REAL, WEIGHTS, lambda x, t: (x * t).sum(-1) / D),
    "softmax": Case(
        'p = "softmax(x + w)"\nL = "sum(t * p)"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * softmax(x)).sum(-1),
    ),
    "log_softmax": Case(
        'q = "log_softmax(x + w)"\nL = "sum(t * q)"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * log_softmax(x)).sum(-1),
    ),
    "squared_error": Case(
        'L = "squared_error(x + w, t)"', REAL, WEIGHTS, lambda x, t: ((x - t) ** 2).sum(-1)
    ),
    "cross_entropy": Case(
        'L = "cross_entropy(x + w, t)"', POSITIVE, PROBS, lambda x, t: -(t * np.log(x)).sum(-1)
    ),
    "softmax_cross_entropy": Case(
        'L = "softmax_cross_entropy(x + w, t)"',
        REAL,
        ONE_HOT,
        lambda x, t: -(t * log_softmax(x)).sum(-1),
    ),
    "binary_cross_entropy": Case(
        'L = "sum(binary_cross_entropy(x + w, t))"',
        UNIT,
        BINARY,
        lambda x, t: -(t * np.log(x) + (1 - t) * np.log(1 - x)).sum(-1),
    ),
    "bce_with_logits": Case(
        'L = "sum(bce_with_logits(x + w, t))"',
        REAL,
        BINARY,
        lambda x, t: (np.logaddexp(0.0, x) - t * x).sum(-1),
    ),
    "l1": Case(
        'L = "sum(t * (x + w)) + l1(W)"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * x).sum(-1) + np.abs(W2).sum(),
        params='w = { shape = ["d"] }\nW = { shape = ["d", "d"] }',
        values=(("W", W2),),
    ),
    "l2": Case(
        'L = "sum(t * (x + w)) + l2(W)"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * x).sum(-1) + (W2**2).sum(),
        params='w = { shape = ["d"] }\nW = { shape = ["d", "d"] }',
        values=(("W", W2),),
    ),
    "batch_mean": Case(
        'L = "sum(t * batch_mean(x + w))"', REAL, WEIGHTS, lambda x, t: (t * x.mean(0)).sum(-1)
    ),
    "batchnorm": Case(
        'y = "batchnorm(x + w, gamma, beta, eps=0.5)"\nL = "sum(t * y)"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * batchnorm(x, GAMMA, BETA, 0.5)).sum(-1),
        params=BN_PARAMS,
        values=(("gamma", GAMMA), ("beta", BETA)),
    ),
    "dropout": Case(
        'y = "dropout(x + w, drop=0.25)"\nL = "sum(t * y)"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * x * MASK).sum(-1),
        inputs=(("mask", MASK),),
    ),
    # operators and a user-defined op
    "matmul": Case(
        'L = "t @ (W @ (x + w)) + sum(t * ((x + w) @ W)) + sum(W.T @ t)"',
        REAL,
        WEIGHTS,
        lambda x, t: (
            np.einsum("bi,ij,bj->b", t, W2, x)
            + np.einsum("bj,ji,bi->b", x, W2, t)
            + (t @ W2).sum(-1)
        ),
        params='w = { shape = ["d"] }\nW = { shape = ["d", "d"] }',
        values=(("W", W2),),
    ),
    "arithmetic": Case(
        'L = "sum(t * ((x + w) ** 3 - 2 / (x + w) + (x + w) / 4 - 1.5 ** (x + w)))"',
        POSITIVE,
        WEIGHTS,
        lambda x, t: (t * (x**3 - 2 / x + x / 4 - 1.5**x)).sum(-1),
    ),
    "custom_op": Case(
        'L = "sum(t * swish(x + w))"',
        REAL,
        WEIGHTS,
        lambda x, t: (t * x * sigmoid(x)).sum(-1),
        extra='[ops]\nswish = { args = ["z"], expr = "z * sigmoid(z)" }',
    ),
}


def inverted_mask(shape: tuple[int, ...], drop: float, seed: int) -> np.ndarray:
    """The training-mode mask forward draws by default: 1/(1 - drop) where u >= drop, else 0."""
    return (np.random.default_rng(seed).random(shape) >= drop) / (1 - drop)


NOT_VALUED = {
    "argmax": "not differentiable: never on the path to a loss",
    "max": "not differentiable: never on the path to a loss",
}


def per_example_loss(case: Case) -> np.ndarray:
    """The emitted forward pass's per-example loss on the case's data."""
    mod = module(case.forward, params=case.params, extra=case.extra)
    params = {"w": np.zeros(D), **dict(case.values)}
    _loss, cache = mod.forward(params, {"x": case.x, "t": case.t, **dict(case.inputs)})
    return cache[mod.LOSS]


def test_every_builtin_op_has_a_reference_value() -> None:
    """A new op without an independent value fails here."""
    missing = set(BUILTIN_OPS) - set(CASES) - set(NOT_VALUED)
    assert not missing, f"add a NumPy reference value for: {', '.join(sorted(missing))}"
    assert set(NOT_VALUED) <= set(BUILTIN_OPS)


@pytest.mark.parametrize("op", sorted(CASES))
def test_forward_value_matches_numpy(op: str) -> None:
    case = CASES[op]
    got = per_example_loss(case)
    np.testing.assert_allclose(got, case.expected(case.x, case.t), rtol=1e-12, atol=1e-12)


def test_argmax_value_off_the_loss_path() -> None:
    mod = module('i = "argmax(x + w)"\nL = "sum(t * (x + w))"')
    _loss, cache = mod.forward({"w": np.zeros(D)}, {"x": REAL, "t": WEIGHTS})
    np.testing.assert_array_equal(cache["i"], REAL.argmax(-1))


def test_max_value_off_the_loss_path() -> None:
    mod = module('top = "max(x + w)"\nL = "sum(t * (x + w))"')
    _loss, cache = mod.forward({"w": np.zeros(D)}, {"x": REAL, "t": WEIGHTS})
    np.testing.assert_array_equal(cache["top"], REAL.max(-1))


# ---------------------------------------------------------------------------------------------
# documented defaults, one by one


def loss_and_grad_w(forward: str, x: np.ndarray, **sections: str) -> tuple[np.ndarray, dict]:
    mod = module(forward, **sections)
    batch = {"x": x, "t": np.ones_like(x)}
    params = {"w": np.zeros(x.shape[-1])}
    _loss, cache = mod.forward(params, batch)
    return cache[mod.LOSS], mod.backward(params, batch, cache, np.ones(len(x)))


KINK = np.array([[0.0, 0.0, 0.0, 0.0]])


def test_relu_default_derivative_at_zero_is_zero() -> None:
    _, grads = loss_and_grad_w('L = "sum(t * relu(x + w))"', KINK)
    np.testing.assert_array_equal(grads["w"], np.zeros(D))
    _, stated = loss_and_grad_w('L = "sum(t * relu(x + w, at_zero=1))"', KINK)
    np.testing.assert_array_equal(stated["w"], np.ones(D))


def test_leaky_relu_default_slope_is_one_hundredth() -> None:
    x = np.array([[-2.0, -100.0, 3.0, -0.5]])
    loss, grads = loss_and_grad_w('L = "sum(t * leaky_relu(x + w))"', x)
    np.testing.assert_allclose(loss, [-0.02 - 1.0 + 3.0 - 0.005], rtol=1e-14)
    np.testing.assert_allclose(grads["w"], [0.01, 0.01, 1.0, 0.01], rtol=1e-14)


def test_leaky_relu_default_derivative_at_zero_is_one() -> None:
    _, grads = loss_and_grad_w('L = "sum(t * leaky_relu(x + w))"', KINK)
    np.testing.assert_array_equal(grads["w"], np.ones(D))
    _, stated = loss_and_grad_w('L = "sum(t * leaky_relu(x + w, slope=0.2, at_zero=0.2))"', KINK)
    np.testing.assert_allclose(stated["w"], np.full(D, 0.2), rtol=1e-15)


def test_batchnorm_default_eps_is_1e_5() -> None:
    """A batch whose variance is about eps: the value depends strongly on eps."""
    x = 1.0 + 4e-3 * np.array([[-1.0, 2.0, 0.5, 0.0], [1.0, -1.0, 0.0, 3.0], [0.0, 0.0, -1.0, 1.0]])
    mod = module('y = "batchnorm(x + w, gamma, beta)"\nL = "sum(t * y)"', params=BN_PARAMS)
    params = {"w": np.zeros(D), "gamma": GAMMA, "beta": BETA}
    _loss, cache = mod.forward(params, {"x": x, "t": WEIGHTS})
    expected = (WEIGHTS * batchnorm(x, GAMMA, BETA, 1e-5)).sum(-1)
    np.testing.assert_allclose(cache["L"], expected, rtol=1e-12)
    for other in (1e-4, 1e-6, 0.0):
        assert not np.allclose(cache["L"], (WEIGHTS * batchnorm(x, GAMMA, BETA, other)).sum(-1))


@pytest.mark.parametrize(
    ("forward", "drop"), [("dropout(x + w)", 0.5), ("dropout(x + w, 0.2)", 0.2)]
)
def test_dropout_masks_drawn_by_the_module(forward: str, drop: float) -> None:
    """Inverted dropout, 0.5 by default: entries 0 with probability drop, else 1 / (1 - drop)
    (the zero fraction within 5 standard errors of drop); ones in evaluation."""
    mod = module(f'y = "{forward}"\nL = "sum(t * y)"')
    n = 2000
    x, t = RNG.standard_normal((n, D)), np.ones((n, D))
    _loss, cache = mod.forward({"w": np.zeros(D)}, {"x": x, "t": t}, train=True, seed=1)
    mask = cache["mask"]
    assert set(np.unique(mask)) == {0.0, 1 / (1 - drop)}
    np.testing.assert_array_equal(mask, inverted_mask(mask.shape, drop, seed=1))
    assert abs(np.mean(mask == 0) - drop) < 5 * math.sqrt(drop * (1 - drop) / mask.size)
    np.testing.assert_allclose(cache["y"], x * mask, rtol=1e-15)
    again = mod.forward({"w": np.zeros(D)}, {"x": x, "t": t}, train=True, seed=1)[1]["mask"]
    np.testing.assert_array_equal(again, mask)
    _loss, cache = mod.forward({"w": np.zeros(D)}, {"x": x, "t": t}, train=False)
    np.testing.assert_array_equal(cache["y"], x)


@pytest.mark.parametrize("reduction", ["mean", "sum", None])
def test_loss_reduction(reduction: str | None) -> None:
    """L_b = sum_i t_bi w_i x_bi: the batch loss and dL/dw = sum_b c_b t_b * x_b by hand."""
    loss = 'output = "L"' + (f'\nreduction = "{reduction}"' if reduction else "")
    mod = module('L = "sum(t * w * x)"', loss=loss)
    w = np.array([0.5, -1.0, 2.0, 0.25])
    batch = {"x": REAL, "t": WEIGHTS}
    per_example = (WEIGHTS * w * REAL).sum(-1)
    c = 1.0 if reduction == "sum" else 1.0 / M  # "mean" is the default
    total, grads = mod.loss_and_grad({"w": w}, batch)
    assert (reduction or "mean") == mod.REDUCTION
    np.testing.assert_allclose(total, c * per_example.sum(), rtol=1e-14)
    np.testing.assert_allclose(grads["w"], c * (WEIGHTS * REAL).sum(0), rtol=1e-14)
    g = np.array([0.5, 2.0, -1.0])
    _loss, cache = mod.forward({"w": w}, batch)
    weighted = mod.backward({"w": w}, batch, cache, g_loss=g)
    np.testing.assert_allclose(weighted["w"], (g[:, None] * WEIGHTS * REAL).sum(0), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# init_params statistics

INIT_DIMS = "a = 120\nb = 300"
INIT_PARAMS = (
    'G = { shape = ["a", "b"] }\n'
    'N = { shape = ["a", "b"], init = "normal" }\n'
    'Z = { shape = ["a", "b"], init = "zeros" }\n'
    'O = { shape = ["b"], init = "ones" }\n'
    'C = { shape = ["a"], init = -0.375 }\n'
    'v = { shape = ["b"] }\n'
    'H = { shape = ["b", "a"], init = "glorot" }'
)


@pytest.fixture(scope="module")
def init_module():
    return module(
        'L = "sum(G @ x) + sum(N @ x) + sum(Z @ x) + O @ x + sum(C) + v @ x + sum(H @ y)"',
        dims=INIT_DIMS,
        inputs='x = { shape = ["b"] }\ny = { shape = ["a"] }',
        params=INIT_PARAMS,
    )


def assert_mean_and_variance(sample: np.ndarray, variance: float) -> None:
    """Sample mean and variance of n i.i.d. N(0, variance) draws, within 5 standard errors.

    The mean has standard error sqrt(variance / n); the sample variance sqrt(2 / n) * variance.
    """
    n = sample.size
    assert abs(sample.mean()) < 5 * math.sqrt(variance / n)
    assert abs(sample.var() - variance) < 5 * math.sqrt(2 / n) * variance


def test_init_glorot_variance_is_two_over_fan_in_plus_fan_out(init_module) -> None:
    params = init_module.init_params(seed=3)
    assert params["G"].shape == (120, 300) and params["H"].shape == (300, 120)
    assert_mean_and_variance(params["G"], 2 / (120 + 300))
    assert_mean_and_variance(params["H"], 2 / (120 + 300))
    # the standard errors above are 2.4% of the variance: 1/fan_in and 2/fan_out are far off
    assert abs(params["G"].var() - 1 / 300) > 0.2 * (2 / 420)


def test_init_normal_zeros_ones_and_numbers(init_module) -> None:
    params = init_module.init_params(seed=4)
    assert_mean_and_variance(params["N"], 1.0)
    np.testing.assert_array_equal(params["Z"], np.zeros((120, 300)))
    np.testing.assert_array_equal(params["O"], np.ones(300))
    np.testing.assert_array_equal(params["C"], np.full(120, -0.375))
    np.testing.assert_array_equal(params["v"], np.zeros(300))  # a vector's default is zeros


def test_init_is_seeded_and_keeps_the_dtype(init_module) -> None:
    a, b = init_module.init_params(seed=5), init_module.init_params(seed=5)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(init_module.init_params(seed=6)["G"], a["G"])
    small = init_module.init_params(seed=5, dtype=np.float32, dims={"a": 7})
    assert all(p.dtype == np.float32 for p in small.values())
    assert small["G"].shape == (7, 300) and small["C"].shape == (7,)
    assert set(a) == {"G", "N", "Z", "O", "C", "v", "H"}


# ---------------------------------------------------------------------------------------------
# the SymPy definitions themselves (what the cross-check and the displayed steps use)

DEFINITIONS = {
    "exp": ((), np.exp, np.exp),
    "log": ((), np.log, lambda z: 1 / z),
    "sqrt": ((), np.sqrt, lambda z: 0.5 / np.sqrt(z)),
    "abs": ((), np.abs, np.sign),
    "tanh": ((), np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sigmoid": ((), sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    "softplus": ((), lambda z: np.log1p(np.exp(z)), sigmoid),
    "gelu": (
        (),
        lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))),
        lambda z: (
            0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))
            + 0.5
            * z
            * (1 - np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)) ** 2)
            * np.sqrt(2 / np.pi)
            * (1 + 3 * 0.044715 * z**2)
        ),
    ),
    "relu": ((0,), lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
    "relu at_zero=1": ((1,), lambda z: np.maximum(z, 0), lambda z: (z >= 0) * 1.0),
    "leaky_relu": (
        (0.01, 1),
        lambda z: np.where(z > 0, z, 0.01 * z),
        lambda z: np.where(z >= 0, 1.0, 0.01),
    ),
    "leaky_relu at_zero=slope": (
        (0.2, 0.2),
        lambda z: np.where(z > 0, z, 0.2 * z),
        lambda z: np.where(z > 0, 1.0, 0.2),
    ),
}
POINTS = np.array([-2.5, -1.0, -0.5, 0.0, 1e-3, 0.5, 0.7, 1.0, 1.5, 3.1])


def test_every_elementwise_op_has_a_definition_check() -> None:
    assert set(ELEMENTWISE) == {name.split()[0] for name in DEFINITIONS}


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_sympy_definition_and_derivative_match_numpy(name: str) -> None:
    """The op's SymPy definition and ``sympy.diff`` of it, evaluated at points including the
    kink, against NumPy: the printed code is not the only place an op's value lives."""
    params, value, slope = DEFINITIONS[name]
    call = ELEMENTWISE[name.split()[0]](Z, *[sp.sympify(p) for p in params])
    body = written_out(call)
    points = POINTS[POINTS > 0] if name in ("log", "sqrt") else POINTS
    for z in points:
        got = float(body.subs(Z, sp.Float(z)))
        np.testing.assert_allclose(got, value(z), rtol=1e-12, atol=1e-300, err_msg=str(z))
        d = float(sp.diff(call, Z).subs(Z, sp.Float(z)).doit())
        np.testing.assert_allclose(d, slope(z), rtol=1e-12, atol=1e-300, err_msg=str(z))


def test_output_form_proof_rewrites_hyperbolic_functions_in_exp() -> None:
    """exp(z) / cosh(z) = 2 sigmoid(2z) has derivative 2h - h^2; proving it needs
    cosh z + sinh z = e^z, which only holds after rewriting in exp."""
    assert sp.expand(output_form(sp.exp(Z) / sp.cosh(Z)) - (2 * H - H**2)) == 0
