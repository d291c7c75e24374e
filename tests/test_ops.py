"""Every op of the library derives, emits and checks, alone and in a small network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.graph.builder import Builder
from derive.graph.tensor import Tensor
from derive.ops.table import BUILTIN_OPS
from derive.verify.finite_diff import fd_check
from derive.verify.module import load_module
from derive.verify.symbolic import symbolic_check


def network(body: Callable[[Builder, Tensor, Tensor], Tensor], kind: str = "real", **extra):
    """x (d) → z = W x + c → body(z, t) → per-example loss (summed if not a scalar)."""
    b = Builder("op", {"d": 3, "k": 3}, taken=["x", "t", "W", "c", "L"])
    x = b.input("x", ["d"])
    t = b.input("t", ["k"], kind=kind)
    w, c = b.param("W", ["k", "d"]), b.param("c", ["k"])
    out = body(b, w @ x + c, t)
    if out.example_dims:
        out = b.call("sum", out * t) if kind == "real" else b.call("sum", out)
    b.let("L", out)
    return derive(b.loss("L", **extra))


CASES: dict[str, tuple[Callable, str]] = {
    "exp": (lambda b, z, t: b.call("exp", 0.3 * z), "real"),
    "log": (lambda b, z, t: b.call("log", z * z + 1), "real"),
    "sqrt": (lambda b, z, t: b.call("sqrt", z * z + 0.5), "real"),
    "abs": (lambda b, z, t: b.call("abs", z), "real"),
    "sigmoid": (lambda b, z, t: b.call("sigmoid", z), "real"),
    "tanh": (lambda b, z, t: b.call("tanh", z), "real"),
    "relu": (lambda b, z, t: b.call("relu", z), "real"),
    "leaky_relu": (lambda b, z, t: b.call("leaky_relu", z, slope=0.1), "real"),
    "softplus": (lambda b, z, t: b.call("softplus", z), "real"),
    "gelu": (lambda b, z, t: b.call("gelu", z), "real"),
    "pow": (lambda b, z, t: z**3 - 2 / (z * z + 1), "real"),
    "mean": (lambda b, z, t: b.call("mean", z * t), "real"),
    "softmax": (lambda b, z, t: b.call("softmax", z), "real"),
    "log_softmax": (lambda b, z, t: b.call("log_softmax", z), "real"),
    "squared_error": (lambda b, z, t: b.call("squared_error", z, t), "real"),
    "cross_entropy": (
        lambda b, z, t: b.call("cross_entropy", b.call("softmax", z), t),
        "probability",
    ),
    "softmax_cross_entropy": (
        lambda b, z, t: b.call("softmax_cross_entropy", z, t),
        "one_hot",
    ),
    "binary_cross_entropy": (
        lambda b, z, t: b.call("sum", b.call("binary_cross_entropy", b.call("sigmoid", z), t)),
        "binary",
    ),
    "bce_with_logits": (
        lambda b, z, t: b.call("sum", b.call("bce_with_logits", z, t)),
        "binary",
    ),
    "l1": (lambda b, z, t: b.call("sum", z * t) + 0.1 * b.call("l1", b.value("W")), "real"),
    "l2": (lambda b, z, t: b.call("sum", z * t) + 0.5 * b.call("l2", b.value("W")), "real"),
    "batch_mean": (lambda b, z, t: b.call("batch_mean", z) * z, "real"),
    "batchnorm": (
        lambda b, z, t: b.call("batchnorm", z, b.value("c"), 1.5, eps=1e-3),
        "real",
    ),
    "dropout": (lambda b, z, t: b.call("dropout", b.call("tanh", z), drop=0.3), "real"),
}


def test_every_differentiable_builtin_has_a_case() -> None:
    missing = set(BUILTIN_OPS) - set(CASES) - {"argmax", "max", "sum"}
    assert not missing


@pytest.mark.parametrize("op", sorted(CASES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_op_derives_and_checks(op: str, reduction: str, tmp_path: Path) -> None:
    body, kind = CASES[op]
    d = network(body, kind, reduction=reduction)
    path = tmp_path / f"{op}_{reduction}.py"
    path.write_text(render(d), encoding="utf-8")
    mod = load_module(path)
    report = fd_check(mod, batch_sizes=(1, 4))
    assert report.ok, report.table()
    assert symbolic_check(d.graph, mod, points=2).ok


@pytest.mark.parametrize(
    ("op", "kwargs", "expected"),
    [
        ("leaky_relu", {"slope": 0.1, "at_zero": 1}, 1.0),
        ("leaky_relu", {"slope": 0.1, "at_zero": 0.1}, 0.1),
        ("relu", {"at_zero": 0}, 0.0),
        ("relu", {"at_zero": 1}, 1.0),
    ],
)
def test_derivative_at_the_kink_follows_the_stated_convention(
    op: str, kwargs: dict, expected: float, tmp_path: Path
) -> None:
    b = Builder("kink", {"d": 2}, taken=["x", "w", "L"])
    x, w = b.input("x", ["d"]), b.param("w", ["d"])
    b.let("L", b.call("sum", b.call(op, w * x, **kwargs)))
    path = tmp_path / "kink.py"
    path.write_text(render(derive(b.loss("L", reduction="sum"))), encoding="utf-8")
    mod = load_module(path)
    _, grads = mod.loss_and_grad({"w": np.zeros(2)}, {"x": np.array([[1.0, 2.0]])})
    np.testing.assert_allclose(grads["w"], expected * np.array([1.0, 2.0]))


def test_bce_with_logits_is_stable_for_huge_logits(tmp_path: Path) -> None:
    d = network(CASES["bce_with_logits"][0], "binary")
    path = tmp_path / "bce.py"
    path.write_text(render(d), encoding="utf-8")
    mod = load_module(path)
    params = {"W": np.full((3, 3), 300.0), "c": np.zeros(3)}
    batch = {"x": np.array([[1.0, -1.0, 2.0], [-3.0, 1.0, -2.0]]), "t": np.array([[1, 0, 1]] * 2)}
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        loss, grads = mod.loss_and_grad(params, batch)
    assert np.isfinite(loss) and loss > 100  # confidently wrong examples cost a lot, not inf
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_gelu_spellings() -> None:
    """GELU (tanh approximation) in emitted code and in LaTeX, from its one record."""
    from derive.tex.printer import OP_LATEX

    b = Builder("g", {"d": 2}, taken=["x", "w", "L"])
    x, w = b.input("x", ["d"]), b.param("w", ["d"])
    b.let("L", b.call("sum", b.call("gelu", w * x)))
    text = render(derive(b.loss("L")))
    assert "def _gelu(z):" in text and "_gelu(z_L)" in text  # z_L = w * x, staged
    assert OP_LATEX["gelu"] == r"\operatorname{GELU}"
