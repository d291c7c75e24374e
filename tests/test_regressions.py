"""Unusual but valid specs that once gave wrong numbers, crashes or unrunnable code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from derive.errors import SpecError
from derive.pipeline import generate
from derive.verify.module import load_module
from derive.verify.run import check_spec


def spec(tmp_path: Path, forward: str, *, extra: str = "", name: str = "net") -> Path:
    """A one-input spec: x (d), params w (d), W (k, d), b (k), plus ``extra`` sections."""
    text = f"""
name = "{name}"
[dims]
d = 3
k = 2
{extra}
[inputs]
x = {{ shape = ["d"] }}
[params]
w = {{ shape = ["d"] }}
W = {{ shape = ["k", "d"] }}
b = {{ shape = ["k"] }}
[forward]
{forward}
[loss]
output = "L"
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def checked(path: Path) -> None:
    report = check_spec(path, budget=30)
    assert report.ok, report.table()


@pytest.mark.parametrize(
    "forward",
    [
        # leaky_relu of a compound argument: slope * (x - 1), not slope * x - 1
        'h = "leaky_relu(x - 1, slope=0.1)"\nL = "(w @ h)**2 + sum(W @ x + b)"',
        # gradients constant along an axis keep the node's full shape
        'f = "W @ x + b"\nL = "mean(f) + w @ x"',
        'L = "x @ x * sum(w) + sum(W @ x + b)"',
        # exp(1), log(2), ... are numbers
        'L = "exp(1) * (w @ x)**2 + log(2) * sum(W @ x + b)"',
        # the L1 loss: abs of an expression
        'L = "sum(abs(w - x)) + sum(abs(W @ x + b))"',
        # a deep chain written in one expression stays factored while it is derived
        'L = "' + "tanh(" * 12 + "w @ x" + ")" * 12 + ' + sum(W @ x + b)"',
    ],
    ids=["leaky-compound", "mean-broadcast", "sum-broadcast", "exp1", "abs", "tanh12"],
)
def test_unusual_spec_derives_and_checks(forward: str, tmp_path: Path) -> None:
    checked(spec(tmp_path, forward))


def test_constants_may_state_conventions(tmp_path: Path) -> None:
    extra = "[constants]\none = 1.0\nalpha = 0.2"
    forward = (
        'h = "relu(W @ x + b, at_zero=one)"\n'
        'g = "leaky_relu(W @ x, slope=alpha, at_zero=alpha)"\nL = "sum(h + g) + w @ x"'
    )
    checked(spec(tmp_path, forward, extra=extra))


def test_batch_size_symbol_avoids_every_name(tmp_path: Path) -> None:
    extra = "[constants]\nm = 7.0\nB = 5.0\nN = 4.0"  # none equal to a batch size used
    path = spec(
        tmp_path, 'h = "W @ x - batch_mean(W @ x)"\nL = "sum(h * h) * m * B * N"', extra=extra
    )
    checked(path)


def test_numeric_constants_keep_float32(tmp_path: Path) -> None:
    path = spec(tmp_path, 'y = "sigmoid(w @ x) / 2"\nL = "-log(y) + sqrt(2) * sum(W @ x + b)"')
    mod = load_module(generate(path, tmp_path).path)
    params = mod.init_params(0, dtype=np.float32)
    loss, grads = mod.loss_and_grad(params, {"x": np.ones((4, 3), np.float32)})
    assert np.asarray(loss).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


def test_constant_named_like_a_builtin_does_not_break_the_module(tmp_path: Path) -> None:
    # built-ins the generated module itself reads (len, zip, ...) are reserved names instead
    extra = "[constants]\nsorted = 2.0\ntuple = 3.0\nid = 1.5"
    checked(spec(tmp_path, 'L = "sorted * tuple * id * (w @ x) + sum(W @ x + b)"', extra=extra))


def test_spec_name_must_be_importable(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid spec name"):
        generate(spec(tmp_path, 'L = "w @ x"', name="class"), tmp_path)
