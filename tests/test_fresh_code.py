"""Code generated now (not the committed files) is ruff-clean: every example and every op."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from spec_modules import spec_text
from test_op_values import CASES

from derive.pipeline import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
LONG_CALLS = {"arithmetic", "bce_with_logits", "binary_cross_entropy", "gelu", "matmul"}
LONG_REASON = (
    "a long call (np.sum(..., axis=-1) of a long sum) is written on one line: E501, and ruff "
    "format would split it"
)


def ruff_problems(path: Path) -> str:
    """ruff check and ruff format --check on one file with the project's settings."""
    out = []
    for command in (["check"], ["format", "--check"]):
        proc = subprocess.run(
            ["ruff", *command, "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode:
            out.append(proc.stdout + proc.stderr)
    return "\n".join(out)


def op_param(op: str):
    marks = [pytest.mark.xfail(strict=True, reason=LONG_REASON)] if op in LONG_CALLS else []
    return pytest.param(op, marks=marks)


pytestmark = pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_generated_afresh_is_ruff_clean(spec: Path, tmp_path: Path) -> None:
    assert ruff_problems(generate(spec, tmp_path).path) == ""


@pytest.mark.parametrize("op", [op_param(op) for op in sorted(CASES)])
def test_op_module_generated_afresh_is_ruff_clean(op: str, tmp_path: Path) -> None:
    case = CASES[op]
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(case.forward, params=case.params, extra=case.extra), "utf-8")
    assert ruff_problems(generate(spec, tmp_path).path) == ""
