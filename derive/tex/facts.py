"""The fact behind a displayed step, as the LaTeX text written beside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from derive.autodiff.steps import Reason, Step, StepKind

if TYPE_CHECKING:
    from derive.tex.document import Row


GENERIC = ("expand and collect sums", "collect into one fraction", "cancel common factors")
"""Algebra every row may use; named only when it is the whole step."""


def fact_tex(step: Step, symbol=None, tex=None) -> str:
    """The fact behind a step as LaTeX text, node names as their symbols (``$\\hat{x}$``), a
    constraint as its equation (``$\\sum_n t_n = 1$ (one-hot target)``) when ``tex`` prints."""
    sym = symbol or (lambda name: rf"\mathrm{{{name}}}")
    match step.kind:
        case StepKind.FOLD:
            parts = [f"definition of ${sym(step.into)}$"]
        case StepKind.UNFOLD:
            parts = [f"${sym(step.subject)}$ written out"]
        case StepKind.INLINING | StepKind.INLINING_CANCEL:
            parts = [rf"substitute $\partial L/\partial {sym(step.subject)}$"]
        case _:
            parts = [step.title.replace("_", r"\_")]
    for entry in step.table_entries:
        if entry.reason is Reason.DEFINITION:
            parts.append(f"definition of ${sym(entry.subject)}$")
        else:
            target = entry.reason.value.replace("_", "-")
            eq = entry.equation()
            math = f"{tex(eq.lhs)} = {tex(eq.rhs)}" if tex else rf"\sum {sym(entry.subject)} = 1"
            parts.append(rf"${math}$ ({target})")
    return "; ".join(dict.fromkeys(parts))


def combined_facts(rows: list[Row]) -> str:
    """The facts of several collapsed rows, the generic algebra left out."""
    facts = [f for r in rows for f in r.fact.split("; ") if f and f not in GENERIC]
    return "; ".join(dict.fromkeys(facts)) or "simplify"
