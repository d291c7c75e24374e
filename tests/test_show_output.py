"""What ``derive show`` prints: staged forms in the user's names, in the taught factor order,
without noise, and in time that does not explode with depth."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from derive import show
from derive.cli import main
from derive.pipeline import derive_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORD = re.compile(r"[A-Za-z_]\w*")


@contextmanager
def bounded(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: what used to take minutes must not come back."""

    def stop(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def shown(spec: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["show", str(spec), *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("spec", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_show_has_no_noise_and_no_internals(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = shown(spec, capsys)
    d = derive_spec(spec)
    loss = d.graph.loss.name
    assert f"dL/d{loss} =" not in text
    for name in d.graph.params:
        assert f"{name} = {name}\n" not in text
        assert f"dL/d{name} = g_{name} = " in text
    for name in d.graph.inputs:
        assert f"dL/d{name} " not in text
    staged = {w for ln in text.splitlines() if ln.startswith("  dL/d") for w in WORD.findall(ln)}
    declared = {*d.graph.dims, *d.graph.params, *d.graph.inputs, *d.graph.constants}
    inner = {n.name for n in d.graph.nodes if not n.user} - staged - declared
    inner |= {f"g_{n}" for n in inner}
    for line in text.splitlines():
        if line.startswith("    ") and "chain rule through" not in line:
            assert not inner & set(WORD.findall(line)), line


def test_show_writes_the_taught_factor_order(capsys: pytest.CaptureFixture[str]) -> None:
    text = shown(EXAMPLES / "mlp_softmax.toml", capsys)
    assert "dL/dz1 = g_z1 = g_h1*h1*(1 - h1)\n" in text
    assert "in its output: exp(-z1)/(1 + exp(-z1))**2 = h1*(1 - h1)\n" in text


def test_show_softmax_steps_reach_p_minus_t_in_user_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = shown(EXAMPLES / "mlp_batchnorm.toml", capsys)
    block = text.split("\nf = ", 1)[1].split("\n\n", 1)[0]
    assert "dL/df = g_f = p - t" in block
    assert "(chain rule through the values softmax computes inside)" in block
    assert "fold into p: p - t" in block


def test_show_full_writes_adjoints_out(capsys: pytest.CaptureFixture[str]) -> None:
    text = shown(EXAMPLES / "mlp_softmax.toml", capsys, "--full")
    assert "  dL/df = p - t\n" in text
    assert "    staged: g_z1 = g_h1*h1*(1 - h1)\n" in text


def test_show_full_stays_within_its_budget(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A budget of zero leaves every adjoint staged, with a note, and still succeeds."""
    text = shown(EXAMPLES / "mlp4_sigmoid.toml", capsys, "--full", "--budget", "0")
    assert "(not written out: past the 0 s budget or too large; the staged form is exact)" in text
    assert "staged: g_h1 = " in text


def test_show_staged_writes_nothing_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default never substitutes adjoints into each other (exponential in depth)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("full_adjoint called")

    monkeypatch.setattr(show, "full_adjoint", refuse)
    text = show.show_text(derive_spec(EXAMPLES / "mlp4_sigmoid.toml"))
    assert "dL/dW1 = g_W1 = " in text


def deep_spec(tmp_path: Path, layers: int) -> Path:
    """``layers`` sigmoid layers written nested in one line: tanh(W @ tanh(...))."""
    body = "x"
    for k in range(1, layers + 1):
        body = f"sigmoid(W{k} @ {body} + b{k})"
    params = "\n".join(
        f'W{k} = {{ shape = ["d", "d"] }}\nb{k} = {{ shape = ["d"] }}' for k in range(1, layers + 1)
    )
    text = f"""name = "deep"
[dims]
d = 3
[inputs]
x = {{ shape = ["d"] }}
[params]
{params}
[forward]
h = "{body}"
L = "sum(h)"
[loss]
output = "L"
"""
    path = tmp_path / "deep.toml"
    path.write_text(text, encoding="utf-8")
    return path


def nested_tanh(tmp_path: Path, depth: int) -> Path:
    path = tmp_path / "nested.toml"
    path.write_text(
        f"""name = "nested"
[dims]
d = 3
[inputs]
x = {{ shape = ["d"] }}
[params]
w = {{ shape = ["d"] }}
[forward]
L = "{"tanh(" * depth}w @ x{")" * depth}"
[loss]
output = "L"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_show_of_deep_nets_is_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with bounded(120):
        assert main(["show", str(nested_tanh(tmp_path, 16)), "--json"]) == 0
        text = shown(deep_spec(tmp_path, 8), capsys, "--full", "--budget", "2")
    assert "dL/dW1" in text


@pytest.mark.parametrize("spec", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_adjoint_a_shown_line_reads_is_shown(
    spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``g_W1 = Σ g_z_h x`` reads ``g_z_h``: the unnamed ``z_h`` of ``relu(x @ W1 + b1)`` is
    shown with where it sits, so no adjoint is left unexplained."""
    text = shown(spec, capsys)
    defined = {m.group(1) for m in re.finditer(r"^  dL/d\w+ = (g_\w+) = ", text, re.M)}
    read = {w for ln in text.splitlines() if ln.startswith("  dL/d") for w in WORD.findall(ln)}
    d = derive_spec(spec)
    adjoints = {f"g_{n.name}" for n in d.graph.nodes} - {f"g_{d.graph.loss.name}"}
    assert read & adjoints <= defined, sorted(read & adjoints - defined)


def test_an_unnamed_argument_says_where_it_sits(capsys: pytest.CaptureFixture[str]) -> None:
    text = shown(EXAMPLES / "regression_rows.toml", capsys)
    assert "z_h: the argument of relu in h = relu(x @ W1 + b1)\n" in text
