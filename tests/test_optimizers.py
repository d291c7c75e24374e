"""Optimizers and schedules: the SymPy rules run against plain NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from derive.train.optim import Optimizer, rule_names
from derive.train.schedules import Schedule, schedule_names

STEPS = 6


def _reference(name: str, h: dict[str, float], theta: np.ndarray, grads: list[np.ndarray]):
    """The update rules written out by hand, as in the lecture notes; yields theta per step."""
    v = np.zeros_like(theta)
    r = np.zeros_like(theta)
    s = np.zeros_like(theta)
    eps = h["epsilon"]
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            theta = theta - eps * g
        elif name == "momentum":
            v = h["alpha"] * v - eps * g
            theta = theta + v
        elif name == "nesterov":
            v = h["alpha"] * v - eps * g
            theta = theta + h["alpha"] * v - eps * g
        elif name == "adagrad":
            r = r + g * g
            theta = theta - eps / (h["delta"] + np.sqrt(r)) * g
        elif name == "rmsprop":
            r = h["rho"] * r + (1 - h["rho"]) * g * g
            theta = theta - eps / (h["delta"] + np.sqrt(r)) * g
        elif name in ("adam", "adamw"):
            s = h["rho_1"] * s + (1 - h["rho_1"]) * g
            r = h["rho_2"] * r + (1 - h["rho_2"]) * g * g
            s_hat = s / (1 - h["rho_1"] ** t)
            r_hat = r / (1 - h["rho_2"] ** t)
            decay = h.get("lambda", 0.0) * theta if theta.ndim >= 2 else 0.0
            theta = theta - eps * (s_hat / (np.sqrt(r_hat) + h["delta"]) + decay)
        yield theta


def _problem(seed: int = 0) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    grads = [{k: rng.normal(size=v.shape) * 10.0 ** rng.integers(-3, 3) for k, v in params.items()}]
    grads += [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(STEPS - 1)]
    return params, grads


def _run(opt: Optimizer, params, grads):
    out = []
    for gr in grads:
        params = opt.step(params, gr)
        out.append(params)
    return out


@pytest.mark.parametrize("name", rule_names())
def test_rule_agrees_with_plain_reference(name: str) -> None:
    assert len(rule_names()) == 7
    params, grads = _problem()
    opt = Optimizer.make(name, epsilon=0.05)
    got = _run(opt, params, grads)
    for key in params:
        ref = list(_reference(name, opt.hyper, params[key], [gr[key] for gr in grads]))
        for step in range(STEPS):
            np.testing.assert_allclose(got[step][key], ref[step], rtol=1e-12, atol=1e-15)
    assert opt.t == STEPS


@pytest.mark.parametrize("name", ["momentum", "rmsprop", "adam", "adamw"])
def test_reference_comparison_notices_a_wrong_hyperparameter(name: str) -> None:
    """The check above can fail: the same rule with a different decay no longer agrees."""
    params, grads = _problem()
    opt = Optimizer.make(name, epsilon=0.05)
    got = _run(opt, params, grads)
    hyper = dict(opt.hyper)
    key = {"momentum": "alpha", "rmsprop": "rho", "adam": "rho_1", "adamw": "lambda"}[name]
    hyper[key] *= 0.5
    ref = list(_reference(name, hyper, params["W"], [gr["W"] for gr in grads]))
    assert not np.allclose(got[-1]["W"], ref[-1], rtol=1e-9)


@pytest.mark.parametrize("name", rule_names())
def test_zero_learning_rate_leaves_parameters_unchanged(name: str) -> None:
    params, grads = _problem(1)
    opt = Optimizer.make(name, epsilon=0.0)
    for gr in grads:
        out = opt.step(params, gr)
        for key in params:
            np.testing.assert_array_equal(out[key], params[key])


@pytest.mark.parametrize("name", rule_names())
def test_saved_state_resumes_identically(name: str, tmp_path) -> None:
    params, grads = _problem(2)
    straight = Optimizer.make(name)
    expected = _run(straight, params, grads)[-1]
    first = Optimizer.make(name)
    middle = _run(first, params, grads[:3])[-1]
    first.save(tmp_path / "opt.npz")
    resumed = Optimizer.load(tmp_path / "opt.npz")
    assert resumed.t == 3 and resumed.hyper == first.hyper
    final = _run(resumed, middle, grads[3:])[-1]
    for key in params:
        np.testing.assert_array_equal(final[key], expected[key])
    fresh = _run(Optimizer.make(name), middle, grads[3:])[-1]
    if name != "sgd":  # stateless: nothing to lose
        assert not np.array_equal(fresh["W"], expected["W"])


def test_nesterov_is_the_look_ahead_rule_in_shifted_variables() -> None:
    """On f(theta) = theta' A theta / 2: theta~ = theta + alpha v follows our rule."""
    rng = np.random.default_rng(3)
    M = rng.normal(size=(4, 4))
    A = M @ M.T + np.eye(4)
    alpha, eps = 0.9, 0.02
    theta, v = rng.normal(size=4), np.zeros(4)
    opt = Optimizer.make("nesterov", epsilon=eps, alpha=alpha)
    shifted = {"w": theta + alpha * v}
    for _ in range(STEPS):
        g = A @ (theta + alpha * v)  # gradient at the look-ahead point
        v = alpha * v - eps * g
        theta = theta + v
        shifted = opt.step(shifted, {"w": A @ shifted["w"]})
        np.testing.assert_allclose(shifted["w"], theta + alpha * v, rtol=1e-12)


