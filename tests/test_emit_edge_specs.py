"""Specs at the edges of the emitter's passes (tests/specs_edge/): each module is ruff-clean,
agrees with central differences, keeps float32 float32, and gives the same gradients with
the default ``g_loss`` as with explicit equal weights (also when an input holds integers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from test_fresh_code import ruff_problems

from derive.pipeline import generate
from derive.verify.finite_diff import fd_check
from derive.verify.module import load_module, random_batch, random_params

EDGE = sorted((Path(__file__).parent / "specs_edge").glob("*.toml"))


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("edge")
    return {p.stem: generate(p, out).path for p in EDGE}


def _sizes(module) -> dict[str, int]:
    return {d: v or 3 for d, v in module.DIMS.items()}


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize("spec", EDGE, ids=[p.stem for p in EDGE])
def test_edge_module_is_ruff_clean(spec: Path, modules: dict) -> None:
    assert ruff_problems(modules[spec.stem]) == ""


@pytest.mark.parametrize("spec", EDGE, ids=[p.stem for p in EDGE])
def test_edge_module_agrees_with_central_differences(spec: Path, modules: dict) -> None:
    report = fd_check(load_module(modules[spec.stem]))
    assert report.ok, report.table()


@pytest.mark.parametrize("spec", EDGE, ids=[p.stem for p in EDGE])
def test_default_weights_keep_the_dtype_and_the_values(spec: Path, modules: dict) -> None:
    module = load_module(modules[spec.stem])
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        params = {k: v.astype(dtype) for k, v in random_params(module, _sizes(module), rng).items()}
        batch = random_batch(module, _sizes(module), 4, rng)
        batch = {k: np.asarray(v).astype(dtype) for k, v in batch.items()}
        _loss, cache = module.forward(params, batch)
        default = module.backward(params, batch, cache)
        weight = 0.25 if module.REDUCTION == "mean" else 1.0
        given = module.backward(params, batch, cache, g_loss=np.full(4, weight, dtype=dtype))
        for name in module.PARAMS:
            got = np.asarray(default[name])
            assert got.dtype == dtype, (name, got.dtype)
            assert got.shape == np.shape(params[name]), name
            np.testing.assert_allclose(got, given[name], rtol=1e-5, atol=1e-6)


def test_labels_given_as_integers_keep_their_gradient(modules: dict) -> None:
    """The default weight is no array shaped like the first input (int labels gave 0)."""
    module = load_module(modules["first_input_is_labels"])
    rng = np.random.default_rng(4)
    params = random_params(module, _sizes(module), rng)
    batch = {"y": np.array([0, 1, 1, 0]), "x": rng.normal(size=(4, 3))}
    _loss, cache = module.forward(params, batch)
    default = module.backward(params, batch, cache)
    given = module.backward(params, batch, cache, g_loss=np.full(4, 0.25))
    np.testing.assert_allclose(default["b"], given["b"])
    assert np.all(default["b"] > 0)


def test_a_constant_is_never_shadowed_by_a_shared_difference(modules: dict) -> None:
    text = modules["constant_named_like_a_difference"].read_text()
    assert "f_minus_y = f - y" not in text


def test_long_operand_names_are_not_joined_into_a_difference_name(modules: dict) -> None:
    text = modules["long_names"].read_text()
    assert "_minus_" not in text


def test_tied_weights_get_two_gemms_not_a_broadcast(modules: dict) -> None:
    """g_W = Σ_b (g_r[b, i] hid[b, j] + g_z[b, j] x[b, i]) is two products, not an (h, d, m)
    array summed over its last axis."""
    text = modules["tied_weights"].read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("g_W = "))
    assert line.count(" @ ") == 2 and ".sum(" not in line and "None" not in line, line


@pytest.mark.parametrize(
    ("spec", "param"), [("scaled_preactivations", "W"), ("layer_without_bias", "W")]
)
def test_the_weight_gradient_is_one_gemm(spec: str, param: str, modules: dict) -> None:
    """tanh(alpha * (W @ x)), tanh(W @ x), x @ W @ y, (W @ x) * (V @ x) * c: one GEMM each."""
    text = modules[spec].read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"g_{param} = "))
    assert " @ " in line and ".sum(" not in line and "None" not in line, line


def test_a_gram_matrix_adjoint_is_two_stacked_matmuls(modules: dict) -> None:
    """K = z @ z.T: g_z = Σ_n (g_K[b, i, n] + g_K[b, n, i]) z[b, n, d], no 4-axis broadcast."""
    text = modules["gram_matrix"].read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("g_z = "))
    assert line.count(" @ ") == 2 and "None" not in line and ".sum(" not in line, line
