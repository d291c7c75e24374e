"""Finite-difference checker: correct hand-written modules pass, broken variants fail."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import fake_modules as fm
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.verify.finite_diff import fd_check
from derive.verify.module import load_module, random_batch, random_params, resolve_dims
from derive.verify.report import CheckReport

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORRECT = [fm.SoftmaxMLP, fm.BatchNormNet, fm.LogisticRegression]
BIG_MLP = {"n_in": 10, "n_hidden": 8}  # W1 has 80 > 64 entries: checked along directions


def failing(report: CheckReport) -> set[str]:
    """Names of the parameters whose gradient failed."""
    return {name for name, r in report.params.items() if not r.ok}


# ---------------------------------------------------------------------------------------------
# correct modules


@pytest.mark.parametrize("cls", CORRECT)
def test_correct_module_passes(cls: type) -> None:
    report = fd_check(cls())
    assert report.ok, report.table()
    assert report.float32.ok
    assert report.notes == []
    for name, r in report.params.items():
        assert r.n_compared >= 3 * math.prod(r.shape), name  # every entry, three batch sizes
        assert r.max_rel_err < 1e-3


def test_large_parameter_is_checked_along_directions() -> None:
    report = fd_check(fm.SoftmaxMLP(), dims=BIG_MLP, directions=6)
    assert report.ok, report.table()
    w1 = report.params["W1"]
    assert w1.shape == (10, 8)
    assert w1.n_compared == 3 * (6 + 4)
    assert "random directions" in w1.note
    assert report.params["W2"].n_compared == 3 * 24


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    index=st.integers(0, len(CORRECT) - 1),
    size=st.integers(1, 6),
)
def test_correct_modules_pass_for_any_seed_and_size(seed: int, index: int, size: int) -> None:
    module = CORRECT[index]()
    dims = {d: size for d, v in module.DIMS.items() if v is None}
    report = fd_check(module, seed=seed, dims=dims)
    assert report.ok, report.table()


def test_rounding_noise_of_large_losses_is_tolerated() -> None:
    report = fd_check(fm.LargeOffsetLoss())
    assert report.ok, report.table()
    assert max(r.max_abs_err for r in report.params.values()) > 1e-6  # far above atol


@pytest.mark.parametrize("seed", range(12))
def test_hidden_rounding_passes_after_retry(seed: int) -> None:
    report = fd_check(fm.CancellingLoss(), seed=seed)
    assert report.ok, report.table()


def test_check_is_deterministic_in_seed() -> None:
    one = fd_check(fm.BatchNormNet(), seed=7).to_json()
    assert one == fd_check(fm.BatchNormNet(), seed=7).to_json()
    assert one != fd_check(fm.BatchNormNet(), seed=8).to_json()


# ---------------------------------------------------------------------------------------------
# broken modules


@pytest.mark.parametrize("dims", [None, BIG_MLP], ids=["per-entry", "directional"])
def test_gradient_one_percent_off_fails(dims: dict[str, int] | None) -> None:
    report = fd_check(fm.ScaledGrad(), dims=dims)
    assert not report.ok
    assert failing(report) == {"W1"}
    assert report.params["W1"].max_rel_err == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert "worst at" in report.params["W1"].note


def test_tolerance_follows_rtol() -> None:
    tiny = fm.ScaledGradBy(1 + 1e-4, "W2")
    assert failing(fd_check(tiny)) == {"W2"}
    assert fd_check(tiny, rtol=1e-3).ok
    assert fd_check(fm.ScaledGradBy(1.01, "W2"), rtol=0.1).ok


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    name=st.sampled_from(["W1", "b1", "W2", "b2"]),
    factor=st.one_of(st.floats(0.5, 0.99), st.floats(1.01, 2.0)),
    big=st.booleans(),
)
def test_any_scaled_gradient_fails(seed: int, name: str, factor: float, big: bool) -> None:
    report = fd_check(fm.ScaledGradBy(factor, name), seed=seed, dims=BIG_MLP if big else None)
    assert failing(report) == {name}
    assert not report.ok


@pytest.mark.parametrize(
    "dims", [None, {"n_hidden": 9, "n_out": 9}], ids=["per-entry", "directional"]
)
def test_transposed_square_gradient_fails(dims: dict[str, int] | None) -> None:
    report = fd_check(fm.TransposedGrad(), dims=dims)
    assert failing(report) == {"W2"}
    assert report.params["W2"].max_rel_err > 0.05


def test_batchnorm_without_mean_term_fails() -> None:
    report = fd_check(fm.BatchNormNoMean())
    assert failing(report) == {"W"}
    assert not report.ok


def test_ignoring_g_loss_fails() -> None:
    report = fd_check(fm.IgnoresGLoss())
    assert failing(report) == {"W1", "b1", "W2", "b2"}


def test_wrong_shape_is_a_failure_not_an_exception() -> None:
    report = fd_check(fm.WrongShape())
    r = report.params["b1"]
    assert not r.ok and not report.ok
    assert "(1, 3)" in r.note and "(3,)" in r.note
    assert math.isnan(r.max_abs_err)
    assert failing(report) == {"b1"}


def test_missing_gradient_is_a_failure() -> None:
    report = fd_check(fm.MissingGrad())
    assert failing(report) == {"b2"}
    assert "missing" in report.params["b2"].note
    assert "b2" in report.table().splitlines()[-1]


class Float32Grads(fm.LogisticRegression):
    """Gradients cast to float32 although the parameters are float64."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        return {k: np.asarray(v, dtype=np.float32) for k, v in grads.items()}


