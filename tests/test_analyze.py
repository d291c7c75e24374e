"""derive analyze: parameter counts as formulas and numbers, gradient flow at initialization."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from derive.cli import main
from derive.pipeline import load_graph
from derive.train.analyze import parameter_count

ROOT = Path(__file__).resolve().parents[1]
DEPTH = ROOT / "examples" / "depth"


def _mlp_spec(tmp_path: Path, sizes: dict[str, int | str], biases: bool, hidden: int = 1) -> Path:
    """d -> H (hidden times) -> K, sigmoid units, softmax cross-entropy."""
    dims = "\n".join(
        f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"' for k, v in sizes.items()
    )
    params, forward, prev = [], [], "x"
    for layer in range(1, hidden + 2):
        rows = "K" if layer == hidden + 1 else "H"
        cols = "d" if layer == 1 else "H"
        params.append(f'W{layer} = {{ shape = ["{rows}", "{cols}"] }}')
        bias = f" + b{layer}" if biases else ""
        if biases:
            params.append(f'b{layer} = {{ shape = ["{rows}"] }}')
        if layer <= hidden:
            forward.append(f'h{layer} = "sigmoid(W{layer} @ {prev}{bias})"')
            prev = f"h{layer}"
        else:
            forward.append(f'f = "W{layer} @ {prev}{bias}"')
    text = "\n".join(
        [
            'name = "net"',
            "[dims]",
            dims,
            "[inputs]",
            'x = { shape = ["d"] }',
            't = { shape = ["K"], kind = "one_hot" }',
            "[params]",
            *params,
            "[forward]",
            *forward,
            'L = "softmax_cross_entropy(f, t)"',
            "[loss]",
            'output = "L"',
        ]
    )
    path = tmp_path / "net.toml"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_one_hidden_layer_count_is_the_lecture_formula(tmp_path) -> None:
    count = parameter_count(load_graph(_mlp_spec(tmp_path, {"d": 784, "H": 256, "K": 10}, True)))
    assert count.formula == "(d+1)H + (H+1)K"
    assert count.latex == r"\left(d + 1\right) H + \left(H + 1\right) K"
    assert count.number == 203_530
    no_bias = parameter_count(load_graph(_mlp_spec(tmp_path, {"d": 784, "H": 256, "K": 10}, False)))
    assert no_bias.formula == "dH + HK" and no_bias.number == 203_264


def test_deep_bias_free_count_collects_equal_layers(tmp_path) -> None:
    """L hidden layers of width H, no biases: d H + (L - 1) H² + H K."""
    spec = _mlp_spec(tmp_path, {"d": 5, "H": 7, "K": 3}, False, hidden=4)
    count = parameter_count(load_graph(spec))
    assert count.formula == "dH + 3H² + HK"
    assert count.number == 5 * 7 + 3 * 7 * 7 + 7 * 3


def test_open_sizes_give_a_formula_without_a_number(tmp_path) -> None:
    spec = _mlp_spec(tmp_path, {"d": 4, "H": "any", "K": 3}, True)
    count = parameter_count(load_graph(spec))
    assert count.formula == "(d+1)H + (H+1)K" and count.number is None


def test_batch_norm_scale_and_shift_form_their_own_group() -> None:
    count = parameter_count(load_graph(ROOT / "examples" / "mlp_batchnorm.toml"))
    assert [g.params for g in count.groups] == [("W1",), ("gamma", "beta"), ("W2", "b2")]
    assert count.formula == "dh + 2h + (h+1)k" and count.number == 4 * 5 + 2 * 5 + 6 * 3


@pytest.fixture(scope="module")
def deep_flow() -> dict:
    specs = sorted(str(p) for p in DEPTH.glob("*.toml"))
    assert len(specs) == 5
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", *specs, "--json"]) == 0
    result = json.loads(out.getvalue())
    return {s["name"]: [f["norm"] for f in s["gradient_flow"]] for s in result["specs"]}


@pytest.mark.slow
def test_sigmoid_gradients_vanish_towards_the_input(deep_flow) -> None:
    sig = deep_flow["deep_sigmoid"]
    assert len(sig) == 9
    assert sig[0] / sig[-1] < 1e-3
    assert all(a < b for a, b in itertools.pairwise(sig))  # shrinking layer by layer


@pytest.mark.slow
def test_relu_residual_and_batch_norm_keep_gradients_alive(deep_flow) -> None:
    for name in ("deep_relu", "deep_tanh", "deep_batchnorm", "deep_residual"):
        norms = deep_flow[name]
        assert norms[0] / norms[-1] > 1e-2, name
    sig, bn = deep_flow["deep_sigmoid"], deep_flow["deep_batchnorm"]
    assert bn[0] > 1e3 * sig[0]  # the same sigmoid units, batch-normalized


def test_analyze_text_and_plot(tmp_path, capsys) -> None:
    plot = tmp_path / "flow.png"
    spec = ROOT / "examples" / "mlp_softmax.toml"
    assert main(["analyze", str(spec), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mlp_softmax: (d+1)h + (h+1)k = 43 parameters")
    assert "||dL/dW|| per layer, input first" in out
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [r[:3] for r in rows] == [["1", "z1", "W1"], ["2", "f", "W2"]]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_analyze_needs_sizes(tmp_path, capsys) -> None:
    spec = _mlp_spec(tmp_path, {"d": 4, "H": "any", "K": 3}, True)
    assert main(["analyze", str(spec)]) == 2
    assert "no size for H" in capsys.readouterr().err
    assert main(["analyze", str(spec), "--dim", "H=6", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["specs"][0]["parameters"]["count"] is None
    assert len(result["specs"][0]["gradient_flow"]) == 2
