"""Emitted NumPy modules: deterministic, fresh, lint-clean, stable, dtype- and shape-correct."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from derive.pipeline import generate
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
NAMES = [p.stem for p in EXAMPLES]

# raise on every floating-point event that numpy warns about by default; an underflow to 0
# (e^-1000 inside a stable sigmoid or softmax) is the intended result, not a fault
STRICT = {"divide": "raise", "over": "raise", "invalid": "raise", "under": "ignore"}


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    """Every example freshly generated into a temporary folder and imported."""
    out = tmp_path_factory.mktemp("generated")
    return {p.stem: load_module(generate(p, out).path) for p in EXAMPLES}


def sizes(module: ModuleType, shape: tuple) -> tuple[int, ...]:
    return tuple(module.DIMS[d] if isinstance(d, str) else d for d in shape)


def make_batch(
    module: ModuleType, n: int, dtype: type = np.float64, seed: int = 0
) -> dict[str, np.ndarray]:
    """A batch of ``n`` examples that fits each input's declared shape and kind."""
    rng = np.random.default_rng(seed)
    batch = {}
    for name, (shape, kind) in module.INPUTS.items():
        full = (n, *sizes(module, shape))
        if kind == "one_hot":
            value = np.eye(full[-1])[rng.integers(0, full[-1], n)]
        elif kind == "probability":
            raw = rng.uniform(0.1, 1.0, full)
            value = raw / raw.sum(axis=-1, keepdims=True)
        elif kind == "binary":
            value = rng.integers(0, 2, full)
        else:
            value = rng.normal(size=full)
        batch[name] = np.asarray(value).astype(dtype)
    return batch


def run(module: ModuleType, params: dict, batch: dict) -> tuple[float, dict, dict]:
    with np.errstate(**STRICT):
        loss, cache = module.forward(params, batch)
        grads = module.backward(params, batch, cache)
    return loss, cache, grads


def header_line(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("Spec: ")]
    return line


# ---------------------------------------------------------------------------------------------
# determinism and freshness


@pytest.mark.parametrize("spec", EXAMPLES, ids=NAMES)
def test_generating_twice_gives_identical_text(spec: Path, tmp_path: Path) -> None:
    first = generate(spec, tmp_path, write=False).text
    second = generate(spec, tmp_path, write=False).text
    assert first == second
    assert not (tmp_path / f"{spec.stem}.py").exists()


def test_text_does_not_depend_on_the_hash_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    here = {p.stem: generate(p.relative_to(ROOT), tmp_path, write=False).text for p in EXAMPLES}
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from derive.pipeline import generate\n"
        "specs = sorted(Path('examples').glob('*.toml'))\n"
        "texts = {p.stem: generate(p, sys.argv[1], write=False).text for p in specs}\n"
        "sys.stdout.write(json.dumps(texts))\n"
    )
    seed = "2024" if os.environ.get("PYTHONHASHSEED") != "2024" else "7"
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout)
    assert set(there) == set(here)
    for name, text in here.items():
        assert there[name] == text, name


