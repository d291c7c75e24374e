"""The recorded derivation steps are typed records: kinds, nodes, expressions and facts."""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from derive.autodiff.steps import (
    AdjointUsed,
    Definition,
    OutputForm,
    Reason,
    Step,
    StepKind,
    TableEntry,
)
from derive.lang.naming import gradient_name, gradient_of, is_gradient_name
from derive.lang.spec import parse_spec
from derive.ops.functions import H
from derive.pipeline import derive_spec
from derive.show import show_text

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def kinds(steps: list[Step]) -> list[StepKind]:
    return [s.kind for s in steps]


def test_softmax_steps_record_the_one_hot_constraint_as_a_table_entry() -> None:
    d = derive_spec(EXAMPLES / "mlp_softmax.toml")
    recorded = d.adjoints["f"].steps
    local = [s for s in recorded if s.kind is StepKind.LOCAL_DERIVATIVE]
    steps = recorded[len(local) :]  # local derivatives (inside softmax) come first
    assert local and all(s.node != "f" for s in local)
    assert kinds(steps)[0] is StepKind.CHAIN_RULE
    assert all(s.node == "f" for s in steps)
    entries = [e for s in steps for e in s.table_entries]
    one_hot = [e for e in entries if e.reason is Reason.ONE_HOT_TARGET]
    assert one_hot and one_hot[0].subject == "t"
    eq = one_hot[0].equation()
    assert isinstance(eq.lhs, sp.Sum) and eq.rhs == 1
    assert one_hot[0].text() == "Σ t = 1 (one_hot target)"
    # the chain rule starts at the adjoint atom and the last step reaches p - t
    assert steps[0].before.base.label.name == gradient_name("f")
    p, t = (sp.IndexedBase(n) for n in ("p", "t"))
    (b, n) = next(a.indices for a in steps[-1].after.atoms(sp.Indexed) if a.base == p)
    seed = sp.IndexedBase(gradient_name(d.graph.loss.name))[b]
    assert sp.expand(steps[-1].after - (p[b, n] - t[b, n]) * seed) == 0


def test_inlining_records_the_adjoint_it_used() -> None:
    d = derive_spec(EXAMPLES / "mlp_softmax.toml")
    inlined = [s for s in d.adjoints["f"].steps if s.kind.name.startswith("INLINING")]
    assert inlined, kinds(d.adjoints["f"].steps)
    fact = next(f for f in inlined[0].facts if isinstance(f, AdjointUsed))
    assert fact.node == inlined[0].subject
    assert fact.expr == d.adjoints[fact.node].expr


def test_sigmoid_local_derivative_records_its_output_form() -> None:
    d = derive_spec(EXAMPLES / "mlp_softmax.toml")
    local = [s for s in d.adjoints["z1"].steps if s.kind is StepKind.LOCAL_DERIVATIVE]
    assert len(local) == 1
    step = local[0]
    assert step.node == "h1"
    assert step.title == "local derivative of h1 in its output"
    forms = [f for f in step.facts if isinstance(f, OutputForm)]
    assert (
        forms == [OutputForm("sigmoid", H * (1 - H))] or sp.expand(forms[0].form - H * (1 - H)) == 0
    )
    (defn,) = [f for f in step.facts if isinstance(f, Definition)]
    assert (
        defn.node == "h1"
        and defn.expr == d.graph.nodes[[n.name for n in d.graph.nodes].index("h1")].expr
    )
    assert step.before.has(sp.exp) and not step.after.has(sp.exp)


def test_fold_names_both_values_and_the_definition_used() -> None:
    d = derive_spec(EXAMPLES / "mlp_batchnorm.toml")
    folds = [s for a in d.adjoints.values() for s in a.steps if s.kind is StepKind.FOLD]
    for s in folds:
        assert s.subject and s.into
        assert s.title == f"fold {s.subject} into {s.into}"
        assert any(isinstance(f, Definition) and f.node == s.into for f in s.facts)


def test_batch_norm_uses_reduction_definitions() -> None:
    d = derive_spec(EXAMPLES / "mlp_batchnorm.toml")
    entries = {e for a in d.adjoints.values() for s in a.steps for e in s.table_entries}
    assert any(e.reason is Reason.DEFINITION for e in entries)
    for e in entries:
        assert isinstance(e, TableEntry) and e.free is not None


def test_real_target_uses_no_constraint() -> None:
    text = (EXAMPLES / "mlp_softmax.toml").read_text().replace('kind = "one_hot"', 'kind = "real"')
    from derive.autodiff.reverse import derive
    from derive.graph.builder import graph_from_spec

    d = derive(graph_from_spec(parse_spec(text)))
    entries = [e for s in d.adjoints["f"].steps for e in s.table_entries]
    assert not any(e.reason is Reason.ONE_HOT_TARGET for e in entries)


def test_show_text_prints_local_derivatives_as_equations() -> None:
    text = show_text(derive_spec(EXAMPLES / "mlp_softmax.toml"))
    line = next(ln for ln in text.splitlines() if "local derivative of h1" in ln)
    assert " = " in line.split(": ", 1)[1]


def test_gradient_names_round_trip() -> None:
    assert gradient_name("h1") == "g_h1"
    assert gradient_of("g_h1") == "h1"
    assert gradient_of("h1") is None and gradient_of(None) is None
    assert is_gradient_name("g_x") and not is_gradient_name("gx")
