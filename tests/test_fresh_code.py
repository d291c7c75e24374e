"""Code generated now (not the committed files) is ruff-clean: every example and every op."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from spec_modules import spec_text
from test_op_values import CASES

from derive.emit.numpy_module import Line
from derive.pipeline import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def ruff_problems(path: Path, commands=(["check"], ["format", "--check"])) -> str:
    """ruff check and ruff format --check on one file with the project's settings."""
    out = []
    for command in commands:
        proc = subprocess.run(
            ["ruff", *command, "--no-cache", "--config", str(ROOT / "pyproject.toml"), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode:
            out.append(proc.stdout + proc.stderr)
    return "\n".join(out)


pytestmark = pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_generated_afresh_is_ruff_clean(spec: Path, tmp_path: Path) -> None:
    assert ruff_problems(generate(spec, tmp_path).path) == ""


@pytest.mark.parametrize("op", sorted(CASES))
def test_op_module_generated_afresh_is_ruff_clean(op: str, tmp_path: Path) -> None:
    case = CASES[op]
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text(case.forward, params=case.params, extra=case.extra), "utf-8")
    assert ruff_problems(generate(spec, tmp_path).path) == ""


BCE_BACKWARD = (
    "np.sum((sigmoid.T**2 * t.T + (1 - sigmoid.T) * sigmoid.T * t.T + sigmoid.T - (1 - sigmoid.T)"
    " * t.T - sigmoid.T * t.T - sigmoid.T**2) * g_L / (1 - sigmoid.T), axis=-1)"
)


@pytest.mark.parametrize(
    "code",
    [
        BCE_BACKWARD,
        f'a_long_name * ({BCE_BACKWARD}) ** 2 + np.einsum("ab,ab->b", g_y, x)',
        f"-f({BCE_BACKWARD}, {BCE_BACKWARD}) - (x.T[:, None, :] + 1)",
    ],
)
def test_long_line_is_broken_as_ruff_format_breaks_it(code: str, tmp_path: Path) -> None:
    lines = Line("g_w", code, shape="(d,)").source()
    assert max(len(s) for s in lines) <= 100
    path = tmp_path / "m.py"
    path.write_text("import numpy as np\n\n\ndef f(x):\n" + "\n".join(lines) + "\n", "utf-8")
    assert ruff_problems(path, commands=(["format", "--check"],)) == ""
    joined = "".join(s.strip() for s in lines).replace("# (d,)", "").replace(" ", "")
    assert joined.replace(",)", ")") == f"g_w=({code})".replace(" ", "")
