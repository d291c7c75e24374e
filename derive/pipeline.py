"""The whole pipeline as plain functions: spec → graph → derivation → code → check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from derive.autodiff.adjoint import Derivation
from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.emit.templating import write_atomic
from derive.graph.builder import graph_from_spec
from derive.graph.nodes import Graph
from derive.lang.spec import load_spec


def load_graph(path: str | Path) -> Graph:
    """Read and build a spec file (raises :class:`derive.errors.SpecError` on bad input)."""
    return graph_from_spec(load_spec(path))


def derive_spec(path: str | Path) -> Derivation:
    return derive(load_graph(path))


def module_path(graph: Graph, out_dir: str | Path) -> Path:
    return Path(out_dir) / f"{graph.name}.py"


@dataclass
class Generated:
    path: Path
    text: str
    derivation: Derivation
    changed: bool


def generate(
    spec: str | Path, out_dir: str | Path = "generated", *, write: bool = True
) -> Generated:
    """Derive ``spec`` and (re)write ``out_dir/NAME.py`` atomically when its text changed."""
    d = derive_spec(spec)
    text = render(d, spec_path=_display_path(spec))
    path = module_path(d.graph, out_dir)
    old = path.read_text(encoding="utf-8") if path.exists() else None
    changed = old != text
    if write and changed:
        write_atomic(path, text)
    return Generated(path, text, d, changed)


def _display_path(spec: str | Path) -> str:
    """The spec's path as headers write it, the same wherever derive runs.

    Relative to the root of the git checkout holding the spec (``examples/mlp.toml``, which
    ``derive gen`` accepts from that root), else the file name alone: never the working
    folder, so ``gen --check`` gives one answer from every folder.
    """
    p = Path(spec).resolve()
    for folder in p.parents:
        if (folder / ".git").exists():
            return p.relative_to(folder).as_posix()
    return p.name
