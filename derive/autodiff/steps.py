"""The recorded steps of a derivation, as typed records.

Every named adjoint ``∂L/∂X`` (:class:`~derive.autodiff.adjoint.Adjoint`) carries the list
of :class:`Step` records that took it from the chain rule to its final form, in order:

1. ``LOCAL_DERIVATIVE`` steps met on the way from the last named value (``σ'(z)`` written
   in the output: ``before`` = ``e^-z / (1 + e^-z)²``, ``after`` = ``h (1 - h)``). ``node``
   is the value differentiated; ``facts`` hold its :class:`Definition` (what ``h``
   stands for) and, for an elementwise op whose derivative was fitted and proved in its
   output, the :class:`OutputForm`.
2. One ``CHAIN_RULE`` step: ``before`` = the adjoint atom ``g_X[b, i]``, ``after`` = the sum
   of the contributions of every reader of ``X`` (the one reverse-mode rule).
3. An ``EXPANSION`` step when canonicalising changed it: products distributed, sums
   split and pulled apart, ``Σ 1 = n``; ``facts`` hold every :class:`TableEntry` looked up
   (``Σ_k t[b, k] = 1`` because ``t`` is a one-hot target, ``Σ_k e[b, k] = s[b]`` by the
   definition of ``s``).
4. Greedy rewrites, each lowering the expression's size: ``FOLD`` (``subject`` replaced
   by its value solved from the definition of the value computed from it, e.g.
   ``e → p s``; facts: that :class:`Definition`), ``UNFOLD`` (an internal ``subject``
   written out inside a sum), ``CANCEL`` (common factors cancelled), ``INLINING`` and
   ``INLINING_CANCEL`` (the named adjoint of ``subject`` substituted in, then cancelled;
   facts: :class:`AdjointUsed`).  Each may also list the table entries its
   canonicalisation used.
5. A ``COMPACT`` step when collecting into one fraction changed the form.

Apart from these lists, ``Derivation.internal`` holds one ``STAGED_CHAIN_RULE`` step per
value whose adjoint passed through unnamed values: the chain rule with those values'
adjoints kept as atoms (batch norm's ``∂L/∂x̂``, ``∂L/∂σ²``, ``∂L/∂μ``), as lectures stage it.

``before`` and ``after`` are SymPy expressions in the graph's index notation; the loss
seed ``g_L`` appears as an atom (set it to 1 for one example's loss). Table lookups are
not steps of their own: they happen inside canonicalisation, so they are listed in the
``facts`` of the step whose canonical form used them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import sympy as sp
from sympy import Symbol


class StepKind(Enum):
    """What a step did; the value is the title ``derive show`` prints."""

    LOCAL_DERIVATIVE = "local derivative"
    CHAIN_RULE = "chain rule"
    STAGED_CHAIN_RULE = "staged chain rule"
    EXPANSION = "expand and collect sums"
    FOLD = "fold"
    UNFOLD = "unfold"
    CANCEL = "cancel common factors"
    INLINING = "inline"
    INLINING_CANCEL = "inline and cancel"
    COMPACT = "collect into one fraction"


class Reason(Enum):
    """Why a table entry holds."""

    ONE_HOT_TARGET = "one_hot target"
    PROBABILITY_TARGET = "probability target"
    DEFINITION = "definition"


@dataclass(frozen=True)
class TableEntry:
    """An identity ``Σ_label body = value`` the canonicaliser may use.

    ``body`` is written in the entry's own free labels ``free`` and bound ``label``;
    ``value`` in ``free``.  ``subject`` is the input the constraint is about (``t`` for
    ``Σ_k t[b, k] = 1``) or the reduction it defines (``s`` for ``Σ_k e[b, k] = s[b]``).
    """

    body: sp.Expr
    label: Symbol
    free: tuple[sp.Expr, ...]
    value: sp.Expr
    size: sp.Expr
    subject: str
    reason: Reason

    def equation(self) -> sp.Eq:
        """The identity itself: ``Eq(Sum(body, (label, 1, size)), value)``."""
        return sp.Eq(sp.Sum(self.body, (self.label, 1, self.size)), self.value, evaluate=False)

    def text(self) -> str:
        """One line for people: ``Σ t = 1 (one_hot target)``, ``definition of s``."""
        if self.reason is Reason.DEFINITION:
            return f"definition of {self.subject}"
        return f"Σ {self.subject} = 1 ({self.reason.value})"


@dataclass(frozen=True)
class Definition:
    """The defining expression of a value: ``node[labels] = expr``."""

    node: str
    atom: sp.Expr
    expr: sp.Expr


@dataclass(frozen=True)
class OutputForm:
    """The derivative of an elementwise op written in its output ``h = op(z)``.

    ``form`` is a polynomial (or Laurent polynomial) in ``derive.ops.functions.H``, fitted
    and then proved: ``sigmoid`` gives ``h (1 - h)``, ``tanh`` gives ``1 - h²``.
    """

    op: str
    form: sp.Expr


@dataclass(frozen=True)
class AdjointUsed:
    """An adjoint derived earlier and substituted in: ``g_node[labels] = expr``."""

    node: str
    atom: sp.Expr
    expr: sp.Expr


Fact = TableEntry | Definition | OutputForm | AdjointUsed


@dataclass(frozen=True)
class Step:
    """One recorded step: its kind, the value it belongs to, before and after, the facts used.

    ``node`` is the value whose adjoint the step rewrites, except for a local derivative,
    where it is the value differentiated.  ``subject`` names the other value a fold,
    unfold or inlining acts on (None otherwise).
    """

    kind: StepKind
    node: str
    before: sp.Expr
    after: sp.Expr
    facts: tuple[Fact, ...] = ()
    subject: str | None = None

    @property
    def title(self) -> str:
        """The step as ``derive show`` names it (``fold e into p``, ``inline ∂L/∂p``, ...)."""
        match self.kind:
            case StepKind.LOCAL_DERIVATIVE:
                return f"local derivative of {self.node} in its output"
            case StepKind.FOLD:
                return f"fold {self.subject} into {self.into}"
            case StepKind.UNFOLD:
                return f"unfold {self.subject} inside a sum"
            case StepKind.INLINING:
                return f"inline ∂L/∂{self.subject}"
            case StepKind.INLINING_CANCEL:
                return f"inline ∂L/∂{self.subject} and cancel"
        return self.kind.value

    @property
    def into(self) -> str | None:
        """For a fold: the value whose definition was solved for ``subject``."""
        return next((f.node for f in self.facts if isinstance(f, Definition)), None)

    @property
    def table_entries(self) -> tuple[TableEntry, ...]:
        return tuple(f for f in self.facts if isinstance(f, TableEntry))

    @property
    def note(self) -> str:
        """The table entries used, for people (``Σ t = 1 (one_hot target)``), or ``""``."""
        return "; ".join(dict.fromkeys(e.text() for e in self.table_entries))
