"""Reductions follow NumPy: ``sum``/``mean`` take every per-example axis, ``axis=`` one.

The batch axis is never reduced by them; ``softmax``, ``log_softmax`` and ``max`` take
``axis=`` too (a row-wise softmax of a per-example matrix, as attention needs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from spec_modules import module_of, spec_text

from derive.errors import SpecError
from derive.graph.builder import graph_from_spec
from derive.lang.spec import parse_spec
from derive.pipeline import generate
from derive.verify.finite_diff import fd_check
from derive.verify.module import load_module

RNG = np.random.default_rng(7)
B = 3
A = RNG.standard_normal((B, 3, 4))
T = RNG.standard_normal((B, 3, 4))
MATRIX = dict(
    dims="r = 3\nc = 4",
    inputs='x = { shape = ["r", "c"] }\nt = { shape = ["r", "c"] }',
    params='w = { shape = ["r", "c"] }',
)


def softmax(f: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(f - f.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def matrix_module(forward: str):
    return module_of(spec_text(forward, **MATRIX))


ZERO = {"w": np.zeros((3, 4))}
BATCH = {"x": A, "t": T}


@pytest.mark.parametrize(
    ("expr", "numpy"),
    [
        ("sum(x + w)", lambda a: a.sum(axis=(1, 2))),
        ("mean(x + w)", lambda a: a.mean(axis=(1, 2))),
        ("sum(sum(x + w, axis=0))", lambda a: a.sum(axis=1).sum(axis=1)),
        ("sum(sum(x + w, axis=1) * sum(x, axis=-1))", lambda a: (a.sum(2) * a.sum(2)).sum(1)),
        ("sum(mean(x + w, axis=0)**2)", lambda a: (a.mean(axis=1) ** 2).sum(axis=1)),
        ("sum(t * softmax(x + w, axis=-1))", lambda a: (T * softmax(a, 2)).sum(axis=(1, 2))),
        ("sum(t * softmax(x + w, axis=0))", lambda a: (T * softmax(a, 1)).sum(axis=(1, 2))),
        ("sum(t * softmax(x + w))", lambda a: (T * softmax(a, 2)).sum(axis=(1, 2))),
        (
            "sum(t * log_softmax(x + w, axis=0))",
            lambda a: (T * np.log(softmax(a, 1))).sum(axis=(1, 2)),
        ),
    ],
)
def test_value_follows_numpy_and_gradients_check(expr: str, numpy) -> None:
    mod = matrix_module(f'L = "{expr}"')
    _loss, cache = mod.forward(ZERO, BATCH)
    np.testing.assert_allclose(cache["L"], numpy(A), rtol=1e-12, atol=1e-12)
    report = fd_check(mod, batch_sizes=(1, 3))
    assert report.ok, report


def test_penalty_written_as_numpy_writes_it() -> None:
    """``sum(W**2)`` of a matrix is one number per network: a valid L2 penalty."""
    text = spec_text(
        'L = "sum(x * w) + sum(w**2)"',
        dims="r = 3\nc = 4",
        inputs='x = { shape = ["r", "c"] }',
        params='w = { shape = ["r", "c"] }',
    )
    mod = module_of(text)
    w = RNG.standard_normal((3, 4))
    _loss, grads = mod.loss_and_grad({"w": w}, {"x": A})
    np.testing.assert_allclose(grads["w"], A.mean(axis=0) + 2 * w, rtol=1e-12)


def test_batch_axis_is_never_reduced() -> None:
    mod = matrix_module('s = "sum(x + w, axis=0)"\nL = "sum(s)"')
    _loss, cache = mod.forward(ZERO, BATCH)
    assert cache["s"].shape == (B, 4)
    np.testing.assert_allclose(cache["s"], A.sum(axis=1), rtol=1e-12)


def test_row_max_value() -> None:
    mod = matrix_module('top = "max(x + w, axis=-1)"\nL = "sum(t * (x + w))"')
    _loss, cache = mod.forward(ZERO, BATCH)
    np.testing.assert_array_equal(cache["top"], A.max(axis=2))


def spec_error(forward: str) -> SpecError:
    with pytest.raises(SpecError) as err:
        graph_from_spec(parse_spec(spec_text(forward, **MATRIX)))
    return err.value


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ('L = "sum(sum(x + w, axis=2))"', "sum(): axis 2 is out of range"),
        ('L = "sum(softmax(x + w, axis=-3))"', "softmax(): axis -3 is out of range"),
        ('L = "sum(x + w, axis=0.5)"', "sum(): axis must be a whole number"),
        ('L = "max(x + w) + sum(w)"', "max has no derivative"),
    ],
)
def test_bad_axes_and_max_on_the_loss_path_are_spec_errors(forward: str, message: str) -> None:
    assert message in spec_error(forward).message


def test_attention_example_checks(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    mod = load_module(generate(root / "examples" / "attention.toml", tmp_path).path)
    report = fd_check(mod, batch_sizes=(1, 2))
    assert report.ok, report
