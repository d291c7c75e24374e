"""What a new user meets on the command line: option values, output folders, spec names,
headers that do not depend on the working folder, and a demo that cleans up after itself."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import derive
from derive import cli
from derive.cli import main

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_softmax.toml"
MLP_TEXT = MLP.read_text(encoding="utf-8")


def spec_named(folder: Path, file: str, name: str) -> Path:
    """examples/mlp_softmax.toml saved as ``folder/file`` with ``name = NAME``."""
    path = folder / file
    path.write_text(MLP_TEXT.replace('name = "mlp_softmax"', f'name = "{name}"'), "utf-8")
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"derive {derive.__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--epochs", "0"],
        ["demo", "--epochs", "-3"],
        ["check", str(MLP), "--budget", "nan"],
        ["check", str(MLP), "--budget", "-1"],
        ["check", str(MLP), "--budget", "inf"],
        ["check", str(MLP), "--seed", "-1"],
    ],
    ids=lambda a: " ".join(a[-2:]),
)
def test_bad_option_values_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_output_onto_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "not_a_folder"
    target.write_text("keep me", encoding="utf-8")
    assert main(["gen", str(MLP), "-o", str(target)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "keep me"


def test_output_into_proc(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/self").exists():
        pytest.skip("no /proc")
    assert main(["gen", str(MLP), "-o", "/proc"]) == 2
    err = capsys.readouterr().err
    assert "cannot write there" in err and "internal error" not in err


def test_output_into_a_read_only_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """chmod does not stop root, so the folder's refusal is simulated where it happens."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refuse)
    out = tmp_path / "ro"
    assert main(["gen", str(MLP), "-o", str(out)]) == 2
    assert "Permission denied" in capsys.readouterr().err
    assert not any(out.iterdir())


def test_two_specs_with_one_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = spec_named(tmp_path, "a.toml", "net")
    b = spec_named(tmp_path, "b.toml", "net")
    out = tmp_path / "out"
    assert main(["gen", str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a.toml" in err and "b.toml" in err and 'name = "net"' in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["numpy", "os", "math", "derive", "sympy"])
def test_spec_name_that_shadows_a_module(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = spec_named(tmp_path, "s.toml", name)
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:1: error: spec name '{name}'"), err
    assert not out.exists()


@pytest.mark.parametrize("helper", ["max", "total", "size", "stop"])
def test_custom_op_cannot_take_a_helper_name(
    helper: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """softmax_cross_entropy uses max, l2 uses total, mean uses size, softmax uses stop."""
    text = MLP_TEXT.replace(
        "[forward]", f'[ops]\n{helper} = {{ args = ["a"], expr = "a + 1" }}\n\n[forward]'
    ).replace('L  = "-sum(t * log(p))"', 'L  = "softmax_cross_entropy(f, t) + mean(l2(W1) * f)"')
    spec = tmp_path / "s.toml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["gen", str(spec), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"'{helper}' in [ops]" in err
    assert not out.exists()


def test_gen_check_is_the_same_from_any_folder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = sorted(
        str(p.relative_to(ROOT / "examples")) for p in (ROOT / "examples").glob("*.toml")
    )
    monkeypatch.chdir(ROOT / "examples")
    assert main(["gen", "--check", *specs, "-o", "../generated"]) == 0, capsys.readouterr().err


def test_header_outside_a_checkout_names_the_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from derive.pipeline import generate

    (tmp_path / "deep").mkdir()
    spec = spec_named(tmp_path / "deep", "x.toml", "net")
    monkeypatch.chdir(tmp_path)
    first = generate(spec, tmp_path / "o1", write=False).text
    monkeypatch.chdir(tmp_path / "deep")
    second = generate(Path("x.toml"), tmp_path / "o1", write=False).text
    assert first == second
    assert "Spec: x.toml (sha256" in first


def test_demo_leaves_nothing_in_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--epochs", "2"]) == 0
    assert "loss" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
