"""``derive gen`` does only what gen needs: no NumPy, no LaTeX, no checker, no display."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from derive.cli import main
code = main(["gen", "-o", sys.argv[1], sys.argv[2]])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_gen_imports_only_what_it_needs(tmp_path: Path) -> None:
    spec = ROOT / "examples" / "mlp_softmax.toml"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["code"] == 0
    loaded = set(result["modules"])
    for heavy in ("numpy", "matplotlib", "derive.tex", "derive.verify", "derive.train"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in loaded), heavy
