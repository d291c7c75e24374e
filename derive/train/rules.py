"""Optimizer update rules written once, as SymPy assignments, and printed as LaTeX.

Each rule is a sequence of lines ``target <- expr`` (state and parameter updates) or
``target = expr`` (named intermediates such as Adam's bias-corrected moments), in the
symbols of the lectures: parameter ``theta``, gradient ``g``, learning rate ``epsilon``,
step ``t``. The same expressions are evaluated elementwise on NumPy arrays by
:mod:`optimizers` and printed by :class:`RuleLatexPrinter`, so the rule shown is the rule run.

Nesterov momentum is written in the form that needs the gradient at ``theta`` only
(``v <- alpha v - epsilon g``; ``theta <- theta + alpha v - epsilon g``): with
``theta~ = theta + alpha v`` it is the lecture's look-ahead rule (gradient at
``theta + alpha v``, then ``theta <- theta + v``) written in ``theta~``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import sympy as sp
from sympy.printing.latex import LatexPrinter

theta, g, epsilon, t = sp.symbols("theta g epsilon t")
alpha, rho, rho_1, rho_2, delta, lam = sp.symbols("alpha rho rho_1 rho_2 delta lambda")
v, r, s, s_hat, r_hat = sp.symbols("v r s s_hat r_hat")

VECTORS = {"theta", "g", "v", "r", "s", "s_hat", "r_hat"}
"""Symbols that stand for arrays shaped like the parameter (printed bold, products as ⊙)."""


class LineKind(Enum):
    UPDATE = "update"  # target <- expr: state or parameter takes a new value
    DEFINE = "define"  # target = expr: an intermediate of this step


@dataclass(frozen=True)
class Line:
    target: sp.Symbol
    expr: sp.Expr
    kind: LineKind = LineKind.UPDATE


@dataclass(frozen=True)
class Rule:
    """One optimizer: its hyperparameters (with defaults), its state and its update lines.

    ``state`` names per-parameter arrays that start at zero; ``counts_steps`` means the
    rule reads the step number ``t`` (1 on the first step).
    """

    name: str
    title: str
    hyper: tuple[tuple[sp.Symbol, float], ...]
    state: tuple[sp.Symbol, ...]
    lines: tuple[Line, ...]
    counts_steps: bool = False

    @property
    def defaults(self) -> dict[str, float]:
        return {sym.name: value for sym, value in self.hyper}

    def latex(self) -> str:
        """The update rule as an ``aligned`` block, one line per assignment."""
        return latex_lines(self.lines, counts_steps=self.counts_steps)


def _line(target: sp.Symbol, expr: sp.Expr) -> Line:
    return Line(target, expr)


def _define(target: sp.Symbol, expr: sp.Expr) -> Line:
    return Line(target, expr, LineKind.DEFINE)


def ordered_add(*terms: sp.Expr) -> sp.Expr:
    """A sum kept in the order written (SymPy would sort it), for printing as taught."""
    return sp.Add(*terms, evaluate=False)


def ordered_mul(*factors: sp.Expr) -> sp.Expr:
    return sp.Mul(*factors, evaluate=False)


def _minus(*factors: sp.Expr) -> sp.Expr:
    return ordered_mul(-1, *factors)


def _over(num: sp.Expr, den: sp.Expr) -> sp.Expr:
    return ordered_mul(num, sp.Pow(den, -1, evaluate=False))


def _ema(decay: sp.Symbol, old: sp.Symbol, new: sp.Expr) -> sp.Expr:
    """decay old + (1 - decay) new: an exponentially decaying average."""
    return ordered_add(ordered_mul(decay, old), ordered_mul(ordered_add(1, _minus(decay)), new))


_ADAM_MOMENTS = (
    _line(s, _ema(rho_1, s, g)),
    _line(r, _ema(rho_2, r, g**2)),
    _define(s_hat, _over(s, ordered_add(1, _minus(rho_1**t)))),
    _define(r_hat, _over(r, ordered_add(1, _minus(rho_2**t)))),
)
_ADAM_STEP = _over(s_hat, ordered_add(sp.sqrt(r_hat), delta))

RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "sgd",
            "Stochastic gradient descent",
            ((epsilon, 0.1),),
            (),
            (_line(theta, ordered_add(theta, _minus(epsilon, g))),),
        ),
        Rule(
            "momentum",
            "SGD with momentum",
            ((epsilon, 0.05), (alpha, 0.9)),
            (v,),
            (
                _line(v, ordered_add(ordered_mul(alpha, v), _minus(epsilon, g))),
                _line(theta, ordered_add(theta, v)),
            ),
        ),
        Rule(
            "nesterov",
            "Nesterov momentum",
            ((epsilon, 0.05), (alpha, 0.9)),
            (v,),
            (
                _line(v, ordered_add(ordered_mul(alpha, v), _minus(epsilon, g))),
                _line(theta, ordered_add(theta, ordered_mul(alpha, v), _minus(epsilon, g))),
            ),
        ),
        Rule(
            "adagrad",
            "AdaGrad",
            ((epsilon, 0.05), (delta, 1e-7)),
            (r,),
            (
                _line(r, ordered_add(r, g**2)),
                _line(
                    theta,
                    ordered_add(
                        theta,
                        _minus(_over(ordered_mul(epsilon, g), ordered_add(delta, sp.sqrt(r)))),
                    ),
                ),
            ),
        ),
        Rule(
            "rmsprop",
            "RMSProp",
            ((epsilon, 1e-3), (rho, 0.9), (delta, 1e-6)),
            (r,),
            (
                _line(r, _ema(rho, r, g**2)),
                _line(
                    theta,
                    ordered_add(
                        theta,
                        _minus(_over(ordered_mul(epsilon, g), ordered_add(delta, sp.sqrt(r)))),
                    ),
                ),
            ),
        ),
        Rule(
            "adam",
            "Adam (bias-corrected moments)",
            ((epsilon, 1e-3), (rho_1, 0.9), (rho_2, 0.999), (delta, 1e-8)),
            (s, r),
            (*_ADAM_MOMENTS, _line(theta, ordered_add(theta, _minus(epsilon, _ADAM_STEP)))),
            counts_steps=True,
        ),
        Rule(
            "adamw",
            "AdamW (Adam with decoupled weight decay)",
            ((epsilon, 1e-3), (rho_1, 0.9), (rho_2, 0.999), (delta, 1e-8), (lam, 1e-2)),
            (s, r),
            (
                *_ADAM_MOMENTS,
                _line(
                    theta,
                    ordered_add(
                        theta, _minus(epsilon, ordered_add(_ADAM_STEP, ordered_mul(lam, theta)))
                    ),
                ),
            ),
            counts_steps=True,
        ),
    )
}


class RuleLatexPrinter(LatexPrinter):
    """LaTeX in the lectures' notation: arrays bold, ``g ⊙ g`` for elementwise squares."""

    def __init__(self) -> None:
        super().__init__({"order": "none"})

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        name = expr.name
        if name == "theta":
            return r"\theta"
        if name.endswith("_hat"):
            return r"\hat{\mathbf{" + name[:-4] + "}}"
        if name in VECTORS:
            return r"\mathbf{" + name + "}"
        return super()._print_Symbol(expr, style=style)

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.args
        if isinstance(base, sp.Symbol) and base.name in VECTORS and exp == 2:
            b = self._print(base)
            return rf"{b} \odot {b}"
        return super()._print_Pow(expr)


def latex_lines(lines: tuple[Line, ...], *, counts_steps: bool = False) -> str:
    """``\\begin{aligned} ... \\end{aligned}`` with ``\\leftarrow`` for updates."""
    printer = RuleLatexPrinter()
    rows = [r"t &\leftarrow t + 1"] if counts_steps else []
    for line in lines:
        arrow = r"\leftarrow" if line.kind is LineKind.UPDATE else "="
        rows.append(f"{printer.doprint(line.target)} &{arrow} {printer.doprint(line.expr)}")
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
