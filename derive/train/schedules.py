"""Learning-rate schedules: epsilon_k as a SymPy expression in the step number k (from 0).

    constant  epsilon_k = epsilon_0
    step      epsilon_k = epsilon_0 gamma^floor(k / s)  (times gamma every s steps)
    linear    epsilon_k = (1 - k/tau) epsilon_0 + (k/tau) epsilon_tau  for k < tau, then epsilon_tau
    cosine    epsilon_k = epsilon_tau + (epsilon_0 - epsilon_tau)(1 + cos(pi k / tau)) / 2,
                                                 for k < tau, then epsilon_tau

``linear`` is the lectures' decay to step tau with alpha = k / tau; epsilon_tau defaults to 1%
of epsilon_0 as they suggest. The expression is evaluated and printed, never transcribed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from derive.train.rules import ordered_add, ordered_mul

k, tau, gamma, s_ = sp.symbols("k tau gamma s", nonnegative=True)
eps_0, eps_tau = sp.symbols("epsilon_0 epsilon_tau", positive=True)
PREFIX = "schedule/"

_EXPRS: dict[str, sp.Expr] = {
    "constant": eps_0,
    "step": eps_0 * gamma ** sp.floor(k / s_),
    "linear": sp.Piecewise(
        (
            ordered_add(
                ordered_mul(ordered_add(1, -k / tau), eps_0), ordered_mul(k / tau, eps_tau)
            ),
            k < tau,
        ),
        (eps_tau, True),
    ),
    "cosine": sp.Piecewise(
        (eps_tau + (eps_0 - eps_tau) * (1 + sp.cos(sp.pi * k / tau)) / 2, k < tau),
        (eps_tau, True),
    ),
}


def schedule_names() -> tuple[str, ...]:
    return tuple(_EXPRS)


@cache
def _compiled(name: str) -> tuple[tuple[str, ...], Callable[..., float]]:
    expr = _EXPRS[name]
    names = tuple(sorted(sym.name for sym in expr.free_symbols))
    syms = sorted(expr.free_symbols, key=lambda sym: sym.name)
    return names, sp.lambdify(syms, expr, modules="numpy")


@dataclass(frozen=True)
class Schedule:
    """A schedule and the values of its constants (epsilon_0, and tau / gamma / s / epsilon_tau)."""

    name: str
    values: Mapping[str, float]

    @classmethod
    def make(cls, name: str, lr: float, total_steps: int, **values: float) -> Schedule:
        """Defaults: tau = total_steps, epsilon_tau = lr / 100, step: gamma 0.1 every tau/3."""
        if name not in _EXPRS:
            raise ValueError(f"unknown schedule '{name}' (choose {', '.join(_EXPRS)})")
        total = max(int(total_steps), 1)
        defaults = {
            "epsilon_0": lr,
            "tau": total,
            "epsilon_tau": lr / 100,
            "gamma": 0.1,
            "s": max(-(-total // 3), 1),
        }
        needed = {sym.name for sym in _EXPRS[name].free_symbols} - {"k"}
        merged = {**defaults, **values}
        return cls(name, {key: float(merged[key]) for key in sorted(needed)})

    @property
    def expr(self) -> sp.Expr:
        return _EXPRS[self.name]

    def lr(self, step: int) -> float:
        """epsilon_k at step k = ``step`` (0 for the first update)."""
        names, fn = _compiled(self.name)
        env = {**self.values, "k": float(step)}
        return float(fn(*(env[n] for n in names)))

    def latex(self) -> str:
        return rf"\epsilon_k = {sp.latex(self.expr, order='none')}"

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {PREFIX + "name": np.array(self.name)}
        out.update({PREFIX + key: np.array(value) for key, value in self.values.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Schedule:
        values = {
            key.removeprefix(PREFIX): float(v)
            for key, v in arrays.items()
            if key.startswith(PREFIX) and key != PREFIX + "name"
        }
        return cls(str(arrays[PREFIX + "name"]), values)