class NanGrad(fm.LogisticRegression):
    """A NaN in dw."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        grads["w"] = grads["w"].copy()
        grads["w"][0] = np.nan
        return grads


def test_wrong_dtype_and_nan_fail() -> None:
    report = fd_check(Float32Grads())
    assert failing(report) == {"w", "b"}
    assert "dtype" in report.params["w"].note
    report = fd_check(NanGrad())
    assert failing(report) == {"w"}
    assert "non-finite" in report.params["w"].note


class MisnamedGrad(fm.LogisticRegression):
    """Returns the bias gradient under the key 'bias'."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        grads["bias"] = grads.pop("b")
        return grads


class FailsAwayFromStart(fm.LogisticRegression):
    """forward raises as soon as b moves."""

    def forward(self, params, batch):
        if abs(float(params["b"]) - getattr(self, "start", float(params["b"]))) > 0:
            raise FloatingPointError("moved")
        self.start = float(params["b"])
        return super().forward(params, batch)


def test_misnamed_gradient_is_reported() -> None:
    report = fd_check(MisnamedGrad())
    assert failing(report) == {"b"}
    assert "missing" in report.params["b"].note and "'bias'" in report.params["b"].note


def test_exception_during_finite_differences_is_a_failure() -> None:
    report = fd_check(FailsAwayFromStart(), batch_sizes=(2,))
    assert failing(report) == {"b"}
    assert "FloatingPointError" in report.params["b"].note


def test_float32_run_catches_float64_leak() -> None:
    report = fd_check(fm.Float64Leak())
    assert failing(report) == set()
    assert not report.float32.ok and not report.ok
    assert report.float32.note == "cache['L'] is float64, not float32"
    assert report.to_json()["float32"]["ok"] is False


def test_exception_in_backward_is_reported() -> None:
    report = fd_check(fm.RaisesInBackward())
    assert not report.ok
    assert failing(report) == {"w", "b"}
    assert any("RuntimeError: boom" in note for note in report.notes)


def test_loss_not_matching_reduction_is_reported() -> None:
    report = fd_check(fm.WrongReduction())
    assert failing(report) == set()
    assert not report.ok
    assert any("mean of cache['L']" in note for note in report.notes)


# ---------------------------------------------------------------------------------------------
# report


def test_to_json_has_exactly_the_promised_keys() -> None:
    data = fd_check(fm.WrongShape()).to_json()
    assert data["ok"] is False
    assert set(data["params"]) == {"W1", "b1", "W2", "b2"}
    for entry in data["params"].values():
        assert set(entry) == {"ok", "max_abs_err", "max_rel_err", "allowance_used"}
        assert isinstance(entry["ok"], bool)
        assert all(type(entry[k]) is float for k in ("max_abs_err", "max_rel_err"))
        assert type(entry["allowance_used"]) is float
    assert data["params"]["W1"]["ok"] is True
    assert 0.0 <= data["params"]["W1"]["allowance_used"] <= 1.0
    json.dumps(data)


