"""Every reserved name in every place a spec declares names, and training settings observed
on the parameters they produce (a train() that ignored its learning rate would fail here)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import fake_modules as fm
import numpy as np
import pytest

from derive.errors import SpecError
from derive.lang.spec import parse_spec
from derive.ops.signatures import RESERVED_NAMES
from derive.pipeline import load_graph
from derive.train.loop import train
from derive.train.optim import Optimizer

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "dims": "d = 2",
    "constants": "c = 1.0",
    "inputs": 'x = { shape = ["d"] }',
    "params": 'w = { shape = ["d"] }',
    "ops": 'sq = { args = ["z"], expr = "z * z" }',
    "forward": 'L = "sum(sq(w * x)) * c"',
}
DECLARATION = {
    "dims": "{} = 2",
    "constants": "{} = 1.0",
    "inputs": '{} = {{ shape = ["d"] }}',
    "params": '{} = {{ shape = ["d"] }}',
    "ops": '{} = {{ args = ["z"], expr = "z" }}',
    "forward": '{} = "w * x"',
}


def spec_declaring(name: str, section: str) -> str:
    """A valid spec plus one declaration of ``name`` in ``section`` (first in the table)."""
    parts = ['name = "net"']
    for sec, body in BASE.items():
        extra = DECLARATION[sec].format(name) + "\n" if sec == section else ""
        parts.append(f"[{sec}]\n{extra}{body}")
    parts.append('[loss]\noutput = "L"')
    return "\n".join(parts) + "\n"


def test_the_base_spec_is_valid() -> None:
    parse_spec(spec_declaring("free_name", "constants").replace("free_name = 1.0\n", ""))
    for section in DECLARATION:
        parse_spec(spec_declaring("a_free_name", section))  # the same place, an ordinary name


@pytest.mark.parametrize("section", sorted(DECLARATION))
@pytest.mark.parametrize("name", [*sorted(RESERVED_NAMES), "g_w", "g_anything"])
def test_every_reserved_name_is_rejected_everywhere(name: str, section: str) -> None:
    text = spec_declaring(name, section)
    with pytest.raises(SpecError) as info:
        parse_spec(text, "net.toml")
    err = info.value
    assert "reserved" in err.message and f"'{name}'" in err.message, err.message
    assert err.line == text.splitlines().index(DECLARATION[section].format(name)) + 1
    assert err.file == "net.toml"


def module_level_names(path: Path) -> set[str]:
    """Names a generated module binds at the top level (imports, assignments, functions), and
    the Python built-ins it reads (a spec constant of that name would shadow them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and hasattr(builtins, n.id)}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "generated").glob("*.py")), ids=lambda p: p.stem)
def test_every_name_a_generated_module_binds_is_reserved(path: Path) -> None:
    """The list is complete: what the module defines is reserved, a helper or a constant of the
    graph (the spec's own, or a penalty's, named to avoid every spec name)."""
    own = set(load_graph(ROOT / "examples" / f"{path.stem}.toml").constants)
    free = module_level_names(path) - own - RESERVED_NAMES
    assert {n for n in free if not n.startswith("_")} == set(), free


# ---------------------------------------------------------------------------------------------
# training settings


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    T = np.eye(3)[rng.integers(0, 3, 12)]
    params = fm.SoftmaxMLP().init_params(seed=1, dims={"n_in": 3, "n_hidden": 4, "n_out": 3})
    params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}
    return X, T, params


def full_batch_grad(params, X, T):
    return fm.SoftmaxMLP().loss_and_grad(params, {"x": X, "t": T})[1]


def fit(params, X, T, *, epochs: int, lr: float, optimizer: str):
    """train() with one minibatch per epoch: every step sees the whole set."""
    result = train(
        fm.SoftmaxMLP(), X, T, epochs=epochs, batch_size=len(X), lr=lr, optimizer=optimizer,
        params=dict(params), log=None,
    )  # fmt: skip
    return result.params


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_zero_learning_rate_leaves_the_parameters_unchanged(data, optimizer: str) -> None:
    X, T, params = data
    after = fit(params, X, T, epochs=3, lr=0.0, optimizer=optimizer)
    assert set(after) == set(params)
    for name in params:
        np.testing.assert_array_equal(after[name], params[name])


def test_one_sgd_step_by_hand(data) -> None:
    X, T, params = data
    g = full_batch_grad(params, X, T)
    for lr in (0.1, 0.7):
        after = fit(params, X, T, epochs=1, lr=lr, optimizer="sgd")
        for name in params:
            np.testing.assert_allclose(after[name], params[name] - lr * g[name], rtol=1e-12)
            assert not np.allclose(after[name], params[name])


def test_two_momentum_steps_by_hand(data) -> None:
    """v1 = -lr g0, theta1 = theta0 + v1; v2 = 0.9 v1 - lr g1, theta2 = theta1 + v2."""
    X, T, params = data
    lr = 0.3
    g0 = full_batch_grad(params, X, T)
    v1 = {k: -lr * g0[k] for k in params}
    theta1 = {k: params[k] + v1[k] for k in params}
    g1 = full_batch_grad(theta1, X, T)
    theta2 = {k: theta1[k] + 0.9 * v1[k] - lr * g1[k] for k in params}
    after = fit(params, X, T, epochs=2, lr=lr, optimizer="momentum")
    for name in params:
        np.testing.assert_allclose(after[name], theta2[name], rtol=1e-10, atol=1e-14)


def test_two_adam_steps_by_hand(data) -> None:
    """s = 0.1 g (then 0.9 s + 0.1 g), r = 0.001 g^2 (then 0.999 r + 0.001 g^2), bias-corrected,
    theta <- theta - lr s_hat / (sqrt(r_hat) + 1e-8)."""
    X, T, params = data
    lr = 0.01
    g0 = full_batch_grad(params, X, T)
    s = {k: 0.1 * g0[k] for k in params}
    r = {k: 0.001 * g0[k] ** 2 for k in params}
    theta1 = {k: params[k] - lr * (s[k] / 0.1) / (np.sqrt(r[k] / 0.001) + 1e-8) for k in params}
    g1 = full_batch_grad(theta1, X, T)
    theta2 = {}
    for k in params:
        s2 = 0.9 * s[k] + 0.1 * g1[k]
        r2 = 0.999 * r[k] + 0.001 * g1[k] ** 2
        s_hat, r_hat = s2 / (1 - 0.9**2), r2 / (1 - 0.999**2)
        theta2[k] = theta1[k] - lr * s_hat / (np.sqrt(r_hat) + 1e-8)
    one = fit(params, X, T, epochs=1, lr=lr, optimizer="adam")
    two = fit(params, X, T, epochs=2, lr=lr, optimizer="adam")
    for name in params:
        np.testing.assert_allclose(one[name], theta1[name], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(two[name], theta2[name], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_optimizer_step_learning_rate_override(name: str) -> None:
    """step(lr=...) replaces epsilon: 0 changes nothing, and the first SGD step is -lr g."""
    theta = {"w": np.array([1.0, -2.0, 0.5])}
    g = {"w": np.array([0.5, 1.0, -4.0])}
    opt = Optimizer.make(name, epsilon=0.5)
    np.testing.assert_array_equal(opt.step(theta, g, lr=0.0)["w"], theta["w"])
    if name == "sgd":
        np.testing.assert_allclose(opt.step(theta, g, lr=0.25)["w"], theta["w"] - 0.25 * g["w"])
        np.testing.assert_allclose(opt.step(theta, g)["w"], theta["w"] - 0.5 * g["w"])
