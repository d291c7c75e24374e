"""One recorded rewrite step of a derivation."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Step:
    """One rewrite: which rule, the expression before and after, and a note."""

    rule: str
    before: sp.Expr
    after: sp.Expr
    note: str = ""
