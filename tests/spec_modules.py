"""Small specs written as text, generated and imported once per test session."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from types import ModuleType

from derive.pipeline import generate
from derive.verify.module import load_module

_DIR = Path(tempfile.mkdtemp(prefix="derive-test-specs-"))
_MODULES: dict[str, ModuleType] = {}


def spec_text(
    forward: str,
    *,
    dims: str = "d = 4",
    inputs: str = 'x = { shape = ["d"] }\nt = { shape = ["d"] }',
    params: str = 'w = { shape = ["d"] }',
    extra: str = "",
    loss: str = 'output = "L"',
) -> str:
    """A spec named after the hash of its own text (so that each has its own module file)."""
    body = (
        f"[dims]\n{dims}\n{extra}\n[inputs]\n{inputs}\n[params]\n{params}\n"
        f"[forward]\n{forward}\n[loss]\n{loss}\n"
    )
    name = "s_" + hashlib.sha256(body.encode()).hexdigest()[:12]
    return f'name = "{name}"\n{body}'


def module_of(text: str) -> ModuleType:
    """The generated module of a spec text (generated once per session)."""
    if text not in _MODULES:
        path = _DIR / (hashlib.sha256(text.encode()).hexdigest()[:16] + ".toml")
        path.write_text(text, encoding="utf-8")
        _MODULES[text] = load_module(generate(path, _DIR).path)
    return _MODULES[text]


def module(forward: str, **sections: str) -> ModuleType:
    """``module_of(spec_text(forward, **sections))``."""
    return module_of(spec_text(forward, **sections))
