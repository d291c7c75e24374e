"""The one place that reads the engine's recorded steps for display.

``kind`` is ``"local"`` (a local derivative written in the op's output, ``op`` naming the
node it belongs to), ``"chain"`` (the chain rule) or ``"rewrite"``; ``facts`` are the
rule and the identities it used (``Σ t = 1 (one_hot target)``, ``definition of mu``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class StepView:
    kind: str
    before: sp.Expr
    after: sp.Expr
    facts: tuple[str, ...]
    op: str | None = None  # for a local derivative: the node whose derivative it is


def view(step) -> StepView:
    """A recorded step as the document needs it."""
    facts = (step.rule, *(n for n in step.note.split("; ") if n)) if step.note else (step.rule,)
    if step.rule.startswith("local derivative of "):
        op = step.rule.removeprefix("local derivative of ").split()[0]
        return StepView("local", step.before, step.after, facts, op)
    kind = "chain" if step.rule == "chain rule" else "rewrite"
    return StepView(kind, step.before, step.after, facts)