@pytest.mark.parametrize("spec", EXAMPLES, ids=NAMES)
def test_header_names_the_spec_and_its_sha256(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    rel = spec.relative_to(ROOT).as_posix()
    text = generate(rel, tmp_path, write=False).text
    digest = hashlib.sha256(spec.read_bytes()).hexdigest()[:16]
    assert header_line(text) == f"Spec: {rel} (sha256 {digest})"
    assert f"regenerate with `derive gen {rel}`" in text


def test_header_hash_follows_the_spec_bytes(tmp_path: Path) -> None:
    source = ROOT / "examples" / "toy_norm.toml"
    edited = tmp_path / "toy_norm.toml"
    edited.write_bytes(source.read_bytes() + b"# a trailing comment\n")
    before = header_line(generate(source, tmp_path, write=False).text)
    after = header_line(generate(edited, tmp_path, write=False).text)
    assert hashlib.sha256(edited.read_bytes()).hexdigest()[:16] in after
    assert after.split("(sha256 ")[1] != before.split("(sha256 ")[1]


@pytest.mark.parametrize("spec", EXAMPLES, ids=NAMES)
def test_committed_module_is_fresh(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    g = generate(spec.relative_to(ROOT), tmp_path, write=False)
    committed = ROOT / "generated" / g.path.name
    assert committed.is_file(), f"missing {committed}: run derive gen {spec.relative_to(ROOT)}"
    assert g.text == committed.read_text(encoding="utf-8"), f"stale {committed}"


def test_every_committed_module_has_an_example() -> None:
    assert sorted(p.stem for p in (ROOT / "generated").glob("*.py")) == NAMES


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_committed_modules_pass_ruff(command: list[str]) -> None:
    proc = subprocess.run(
        ["ruff", *command, "--no-cache", "generated/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_written_module_has_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = generate(ROOT / "examples" / "toy_norm.toml", tmp_path).path
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ---------------------------------------------------------------------------------------------
# numerical stability


def test_softmax_with_huge_logits_is_finite_and_exact(modules: dict[str, ModuleType]) -> None:
    m = modules["mlp_softmax"]
    params = m.init_params(seed=1)
    params["W2"] = params["W2"] * 1e4
    batch = make_batch(m, 6, seed=2)
    loss, cache, grads = run(m, params, batch)
    f = cache["f"]
    assert np.abs(f).max() > 1e3
    top = f.max(axis=1, keepdims=True)
    logsumexp = top[:, 0] + np.log(np.exp(f - top).sum(axis=1))
    expected = np.mean(logsumexp - (f * batch["t"]).sum(axis=1))
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-12)
    for name, g in grads.items():
        assert np.all(np.isfinite(g)), name


def test_logistic_with_large_logits_is_finite_and_exact(modules: dict[str, ModuleType]) -> None:
    m = modules["logistic"]
    params = {"w": np.array([1000.0, 0.0, 0.0]), "b": np.array(0.0)}
    x = np.array([[1.0, 0.5, 0.0], [-1.0, 0.0, 2.0], [1.0, 0.0, 0.0], [-1.0, 3.0, 0.0]])
    batch = {"x": x, "y": np.array([0.0, 1.0, 1.0, 0.0])}
    loss, cache, grads = run(m, params, batch)
    np.testing.assert_array_equal(cache["L"], [1000.0, 1000.0, 0.0, 0.0])
    assert loss == 500.0
    # dL/dz = yhat - y = (1, -1, 0, 0), averaged over 4 examples
    np.testing.assert_allclose(grads["w"], [0.5, 0.125, -0.5])
    assert grads["b"] == pytest.approx(0.0)


def test_saturated_sigmoid_does_not_warn(modules: dict[str, ModuleType]) -> None:
    m = modules["mlp_softmax"]
    params = m.init_params(seed=1)
    params["W1"] = np.zeros_like(params["W1"])
    params["b1"] = np.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0])
    batch = make_batch(m, 3, seed=4)
    loss, cache, grads = run(m, params, batch)
    np.testing.assert_array_equal(cache["h1"], np.tile([1.0, 0.0, 1.0, 0.0, 0.5], (3, 1)))
    assert np.isfinite(loss)
    for name, g in grads.items():
        assert np.all(np.isfinite(g)), name
    # h (1 - h) = 0 in the saturated units: no gradient reaches their bias
    np.testing.assert_array_equal(grads["b1"][:4], 0.0)
    assert grads["b1"][4] != 0.0


# ---------------------------------------------------------------------------------------------
# dtypes and shapes


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(modules: dict[str, ModuleType], name: str) -> None:
    m = modules[name]
    params = m.init_params(dtype=np.float32)
    for p, value in params.items():
        assert value.dtype == np.float32, p
    batch = make_batch(m, 5, dtype=np.float32)
    loss, cache, grads = run(m, params, batch)
    assert np.asarray(loss).dtype == np.float32
    for key, value in cache.items():
        assert np.asarray(value).dtype == np.float32, key
    assert set(grads) == set(m.PARAMS)
    for p, g in grads.items():
        assert np.asarray(g).dtype == np.float32, p


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 7])
def test_batch_first_shapes(modules: dict[str, ModuleType], name: str, n: int) -> None:
    m = modules[name]
    params = m.init_params(seed=3)
    for p, shape in m.PARAMS.items():
        assert params[p].shape == sizes(m, shape), p
    batch = make_batch(m, n, seed=5)
    loss, cache, grads = run(m, params, batch)
    assert np.ndim(loss) == 0
    assert cache[m.LOSS].shape == (n,)
    assert list(grads) == list(m.PARAMS)
    for p, g in grads.items():
        assert np.shape(g) == params[p].shape, p
        assert np.all(np.isfinite(g)), p


@pytest.mark.parametrize("name", NAMES)
def test_backward_reuses_forward_values(modules: dict[str, ModuleType], name: str) -> None:
    source = inspect.getsource(modules[name].backward)
    assert source.startswith("def backward(")
    for call in ("np.exp", "np.log", "np.tanh", "_sigmoid", "_softplus"):
        assert call not in source, call


@pytest.mark.parametrize("name", NAMES)
def test_g_loss_weights_the_per_example_losses(modules: dict[str, ModuleType], name: str) -> None:
    m = modules[name]
    params = m.init_params(seed=7)
    batch = make_batch(m, 4, seed=8)
    _, cache, default = run(m, params, batch)
    weight = 0.25 if m.REDUCTION == "mean" else 1.0
    with np.errstate(**STRICT):
        doubled = m.backward(params, batch, cache, g_loss=np.full(4, 2 * weight))
    for p in m.PARAMS:
        np.testing.assert_allclose(doubled[p], 2 * default[p], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# the toy graphs, by hand


def test_toy_sum_product(modules: dict[str, ModuleType]) -> None:
    m = modules["toy_sum_product"]
    assert m.REDUCTION == "sum"
    params = {"y": np.array(5.0), "z": np.array(-4.0)}
    loss, _, grads = run(m, params, {"x": np.array([-2.0])})
    assert loss == -12.0
    assert grads["y"] == -4.0
    assert grads["z"] == 3.0
    # a sum over the batch: two copies of the example count twice
    loss, _, grads = run(m, params, {"x": np.array([-2.0, -2.0])})
    assert loss == -24.0
    assert grads["y"] == -8.0
    assert grads["z"] == 6.0


def test_toy_norm_gradient_is_two_q_x_transposed(modules: dict[str, ModuleType]) -> None:
    m = modules["toy_norm"]
    rng = np.random.default_rng(6)
    W = rng.normal(size=(3, 3))
    x = rng.normal(size=3)
    loss, _, grads = run(m, {"W": W}, {"x": x[None, :]})
    q = W @ x
    assert loss == pytest.approx(q @ q, rel=1e-12)
    np.testing.assert_allclose(grads["W"], 2 * np.outer(q, x), rtol=1e-12)


def test_open_dims_are_none_in_the_module_and_init_asks_for_them(tmp_path: Path) -> None:
    spec = tmp_path / "open.toml"
    spec.write_text(
        (ROOT / "examples" / "mlp_softmax.toml").read_text().replace("d = 4", 'd = "any"')
    )
    mod = load_module(generate(spec, tmp_path).path)
    assert mod.DIMS == {"d": None, "h": 5, "k": 3}
    with pytest.raises(ValueError, match="no size for"):
        mod.init_params()
    assert mod.init_params(dims={"d": 7})["W1"].shape == (5, 7)
