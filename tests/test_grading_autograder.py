"""derive autograder: the bundle installs and grades in a root laid out as Gradescope's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from grading_samples import GOOD

from derive.cli import main
from derive.grading import sandbox

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_softmax.toml"


def gradescope_root(tmp_path: Path, bundle: Path, files: dict[str, str]) -> Path:
    """/autograder as Gradescope lays it out: source/ (the unzipped bundle), submission/."""
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
    for name in ("setup.sh", "run_autograder"):
        os.chmod(root / "source" / name, 0o755)  # Gradescope keeps the modes; extractall does not
    (root / "submission").mkdir()
    for name, text in files.items():
        (root / "submission" / name).write_text(text, encoding="utf-8")
    (root / "results").mkdir()
    return root


def run_autograder(root: Path, env: dict[str, str]) -> dict:
    # Gradescope copies run_autograder to /autograder/ and runs it from there
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    done = subprocess.run(
        [str(root / "run_autograder")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text())


@pytest.mark.slow
def test_bundle_installs_and_grades_like_gradescope(tmp_path, capsys):
    bundle = tmp_path / "autograder.zip"
    args = ["autograder", str(MLP), "-o", str(bundle), "--map", "x=X", "--timeout", "10"]
    assert main(args) == 0, capsys.readouterr().err
    names = zipfile.ZipFile(bundle).namelist()
    assert {"setup.sh", "run_autograder", "mlp_softmax.toml"} <= set(names)
    assert any(n.startswith("derive-") and n.endswith(".whl") for n in names)
    renamed = GOOD.replace("def backward(x, t,", "def backward(X, t,").replace(
        "    m = x.shape[0]\n", "    x = X\n    m = x.shape[0]\n"
    )
    root = gradescope_root(tmp_path, bundle, {"hw.py": renamed})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "AUTOGRADER_ROOT": str(root),
        "DERIVE_SKIP_APT": "1",
        "PYTHON": sys.executable,
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_"))},
    }
    setup = subprocess.run(
        ["bash", str(root / "source" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root / "source",
    )
    assert setup.returncode == 0, setup.stderr
    assert (root / "venv" / "bin" / "derive").exists()

    result = run_autograder(root, env)
    assert result["score"] == result["max_score"] == 4.0, result
    assert [t["name"] for t in result["tests"]] == ["dL/dW1", "dL/db1", "dL/dW2", "dL/db2"]

    # a wrong submission, and one that tries to overwrite the results file: graded as usual
    (root / "submission" / "hw.py").write_text(
        renamed.replace('"b2": gf.sum(0)', '"b2": -gf.sum(0)').replace(
            "    x = X\n",
            f"    x = X\n    open({str(root / 'results' / 'results.json')!r}, 'w').write('{{}}')\n",
        ),
        encoding="utf-8",
    )
    result = run_autograder(root, env)
    if sandbox.bwrap_status()[0]:
        assert result["score"] == 0.0  # crashed: the results folder is not in the sandbox
    assert result["tests"]  # whatever it wrote, the grader's results file replaced it
    (root / "submission" / "hw.py").write_text(
        renamed.replace('"b2": gf.sum(0)', '"b2": -gf.sum(0)'), encoding="utf-8"
    )
    result = run_autograder(root, env)
    assert result["score"] == 3.0 and "sign flipped" in result["tests"][3]["output"]

    # derive broken: run_autograder still leaves a results file that says so
    shutil.rmtree(root / "venv")
    result = run_autograder(root, env)
    assert result["score"] == 0 and "autograder failed" in result["output"]


def test_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "a.zip"
    assert main(["autograder", str(tmp_path / "none.toml"), "-o", str(out)]) == 2
    assert main(["autograder", str(MLP), "-o", str(out), "--map", "zz=x"]) == 2
    assert main(["autograder", str(MLP), "-o", str(tmp_path / "a.txt")]) == 2
    assert main(["autograder", str(MLP), "-o", str(out), "--wheel", str(tmp_path / "x.whl")]) == 2
    assert not out.exists()
    assert "Traceback" not in capsys.readouterr().err
