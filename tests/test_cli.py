"""The command line: error reports for bad specs, gen --check, check --json and show --json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.cli import main
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_softmax.toml"
MLP_TEXT = MLP.read_text(encoding="utf-8")


def derive_script() -> str:
    """The installed ``derive`` console script, next to this interpreter when possible."""
    beside = Path(sys.executable).with_name("derive")
    if beside.is_file():
        return str(beside)
    found = shutil.which("derive")
    assert found is not None, "the derive console script is not installed"
    return found


def variant(tmp_path: Path, old: str, new: str, name: str = "bad.toml") -> Path:
    """examples/mlp_softmax.toml with the one occurrence of ``old`` replaced by ``new``."""
    assert MLP_TEXT.count(old) == 1, old
    path = tmp_path / name
    path.write_text(MLP_TEXT.replace(old, new), encoding="utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    """1-based number of the only line of ``path`` that contains ``text``."""
    hits = [n for n, ln in enumerate(path.read_text().splitlines(), 1) if text in ln]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def error_parts(stderr: str, path: Path) -> tuple[int | None, str, str]:
    """(line, message, hint) of one ``FILE[:LINE]: error: MESSAGE`` report on ``path``."""
    assert "Traceback" not in stderr
    first, _, rest = stderr.partition("\n")
    m = re.fullmatch(re.escape(str(path)) + r"(?::(\d+))?: error: (.+)", first)
    assert m is not None, stderr
    hint = re.search(r"^  hint: (.+)", rest, flags=re.MULTILINE)
    assert hint is not None, stderr
    line = int(m.group(1)) if m.group(1) else None
    return line, m.group(2), hint.group(1) + rest[hint.end() :]


# ---------------------------------------------------------------------------------------------
# bad input: exit 2, one located message with a hint, nothing written

# (id, old line, new text, marker of the expected error line(s), in message, in hint)
BAD = [
    (
        "malformed_toml",
        'h1 = "sigmoid(z1)"',
        'h1 = "sigmoid(z1)',
        ['h1 = "sigmoid(z1)'],
        ["TOML"],
        ["quote"],
    ),
    (
        "unknown_op",
        'h1 = "sigmoid(z1)"',
        'h1 = "sigmod(z1)"',
        ['h1 = "sigmod(z1)"'],
        ["sigmod"],
        ["'sigmoid'"],
    ),
    (
        "unknown_name",
        'f  = "W2 @ h1 + b2"',
        'f  = "W2 @ h_1 + b2"',
        ['f  = "W2 @ h_1 + b2"'],
        ["'h_1'"],
        ["did you mean 'h1'"],
    ),
    (
        "shape_mismatch",
        'x = { shape = ["d"] }',
        'x = { shape = ["k"] }',
        ['z1 = "W1 @ x + b1"'],
        ["(h, d)", "(k)"],
        ["transpose"],
    ),
    (
        "cycle",
        'z1 = "W1 @ x + b1"',
        'z1 = "W1 @ x + b1"\na = "b + x"\nb = "a"',
        ['a = "b + x"', 'b = "a"'],
        ["cycle"],
        ["defined"],
    ),
    (
        "non_scalar_loss",
        'L  = "-sum(t * log(p))"',
        'L  = "-t * log(p)"',
        ['L  = "-t * log(p)"', 'output = "L"'],
        ["scalar", "(k)"],
        ["sum("],
    ),
    (
        "loss_reads_no_input",
        'L  = "-sum(t * log(p))"',
        'L  = "sum(W2 * W2) + 1"',
        ['L  = "sum(W2 * W2) + 1"'],
        ["reads no input", "every example"],
        ["penalty"],
    ),
    (
        "argmax_on_loss_path",
        'p  = "softmax(f)"',
        'p  = "softmax(f) + argmax(f)"',
        ['p  = "softmax(f) + argmax(f)"'],
        ["argmax", "derivative"],
        ["softmax"],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "markers", "in_message", "in_hint"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_spec_is_reported_and_nothing_written(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    markers: list[str],
    in_message: list[str],
    in_hint: list[str],
) -> None:
    spec = variant(tmp_path, old, new)
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    line, message, hint = error_parts(captured.err, spec)
    assert line in {line_of(spec, m) for m in markers}
    for word in in_message:
        assert word in message
    for word in in_hint:
        assert word in hint
    assert_nothing_written(out)


def test_missing_loss_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    section = '[loss]\noutput = "L"\nreduction = "mean"     # over the batch; "sum" also allowed\n'
    spec = variant(tmp_path, section, "")
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    _, message, hint = error_parts(captured.err, spec)
    assert "[loss]" in message
    assert "[loss]" in hint
    assert 'output = "L"' in hint
    assert_nothing_written(out)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "no_such_spec.toml"
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    line, _, hint = error_parts(captured.err, spec)
    assert line is None
    assert "path" in hint
    assert_nothing_written(out)


@pytest.mark.parametrize("command", ["check", "show"])
def test_other_commands_report_bad_specs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    spec = variant(tmp_path, 'h1 = "sigmoid(z1)"', 'h1 = "sigmod(z1)"')
    assert main([command, str(spec)]) == 2
    captured = capsys.readouterr()
    line, _, hint = error_parts(captured.err, spec)
    assert line == line_of(spec, "sigmod")
    assert "'sigmoid'" in hint


def test_console_script_reports_bad_spec(tmp_path: Path) -> None:
    spec = variant(tmp_path, 'h1 = "sigmoid(z1)"', 'h1 = "sigmod(z1)"')
    out = tmp_path / "out"
    proc = subprocess.run(
        [derive_script(), "gen", str(spec), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    line, message, hint = error_parts(proc.stderr, spec)
    assert line == line_of(spec, "sigmod")
    assert "sigmod" in message
    assert "did you mean 'sigmoid'?" in hint
    assert_nothing_written(out)


def test_argmax_off_the_loss_path_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = variant(
        tmp_path, 'L  = "-sum(t * log(p))"', 'L  = "-sum(t * log(p))"\npred = "argmax(f)"'
    )
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 0, capsys.readouterr().err
    assert (out / "mlp_softmax.py").is_file()


def test_gen_writes_nothing_when_any_spec_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = variant(tmp_path, 'h1 = "sigmoid(z1)"', 'h1 = "sigmod(z1)"')
    out = tmp_path / "out"
    assert main(["gen", str(ROOT / "examples" / "logistic.toml"), str(bad), "-o", str(out)]) == 2
    capsys.readouterr()
    assert_nothing_written(out)


# ---------------------------------------------------------------------------------------------
# gen and gen --check


def test_gen_check_detects_missing_and_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    target = out / "mlp_softmax.py"

    assert main(["gen", "--check", str(MLP), "-o", str(out)]) == 1
    assert "stale" in capsys.readouterr().err
    assert not out.exists()

    assert main(["gen", str(MLP), "-o", str(out)]) == 0
    assert "written" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["mlp_softmax.py"]
    fresh = target.read_text(encoding="utf-8")

    assert main(["gen", "--check", str(MLP), "-o", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["gen", str(MLP), "-o", str(out)]) == 0
    assert "unchanged" in capsys.readouterr().out

    edited = fresh.replace("import numpy as np", "import numpy as np  # edited by hand")
    assert edited != fresh
    target.write_text(edited, encoding="utf-8")
    assert main(["gen", "--check", str(MLP), "-o", str(out)]) == 1
    assert str(target) in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == edited
    assert sorted(p.name for p in out.iterdir()) == ["mlp_softmax.py"]

    assert main(["gen", str(MLP), "-o", str(out)]) == 0
    assert target.read_text(encoding="utf-8") == fresh


def test_gen_check_fails_when_one_of_several_files_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    logistic = ROOT / "examples" / "logistic.toml"
    assert main(["gen", str(MLP), "-o", str(out)]) == 0
    assert main(["gen", "--check", str(MLP), str(logistic), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "logistic.py" in err
    assert "mlp_softmax.py" not in err
    assert sorted(p.name for p in out.iterdir()) == ["mlp_softmax.py"]


# ---------------------------------------------------------------------------------------------
# check --json


def check_json_is_valid(data: dict) -> None:
    assert data["ok"] is True
    assert set(data["params"]) == {"W1", "b1", "W2", "b2"}
    for name, entry in data["params"].items():
        assert set(entry) == {"ok", "max_abs_err", "max_rel_err", "allowance_used"}, name
        assert entry["ok"] is True, name
        assert isinstance(entry["max_abs_err"], float), name
        assert isinstance(entry["max_rel_err"], float), name
        assert 0.0 <= entry["max_abs_err"] < 1e-5, name


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(MLP), "--json"]) == 0
    check_json_is_valid(json.loads(capsys.readouterr().out))


def test_check_json_from_console_script() -> None:
    proc = subprocess.run(
        [derive_script(), "check", str(MLP), "--json", "--no-symbolic"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    check_json_is_valid(json.loads(proc.stdout))


# ---------------------------------------------------------------------------------------------
# show --json


def show(spec: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["show", str(spec), "--json", "--full"]) == 0
    return json.loads(capsys.readouterr().out)["nodes"]


def test_show_softmax_cross_entropy_gives_p_minus_t(capsys: pytest.CaptureFixture[str]) -> None:
    nodes = show(MLP, capsys)
    p, t = sp.symbols("p t")
    adjoint = sp.sympify(nodes["f"]["adjoint"], locals={"p": p, "t": t})
    assert sp.expand(adjoint - (p - t)) == 0


def test_show_sigmoid_adjoint_is_staged_as_h_one_minus_h(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nodes = show(MLP, capsys)
    h1, g_h1 = sp.symbols("h1 g_h1")
    staged = sp.sympify(nodes["z1"]["staged"], locals={"h1": h1, "g_h1": g_h1})
    assert sp.expand(staged - g_h1 * h1 * (1 - h1)) == 0


def real_target_spec(tmp_path: Path) -> Path:
    return variant(
        tmp_path,
        't = { shape = ["k"], kind = "one_hot" }',
        't = { shape = ["k"], kind = "real" }',
        "mlp_real.toml",
    )


def test_show_real_target_keeps_the_sum_of_t(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = real_target_spec(tmp_path)
    assert main(["gen", str(spec), "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    nodes = show(spec, capsys)
    p, t = sp.IndexedBase("p"), sp.IndexedBase("t")
    text = nodes["f"]["adjoint"]
    assert text != "p - t"
    adjoint = sp.sympify(text, locals={"p": p, "t": t})
    sums_of_t = [s for s in adjoint.atoms(sp.Sum) if s.function.has(t) and not s.function.has(p)]
    assert sums_of_t, text
    # with sum(t) = 1 (the one-hot case) it would reduce to p - t
    reduced = adjoint.xreplace(dict.fromkeys(sums_of_t, sp.S.One))
    (p_entry,) = [a for a in reduced.atoms(sp.Indexed) if a.base == p]
    (t_entry,) = [a for a in reduced.atoms(sp.Indexed) if a.base == t]
    assert sp.expand(reduced - (p_entry - t_entry)) == 0


def test_gen_real_target_code_uses_the_sum_of_t(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["gen", str(real_target_spec(tmp_path)), "-o", str(out)]) == 0
    capsys.readouterr()
    module = load_module(out / "mlp_softmax.py")
    assert module.INPUTS["t"] == (("k",), "real")
    rng = np.random.default_rng(3)
    params = module.init_params(seed=1)
    batch = {"x": rng.normal(size=(5, 4)), "t": rng.uniform(0.2, 2.0, size=(5, 3))}
    _, cache = module.forward(params, batch)
    grads = module.backward(params, batch, cache)
    p = cache["p"]
    expected_g_f = (p * batch["t"].sum(axis=1, keepdims=True) - batch["t"]) / 5
    np.testing.assert_allclose(grads["b2"], expected_g_f.sum(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads["W2"], expected_g_f.T @ cache["h1"], rtol=1e-12, atol=1e-14)
    assert not np.allclose(grads["b2"], (p - batch["t"]).sum(axis=0) / 5)


def test_unused_parameter_warns_and_gets_a_zero_gradient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = variant(
        tmp_path, 'b2 = { shape = ["k"] }', 'b2 = { shape = ["k"] }\nW3 = { shape = ["k", "k"] }'
    )
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 0
    assert "does not depend on 'W3'" in capsys.readouterr().err
    mod = load_module(out / "mlp_softmax.py")
    params = mod.init_params(0)
    batch = {"x": np.ones((2, 4)), "t": np.eye(3)[[0, 2]]}
    grads = mod.loss_and_grad(params, batch)[1]
    assert grads["W3"].shape == (3, 3) and not grads["W3"].any()
