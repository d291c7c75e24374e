"""Update rules (SGD, momentum, Adam) with their per-parameter state.

With learning rate epsilon and gradient g of the minibatch loss:

    SGD       theta <- theta - epsilon g
    momentum  v <- alpha v - epsilon g;  theta <- theta + v
    Adam      t <- t + 1;  s <- rho1 s + (1 - rho1) g;  r <- rho2 r + (1 - rho2) g*g;
              s_hat = s / (1 - rho1^t);  r_hat = r / (1 - rho2^t);
              theta <- theta - epsilon s_hat / (sqrt(r_hat) + delta)

with alpha = 0.9, rho1 = 0.9, rho2 = 0.999, delta = 1e-8.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")


# ---------------------------------------------------------------------------------------------
# optimizers


Arrays = dict[str, np.ndarray]


@dataclass
class Optimizer:
    """One of the three update rules, with its per-parameter state."""

    name: str
    lr: float
    alpha: float = 0.9
    rho1: float = 0.9
    rho2: float = 0.999
    delta: float = 1e-8
    t: int = 0
    state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{self.name}' (choose {', '.join(OPTIMIZERS)})")

    def step(self, params: Arrays, grads: Mapping[str, np.ndarray]) -> Arrays:
        """New parameters after one update (the inputs are not modified)."""
        self.t += 1
        rule = {"sgd": self._sgd, "momentum": self._momentum, "adam": self._adam}[self.name]
        return {name: rule(name, theta, np.asarray(grads[name])) for name, theta in params.items()}

    def _sgd(self, name: str, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """theta - epsilon g."""
        return theta - self.lr * g

    def _momentum(self, name: str, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """v <- alpha v - epsilon g; theta + v."""
        st = self.state.setdefault(name, {"v": np.zeros_like(theta)})
        st["v"] = self.alpha * st["v"] - self.lr * g
        return theta + st["v"]

    def _adam(self, name: str, theta: np.ndarray, g: np.ndarray) -> np.ndarray:
        """theta - epsilon s_hat / (sqrt(r_hat) + delta) with bias-corrected moments."""
        st = self.state.setdefault(name, {"s": np.zeros_like(theta), "r": np.zeros_like(theta)})
        st["s"] = self.rho1 * st["s"] + (1 - self.rho1) * g
        st["r"] = self.rho2 * st["r"] + (1 - self.rho2) * g * g
        s_hat = st["s"] / (1 - self.rho1**self.t)
        r_hat = st["r"] / (1 - self.rho2**self.t)
        return theta - self.lr * s_hat / (np.sqrt(r_hat) + self.delta)
