"""Each rewrite rule alone: its guard and the candidates it proposes."""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from derive.autodiff.canon import Canon, tables_for
from derive.autodiff.rules import RULES, Cancel, Fold, Inline, RuleContext, Unfold
from derive.autodiff.steps import Definition, StepKind
from derive.pipeline import derive_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
D = derive_spec(EXAMPLES / "mlp_softmax.toml")
NODES = {n.name: n for n in D.graph.nodes}


def context(name: str, done: dict | None = None) -> RuleContext:
    g = D.graph
    return RuleContext(
        g, Canon(g, tables_for(g)), NODES[name], D.adjoints if done is None else done
    )


def test_rules_have_names_and_a_fixed_order() -> None:
    assert [r.name for r in RULES] == ["fold", "cancel", "unfold", "inline"]


def test_fold_solves_e_from_p() -> None:
    e, s, p = (NODES[n] for n in ("e", "s", "p"))
    expr = e.atom / s.atom
    found = list(Fold().candidates(context("f"), expr))
    fold = next(c for c in found if c.subject == "e")
    assert fold.kind is StepKind.FOLD
    assert fold.expr == p.atom
    assert any(isinstance(f, Definition) and f.node == "p" for f in fold.facts)


def test_cancel_only_outside_sums() -> None:
    ctx = context("f")
    p = NODES["p"].atom
    assert Cancel().guard(ctx, p * (1 + p) / (1 + p))
    (cand,) = Cancel().candidates(ctx, p * (1 + p) / (1 + p))
    assert cand.expr == p
    b = NODES["p"].labels[0]
    j = sp.Symbol("j")
    assert not Cancel().guard(ctx, sp.Sum(p.subs(b, j), (j, 1, 2)))


def test_unfold_needs_a_sum() -> None:
    ctx = context("f")
    assert not Unfold().guard(ctx, NODES["p"].atom)


def test_inline_never_into_a_parameter_gradient() -> None:
    assert not Inline().guard(context("W2"), NODES["f"].atom)
    assert Inline().guard(context("f"), NODES["f"].atom)


def test_inline_proposes_the_adjoint_of_p_and_what_it_saves() -> None:
    f = D.adjoints["f"]
    chain = next(s for s in f.steps if s.kind is StepKind.CHAIN_RULE)
    found = list(Inline().candidates(context("f"), chain.after))
    assert found and all(c.subject == "p" for c in found)
    assert {c.kind for c in found} <= {StepKind.INLINING, StepKind.INLINING_CANCEL}
