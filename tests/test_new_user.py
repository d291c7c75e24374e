"""Specs a new user writes on day one: each of these once gave a silent wrong answer, an
internal error where the user erred, or a stalled training run."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from derive.cli import main
from derive.pipeline import generate
from derive.verify.magnitudes import large_magnitude_check
from derive.verify.module import load_module


def write_spec(tmp_path: Path, body: str, name: str = "net") -> Path:
    """A spec with input x (d), params w (d) and W (d, d), then ``body`` (ops, forward, loss)."""
    text = f"""name = "{name}"
[dims]
d = 3
[inputs]
x = {{ shape = ["d"] }}
[params]
w = {{ shape = ["d"] }}
W = {{ shape = ["d", "d"] }}
{body}
[loss]
output = "L"
"""
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def module_of(spec: Path, tmp_path: Path) -> ModuleType:
    return load_module(generate(spec, tmp_path / "out").path)


# ----- initialisation by role -------------------------------------------------------------------
BN = """name = "bn"
[dims]
d = 4
m = 6
k = 3
[inputs]
x = { shape = ["d"] }
t = { shape = ["k"], kind = "one_hot" }
[params]
W1 = { shape = ["m", "d"] }
gamma = { shape = ["m"]GAMMA_INIT }
beta = { shape = ["m"] }
W2 = { shape = ["k", "m"] }
b2 = { shape = ["k"] }
[forward]
z1 = "W1 @ x"
y1 = "batchnorm(z1, gamma, beta)"
h1 = "relu(y1)"
f = "W2 @ h1 + b2"
L = "softmax_cross_entropy(f, t)"
[loss]
output = "L"
"""


def test_batchnorm_scale_starts_at_ones(tmp_path: Path) -> None:
    spec = tmp_path / "bn.toml"
    spec.write_text(BN.replace("GAMMA_INIT", ""), encoding="utf-8")
    mod = module_of(spec, tmp_path)
    params = mod.init_params(seed=0)
    assert np.array_equal(params["gamma"], np.ones(6))
    assert np.array_equal(params["beta"], np.zeros(6))
    assert np.array_equal(params["b2"], np.zeros(3))
    assert np.std(params["W1"]) > 0.1  # weights keep their random start
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((8, 4)), "t": np.eye(3)[rng.integers(0, 3, 8)]}
    _, grads = mod.loss_and_grad(params, batch)
    assert np.abs(grads["W1"]).max() > 1e-3  # the layer below learns


def test_declared_init_still_wins(tmp_path: Path) -> None:
    spec = tmp_path / "bn.toml"
    spec.write_text(BN.replace("GAMMA_INIT", ', init = "zeros"'), encoding="utf-8")
    assert np.array_equal(module_of(spec, tmp_path).init_params()["gamma"], np.zeros(6))


# ----- constant arithmetic ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr",
    ["0/0", "1/0", "log(0)", "log(-1)", "sqrt(-2)", "w @ x / (1 - 1)", "(-8)**0.5", "0**-1"],
)
def test_undefined_constants_are_spec_errors(
    expr: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, f'[forward]\nL = "(w @ x)**2 + {expr}"')
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    line = spec.read_text().splitlines().index(f'L = "(w @ x)**2 + {expr}"') + 1
    assert err.startswith(f"{spec}:{line}: error: L: "), err
    assert "internal error" not in err
    assert not out.exists()


def test_defined_constants_still_work(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, '[forward]\nL = "(w @ x)**2 * log(2) + sqrt(4) + 0 / 2"')
    mod = module_of(spec, tmp_path)
    x = np.ones((2, 3))
    loss, _ = mod.forward({"w": np.ones(3), "W": np.eye(3)}, {"x": x})
    assert loss == pytest.approx(9 * np.log(2) + 2)


# ----- a constant stage keeps the data's dtype --------------------------------------------------
def test_constant_stage_keeps_float32(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, '[forward]\nz = "0 * x"\nL = "sum(W @ x + z) + w @ x"')
    mod = module_of(spec, tmp_path)
    params = mod.init_params(dtype=np.float32)
    loss, cache = mod.forward(params, {"x": np.ones((2, 3), np.float32)})
    assert cache["z"].dtype == np.float32 and np.asarray(loss).dtype == np.float32
    grads = mod.backward(params, {"x": np.ones((2, 3), np.float32)}, cache)
    assert all(g.dtype == np.float32 for g in grads.values())


# ----- softplus and mish: backward as stable as forward -----------------------------------------
MISH = """[ops]
mish = { args = ["z"], expr = "z * tanh(softplus(z))" }
[forward]
a = "softplus(W @ x)"
L = "sum(a) + sum(mish(w * x))"
"""


@pytest.mark.parametrize(("dtype", "z"), [(np.float64, 800.0), (np.float32, 100.0)])
def test_softplus_and_mish_backward_at_large_z(tmp_path: Path, dtype: type, z: float) -> None:
    mod = module_of(write_spec(tmp_path, MISH), tmp_path)
    params = {"w": np.ones(3, dtype), "W": np.eye(3, dtype=dtype)}
    for sign in (1.0, -1.0):
        batch = {"x": np.full((2, 3), sign * z, dtype)}
        loss, grads = mod.loss_and_grad(params, batch)
        assert np.isfinite(loss)
        # softplus'(z) = sigmoid(z) and mish'(z) -> 1 (z -> inf), 0 (z -> -inf); times x = +-z
        want_w = z if sign > 0 else 0.0
        assert np.allclose(grads["w"], want_w, atol=1e-6), grads["w"]
        assert np.allclose(np.diag(grads["W"]), want_w, atol=1e-6), grads["W"]
        assert all(g.dtype == dtype for g in grads.values())


class _Softplus:
    """L = softplus(w . x); backward written as e^z/(1 + e^z) (``stable=False``) or stably."""

    NAME, LOSS, REDUCTION = "sp", "L", "mean"
    DIMS = {"d": 3}  # noqa: RUF012
    INPUTS = {"x": (("d",), "real")}  # noqa: RUF012
    PARAMS = {"w": ("d",)}  # noqa: RUF012

    def __init__(self, stable: bool) -> None:
        self.stable = stable

    def forward(self, params: dict, batch: dict) -> tuple:
        z = batch["x"] @ params["w"]
        L = np.logaddexp(0, z)
        return L.mean(), {"L": L, "z": z}

    def backward(self, params: dict, batch: dict, cache: dict, g_loss=None) -> dict:
        z = cache["z"]
        g = np.full_like(z, 1 / len(z)) if g_loss is None else g_loss
        s = 0.5 * (1 + np.tanh(z / 2)) if self.stable else np.exp(z) / (1 + np.exp(z))
        return {"w": (s * g) @ batch["x"]}


def test_check_probes_large_magnitudes() -> None:
    with np.errstate(all="ignore"):
        assert not large_magnitude_check(_Softplus(stable=False), {"d": 3}).ok
    assert large_magnitude_check(_Softplus(stable=True), {"d": 3}).ok


def test_check_reports_large_magnitudes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, MISH)
    assert main(["check", "--no-symbolic", str(spec)]) == 0
    assert "PASS: large magnitudes" in capsys.readouterr().out


def test_check_shrinks_huge_declared_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A declared size of 10**12 is checked at a small size (no attempt to allocate it)."""
    spec = write_spec(tmp_path, '[forward]\nL = "sum(tanh(W @ x + w))"')
    spec.write_text(spec.read_text(encoding="utf-8").replace("d = 3", "d = 1000000000000"))
    assert main(["check", "--json", str(spec)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["sizes"] == [
        "d = 1000000000000 is checked at d = 5 (sizes are symbolic)"
    ]
    assert set(report["params"]) == {"w", "W"}