def test_table_is_aligned_with_a_final_line() -> None:
    report = fd_check(fm.ScaledGrad())
    lines = report.table().splitlines()
    assert lines[0].split() == [
        "param",
        "shape",
        "max",
        "abs",
        "err",
        "max",
        "rel",
        "err",
        "allowance",
        "verdict",
    ]
    rows = [line for line in lines[2:] if line.split()[0] in report.params]
    assert [row.split()[0] for row in rows] == ["W1", "b1", "W2", "b2"]
    verdict_col = lines[0].index("verdict")
    assert [row[verdict_col:] for row in rows] == ["FAIL", "PASS", "PASS", "PASS"]
    assert len({len(row) for row in rows}) == 1
    share = lines[0].index("allowance") + len("allowance")
    used = [float(row[:share].split()[-1].rstrip("%")) for row in rows]
    assert used[0] > 100 and all(u <= 100 for u in used[1:])  # the scaled W1 is far outside
    assert lines[-1].startswith("FAIL") and "W1" in lines[-1]
    assert fd_check(fm.SoftmaxMLP()).table().splitlines()[-1].startswith("PASS")


# ---------------------------------------------------------------------------------------------
# dimensions, random data, loading


def test_resolve_dims() -> None:
    module = SimpleNamespace(
        DIMS={"a": None, "b": 5},
        INPUTS={"x": (("a", "c", 2), "real")},
        PARAMS={"w": ("b", "d")},
    )
    assert resolve_dims(module) == {"a": 3, "b": 5, "c": 3, "d": 3}
    assert resolve_dims(module, {"a": 1, "b": 2}, default=4) == {"a": 1, "b": 2, "c": 4, "d": 4}
    with pytest.raises(ValueError, match="did you mean 'a'"):
        resolve_dims(module, {"aa": 2})


@FAST
@given(m=st.integers(1, 6), a=st.integers(1, 4), k=st.integers(1, 5), seed=st.integers(0, 99))
def test_random_batch_kinds(m: int, a: int, k: int, seed: int) -> None:
    module = SimpleNamespace(
        INPUTS={
            "x": (("a", 2), "real"),
            "t": (("a", "k"), "one_hot"),
            "p": (("k",), "probability"),
            "y": ((), "binary"),
        },
        PARAMS={"w": ("a", "k"), "s": ()},
    )
    rng = np.random.default_rng(seed)
    batch = random_batch(module, {"a": a, "k": k}, m, rng)
    assert batch["x"].shape == (m, a, 2)
    t = batch["t"]
    assert t.shape == (m, a, k)
    assert set(np.unique(t)) <= {0.0, 1.0}
    np.testing.assert_array_equal(t.sum(axis=-1), 1.0)
    p = batch["p"]
    assert p.shape == (m, k) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    if k > 1:
        assert not np.allclose(p, 1 / k)
    assert batch["y"].shape == (m,) and set(np.unique(batch["y"])) <= {0.0, 1.0}
    assert all(v.dtype == np.float64 for v in batch.values())
    params = random_params(module, {"a": a, "k": k}, rng)
    assert params["w"].shape == (a, k) and params["s"].shape == ()


MODULE_SOURCE = textwrap.dedent(
    '''
    """A generated-style logistic regression module."""
    import numpy as np

    NAME = "logistic_file"
    LOSS = "L"
    REDUCTION = "sum"
    DIMS = {"n_in": None}
    INPUTS = {"x": (("n_in",), "real"), "y": ((), "binary")}
    PARAMS = {"w": ("n_in",), "b": ()}


    def forward(params, batch):
        z = batch["x"] @ params["w"] + params["b"]
        L = np.logaddexp(0, z) - batch["y"] * z
        return L.sum(), {"z": z, "L": L}


    def backward(params, batch, cache, g_loss=None):
        z = cache["z"]
        g = np.ones_like(z) if g_loss is None else g_loss
        dz = g * (1 / (1 + np.exp(-z)) - batch["y"])
        return {"w": batch["x"].T @ dz, "b": dz.sum()}


    def loss_and_grad(params, batch):
        loss, cache = forward(params, batch)
        return loss, backward(params, batch, cache)


    def init_params(seed=0, dims=None, dtype=np.float64):
        n = (dims or {})["n_in"]
        return {"w": np.zeros(n, dtype), "b": np.zeros((), dtype)}
    '''
)


def test_load_module_from_path(tmp_path: Path) -> None:
    path = tmp_path / "logistic.py"
    path.write_text(MODULE_SOURCE)
    first, second = load_module(path), load_module(path)
    assert first is not second and first.__name__ != second.__name__
    assert sys.modules[first.__name__] is first
    assert first.NAME == "logistic_file"
    report = fd_check(first)
    assert report.ok, report.table()
    broken = MODULE_SOURCE.replace('- batch["y"])', '- 0.99 * batch["y"])')
    assert broken != MODULE_SOURCE
    path.write_text(broken)
    assert not fd_check(load_module(path)).ok
    with pytest.raises(FileNotFoundError):
        load_module(tmp_path / "absent.py")
