"""``derive autograder``: a Gradescope autograder bundle for one spec.

The zip holds, at its top level (Gradescope unpacks it into ``/autograder/source``):

- ``setup.sh``: installs bubblewrap and Python with apt-get, makes ``/autograder/venv`` and
  installs derive there from the wheel in the bundle;
- ``run_autograder``: ``derive verify code`` on ``/autograder/submission`` with the options
  given here, writing ``/autograder/results/results.json`` (Gradescope's format, one test per
  gradient); if derive itself fails it still writes a results file that says so;
- the spec and derive's wheel.

Both scripts take their root from ``AUTOGRADER_ROOT`` (default ``/autograder``), so the bundle
can be run in a temporary folder laid out as Gradescope lays it out.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import derive
from derive.emit.templating import render_template
from derive.grading.code import BadInput

SCRIPTS = {"setup.sh": "autograder_setup.sh.j2", "run_autograder": "autograder_run.sh.j2"}


def project_root() -> Path | None:
    """The source checkout derive is imported from, when it is one (pyproject.toml beside)."""
    root = Path(derive.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "setup.py").is_file() else None


def build_wheel(dest: Path) -> Path:
    """``pip wheel --no-deps`` of the checkout derive runs from, into ``dest``."""
    root = project_root()
    if root is None:
        raise BadInput(
            "derive is not running from a source checkout, so its wheel cannot be built here; "
            "pass --wheel derive-VERSION-py3-none-any.whl (pip wheel --no-deps in derive's source)"
        )
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dest)]
    done = subprocess.run([*cmd, str(root)], capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("derive-*.whl"))
    if done.returncode != 0 or not wheels:
        raise BadInput(f"building derive's wheel failed:\n{done.stderr.strip()[-2000:]}")
    return wheels[-1]


def options(entry: str, mapping: str | None, cases: int, seed: int, timeout: float) -> str:
    """The ``verify code`` options baked into run_autograder, shell-quoted."""
    parts = ["--entry", entry, "--cases", str(cases), "--seed", str(seed)]
    parts += ["--timeout", f"{timeout:g}"]
    if mapping:
        parts += ["--map", mapping]
    return " ".join(shlex.quote(p) for p in parts)


def write_bundle(
    spec: Path,
    out: Path,
    *,
    entry: str = "backward",
    mapping: str | None = None,
    cases: int = 3,
    seed: int = 0,
    timeout: float = 20.0,
    wheel: Path | None = None,
) -> list[str]:
    """Write the zip to ``out`` (atomically); return the names it holds."""
    with tempfile.TemporaryDirectory(prefix="derive-autograder-") as tmp:
        if wheel is None:
            wheel = build_wheel(Path(tmp))
        elif not wheel.is_file():
            raise BadInput(f"--wheel {wheel}: no such file")
        spec_name = spec.name
        context = {
            "wheel": wheel.name,
            "spec": spec_name,
            "options": options(entry, mapping, cases, seed, timeout),
        }
        partial = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, template in SCRIPTS.items():
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o755 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, render_template(template, **context))
            z.write(spec, spec_name)
            z.write(wheel, wheel.name)
            names = z.namelist()
        os.replace(partial, out)
    return names
