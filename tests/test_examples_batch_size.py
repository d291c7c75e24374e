"""Every bundled spec calls the batch size ``m``, as the reference notation does.

The builder names the batch size ``m`` unless the spec declares a dim ``m`` (then ``B``,
``N``, ...), so a bundled spec must not use ``m`` for anything else: its generated code,
``derive show``, ``derive check``, ``derive tex`` and the docs would all say ``B``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from derive.pipeline import load_graph

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(
    [
        *(ROOT / "examples").glob("**/*.toml"),
        *(ROOT / "benchmarks" / "specs").glob("*.toml"),
        *(ROOT / "derive" / "data").glob("*.toml"),
    ]
)


def test_every_example_is_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in BUNDLED}
    assert "examples/mlp_softmax.toml" in names
    assert "examples/depth/deep_sigmoid.toml" in names
    assert "derive/data/mlp_softmax.toml" in names


@pytest.mark.parametrize("spec", BUNDLED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_batch_size_is_m(spec: Path) -> None:
    graph = load_graph(spec)
    assert graph.batch_size.name == "m", f"{spec.name}: batch size {graph.batch_size.name}"
    assert "m" not in graph.dims


@pytest.fixture(scope="module")
def m_as_dim(tmp_path_factory) -> Path:
    """The bundled classifier with its hidden width declared as ``m``: the batch size is B."""
    text = (ROOT / "examples" / "mlp_softmax.toml").read_text()
    text = text.replace("\nh = 5", "\nm = 5").replace('"h"', '"m"')
    assert "\nm = 5" in text and '"h"' not in text
    path = tmp_path_factory.mktemp("spec") / "mlp_m.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("which", "size"), [("bundled", "m"), ("m_as_dim", "B")])
def test_user_visible_text_names_the_graphs_batch_size(which: str, size: str, m_as_dim) -> None:
    from derive.answers.spec import SpecQuestion
    from derive.emit.numpy_module import render as render_module
    from derive.grading.reference import load_reference
    from derive.grading.verdicts import judge
    from derive.pipeline import derive_spec
    from derive.tex import render as render_tex
    from derive.tex import tex_document

    spec = ROOT / "examples" / "mlp_softmax.toml" if which == "bundled" else m_as_dim
    d = derive_spec(spec)
    assert d.graph.batch_size.name == size
    assert f"x: ({size}, d) real" in render_module(d)
    assert f"(times $1/{size}$ for the mean)" in render_tex(tex_document(d))
    q = SpecQuestion.load(spec, "W2", batch=True)
    assert f"a batch of {size} examples" in q.question
    missing = q.judge("(P - T)^T H_1")
    assert f"the 1/{size} of the batch mean is missing" in missing.findings[0].message
    assert size in missing.difference.point
    ref = load_reference(spec)
    case = ref.cases(1)[0]
    (hint,) = judge("W2", case.grads["W2"] * case.m, case, 0).hints
    assert hint.startswith(f"off by a factor of {size} = batch size")