def test_adamw_leaves_biases_undecayed_unless_asked() -> None:
    zero = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    params = {"W": np.ones((2, 2)), "b": np.ones(2)}
    out = Optimizer.make("adamw", epsilon=0.1, **{"lambda": 0.5}).step(params, zero)
    np.testing.assert_allclose(out["W"], 0.95)
    np.testing.assert_array_equal(out["b"], 1.0)
    opt = Optimizer.make("adamw", epsilon=0.1, **{"lambda": 0.5})
    opt.decay_all = True
    np.testing.assert_allclose(opt.step(params, zero)["b"], 0.95)


def test_unknown_optimizer_and_hyperparameter() -> None:
    with pytest.raises(ValueError, match="adam"):
        Optimizer.make("lbfgs")
    with pytest.raises(ValueError, match="rho"):
        Optimizer.make("sgd", rho=0.9)


def test_update_rules_print_as_the_lectures_write_them() -> None:
    latex = {name: Optimizer.make(name).rule.latex() for name in rule_names()}
    assert r"\theta &\leftarrow \theta - \epsilon \mathbf{g}" in latex["sgd"]
    assert r"\mathbf{v} &\leftarrow \alpha \mathbf{v} - \epsilon \mathbf{g}" in latex["momentum"]
    assert r"\mathbf{r} &\leftarrow \mathbf{r} + \mathbf{g} \odot \mathbf{g}" in latex["adagrad"]
    assert r"\frac{\epsilon \mathbf{g}}{\delta + \sqrt{\mathbf{r}}}" in latex["rmsprop"]
    assert (
        r"\mathbf{r} &\leftarrow \rho_{2} \mathbf{r} + \left(1 - \rho_{2}\right) "
        r"\mathbf{g} \odot \mathbf{g}" in latex["adam"]
    )
    assert r"\hat{\mathbf{s}} &= \frac{\mathbf{s}}{1 - \rho_{1}^{t}}" in latex["adam"]
    assert r"\epsilon \frac{\hat{\mathbf{s}}}{\sqrt{\hat{\mathbf{r}}} + \delta}" in latex["adam"]
    assert r"+ \lambda \theta" in latex["adamw"]
    assert latex["adam"].startswith("\\begin{aligned}\nt &\\leftarrow t + 1")


# ---------------------------------------------------------------------------------------------
# schedules


def _plain_schedule(name: str, lr: float, tau: int, k: int) -> float:
    end = lr / 100
    if name == "constant":
        return lr
    if name == "step":
        return lr * 0.1 ** (k // math.ceil(tau / 3))
    if k >= tau:
        return end
    a = k / tau
    if name == "linear":
        return (1 - a) * lr + a * end
    return end + 0.5 * (lr - end) * (1 + math.cos(math.pi * a))


@pytest.mark.parametrize("name", schedule_names())
def test_schedule_agrees_with_plain_formula(name: str) -> None:
    sched = Schedule.make(name, 0.3, 20)
    for step in range(26):
        assert sched.lr(step) == pytest.approx(_plain_schedule(name, 0.3, 20, step), rel=1e-12)
    assert sched.lr(0) == pytest.approx(0.3)
    restored = Schedule.from_arrays(sched.to_arrays())
    assert restored == sched


def test_linear_schedule_is_the_lecture_formula() -> None:
    latex = Schedule.make("linear", 0.1, 10).latex()
    assert r"\left(1 - \frac{k}{\tau}\right) \epsilon_{0} + \frac{k}{\tau} \epsilon_{\tau}" in latex
    with pytest.raises(ValueError, match="cosine"):
        Schedule.make("exponential", 0.1, 10)


def test_schedule_drives_the_optimizer() -> None:
    sched = Schedule.make("linear", 0.1, 4)
    opt = Optimizer.make("sgd")
    params = {"w": np.zeros(1)}
    for k in range(6):
        params = opt.step(params, {"w": np.ones(1)}, lr=sched.lr(k))
    expected = -sum(_plain_schedule("linear", 0.1, 4, k) for k in range(6))
    np.testing.assert_allclose(params["w"], [expected])
