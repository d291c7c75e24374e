"""Optimizers that run their SymPy update rules on NumPy arrays, with explicit, saveable state.

``Optimizer(rule, hyper)`` keeps, per parameter, the arrays named in ``rule.state`` (zeros
at first) and the step count ``t``. ``step(params, grads, lr)`` applies the rule's lines in
order to every parameter, elementwise::

    adam:  t <- t + 1;  s <- rho_1 s + (1 - rho_1) g;  r <- rho_2 r + (1 - rho_2) g*g;
           s_hat = s / (1 - rho_1^t);  r_hat = r / (1 - rho_2^t);
           theta <- theta - epsilon s_hat / (sqrt(r_hat) + delta)

Weight decay in AdamW leaves out one-dimensional parameters (biases, batch-norm scales)
unless ``decay_all`` is set. ``to_arrays``/``from_arrays`` (and ``save``/``load`` on .npz)
round-trip everything needed to resume: rule name, hyperparameters, ``t`` and the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import sympy as sp

from derive.train.rules import RULES, Line, Rule, lam

Arrays = dict[str, np.ndarray]
PREFIX = "optimizer/"


@dataclass(frozen=True)
class _Compiled:
    """A rule's lines as NumPy functions of the symbols each one reads."""

    lines: tuple[tuple[str, tuple[str, ...], Callable[..., np.ndarray]], ...]


@cache
def _compile(rule_name: str) -> _Compiled:
    compiled = []
    for line in RULES[rule_name].lines:
        names = tuple(sorted(sym.name for sym in line.expr.free_symbols))
        fn = sp.lambdify([sp.Symbol(n) for n in names], line.expr, modules="numpy")
        compiled.append((line.target.name, names, fn))
    return _Compiled(tuple(compiled))


def rule_names() -> tuple[str, ...]:
    return tuple(RULES)


@dataclass
class Optimizer:
    """A rule, its hyperparameters, the step count ``t`` and the per-parameter state."""

    rule: Rule
    hyper: dict[str, float]
    t: int = 0
    state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    decay_all: bool = False

    @classmethod
    def make(cls, name: str, **hyper: float) -> Optimizer:
        """``Optimizer.make("adam", epsilon=1e-3)``; unknown names raise ValueError."""
        if name not in RULES:
            raise ValueError(f"unknown optimizer '{name}' (choose {', '.join(RULES)})")
        rule = RULES[name]
        unknown = sorted(set(hyper) - set(rule.defaults))
        if unknown:
            raise ValueError(
                f"{name} has no hyperparameter {', '.join(unknown)} "
                f"(it has {', '.join(rule.defaults)})"
            )
        return cls(rule, {**rule.defaults, **{k: float(v) for k, v in hyper.items()}})

    @property
    def lines(self) -> tuple[Line, ...]:
        return self.rule.lines

    def step(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float | None = None,
    ) -> Arrays:
        """New parameters after one update; ``lr`` overrides epsilon (for a schedule)."""
        self.t += 1
        hyper = dict(self.hyper)
        if lr is not None:
            hyper["epsilon"] = float(lr)
        return {name: self._one(name, theta, grads[name], hyper) for name, theta in params.items()}

    def _one(
        self, name: str, theta: np.ndarray, grad: np.ndarray, hyper: Mapping[str, float]
    ) -> np.ndarray:
        theta = np.asarray(theta)
        slots = self.state.setdefault(
            name, {sym.name: np.zeros_like(theta) for sym in self.rule.state}
        )
        env: dict[str, object] = {**hyper, "t": self.t, "theta": theta, "g": np.asarray(grad)}
        if lam.name in env and theta.ndim < 2 and not self.decay_all:
            env[lam.name] = 0.0
        env.update(slots)
        for target, names, fn in _compile(self.rule.name).lines:
            env[target] = np.asarray(fn(*(env[n] for n in names)), dtype=theta.dtype)
        for sym in self.rule.state:
            slots[sym.name] = env[sym.name]  # type: ignore[assignment]
        return env["theta"]  # type: ignore[return-value]

    # ------------------------------------------------------------------------ state on disk

    def to_arrays(self) -> Arrays:
        """Flat ``{"optimizer/...": array}``: name, hyperparameters, t and every state slot."""
        out: Arrays = {
            PREFIX + "name": np.array(self.rule.name),
            PREFIX + "t": np.array(self.t),
            PREFIX + "decay_all": np.array(self.decay_all),
        }
        for key, value in self.hyper.items():
            out[f"{PREFIX}hyper/{key}"] = np.array(value)
        for param, slots in self.state.items():
            for slot, arr in slots.items():
                out[f"{PREFIX}state/{param}/{slot}"] = arr
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Optimizer:
        name = str(arrays[PREFIX + "name"])
        hyper = {
            k.removeprefix(PREFIX + "hyper/"): float(v)
            for k, v in arrays.items()
            if k.startswith(PREFIX + "hyper/")
        }
        opt = cls.make(name, **hyper)
        opt.t = int(arrays[PREFIX + "t"])
        opt.decay_all = bool(arrays.get(PREFIX + "decay_all", False))
        for key, arr in arrays.items():
            if key.startswith(PREFIX + "state/"):
                param, slot = key.removeprefix(PREFIX + "state/").rsplit("/", 1)
                opt.state.setdefault(param, {})[slot] = np.array(arr)
        return opt

    def save(self, path: str | Path) -> None:
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> Optimizer:
        with np.load(path) as data:
            return cls.from_arrays({k: data[k] for k in data.files})
