"""Hand-written modules in the emitted-module API, correct and deliberately broken.

Each class instance behaves like an emitted module: ``NAME``, ``LOSS``, ``REDUCTION``, ``DIMS``,
``INPUTS``, ``PARAMS``, ``forward``, ``backward``, ``loss_and_grad`` and ``init_params``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

if importlib.util.find_spec("derive") is None:  # plain `pytest` without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Arrays = dict[str, np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """sigma(z) = 1 / (1 + e^-z), stable for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def softmax(f: np.ndarray) -> np.ndarray:
    """p_j = e^{f_j} / sum_k e^{f_k} over the last axis."""
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class FakeModule:
    """Shared plumbing: dimension lookup, default adjoint, ``loss_and_grad``, ``init_params``."""

    NAME: ClassVar[str]
    LOSS: ClassVar[str] = "L"
    REDUCTION: ClassVar[str] = "mean"
    DIMS: ClassVar[dict[str, int | None]]
    INPUTS: ClassVar[dict[str, tuple[tuple[str | int, ...], str]]]
    PARAMS: ClassVar[dict[str, tuple[str | int, ...]]]

    def default_g_loss(self, m: int, dtype: Any) -> np.ndarray:
        """1/m per example for "mean", 1 for "sum"."""
        value = 1.0 / m if self.REDUCTION == "mean" else 1.0
        return np.full(m, value, dtype=dtype)

    def reduce(self, per_example: np.ndarray) -> float:
        """The batch loss from the per-example losses."""
        return per_example.mean() if self.REDUCTION == "mean" else per_example.sum()

    def loss_and_grad(self, params: Arrays, batch: Arrays) -> tuple[float, Arrays]:
        """Forward then backward with the default adjoint."""
        loss, cache = self.forward(params, batch)
        return loss, self.backward(params, batch, cache)

    def init_params(
        self, seed: int = 0, dims: dict[str, int] | None = None, dtype: Any = np.float64
    ) -> Arrays:
        """Weights N(0, 1/fan_in), other parameters from ``init_value``."""
        sizes = {**self.DIMS, **(dims or {})}
        rng = np.random.default_rng(seed)
        out = {}
        for name, spec in self.PARAMS.items():
            shape = tuple(sizes[d] if isinstance(d, str) else d for d in spec)
            if any(s is None for s in shape):
                raise ValueError(f"size of {spec} for '{name}' unknown; pass dims")
            out[name] = self.init_value(name, shape, rng).astype(dtype)
        return out

    def init_value(self, name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Initial value of one parameter."""
        if len(shape) == 2:
            return rng.standard_normal(shape) / np.sqrt(shape[0])
        return np.zeros(shape)

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]:
        raise NotImplementedError

    def backward(
        self, params: Arrays, batch: Arrays, cache: dict[str, Any], g_loss: Any = None
    ) -> Arrays:
        raise NotImplementedError


class SoftmaxMLP(FakeModule):
    """h = sigma(x W1 + b1), p = softmax(h W2 + b2), L = -sum_j t_j log p_j."""

    NAME = "softmax_mlp"
    DIMS: ClassVar[dict[str, int | None]] = {"n_in": None, "n_hidden": None, "n_out": None}
    INPUTS: ClassVar = {"x": (("n_in",), "real"), "t": (("n_out",), "one_hot")}
    PARAMS: ClassVar = {
        "W1": ("n_in", "n_hidden"),
        "b1": ("n_hidden",),
        "W2": ("n_hidden", "n_out"),
        "b2": ("n_out",),
    }

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]:
        """Per-example cross-entropy of a one-hidden-layer sigmoid softmax net."""
        h = sigmoid(batch["x"] @ params["W1"] + params["b1"])
        f = h @ params["W2"] + params["b2"]
        logp = f - f.max(axis=-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
        loss_each = -(batch["t"] * logp).sum(axis=-1)
        cache = {"h": h, "p": np.exp(logp), self.LOSS: loss_each}
        return self.reduce(loss_each), cache

    def backward(
        self, params: Arrays, batch: Arrays, cache: dict[str, Any], g_loss: Any = None
    ) -> Arrays:
        """df = g (p - t); dW2 = h^T df; dh = df W2^T; dz = dh h (1 - h); dW1 = x^T dz."""
        x, t, h, p = batch["x"], batch["t"], cache["h"], cache["p"]
        g = self.default_g_loss(len(x), x.dtype) if g_loss is None else g_loss
        df = g[:, None] * (p * t.sum(axis=-1, keepdims=True) - t)
        dz = (df @ params["W2"].T) * h * (1 - h)
        return {"W1": x.T @ dz, "b1": dz.sum(axis=0), "W2": h.T @ df, "b2": df.sum(axis=0)}


class BatchNormNet(FakeModule):
    """z = x W, y = gamma (z - mu) / sqrt(var + eps) + beta (batch statistics), L_b = r_b . y_b."""

    NAME = "batchnorm_net"
    REDUCTION = "sum"
    EPS = 1e-5
    DIMS: ClassVar[dict[str, int | None]] = {"n_in": None, "n": None}
    INPUTS: ClassVar = {"x": (("n_in",), "real"), "r": (("n",), "real")}
    PARAMS: ClassVar = {"W": ("n_in", "n"), "gamma": ("n",), "beta": ("n",)}

    def init_value(self, name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """gamma starts at one."""
        return np.ones(shape) if name == "gamma" else super().init_value(name, shape, rng)

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]:
        """Batch statistics mu = mean_b z_b, var = mean_b (z_b - mu)^2."""
        z = batch["x"] @ params["W"]
        inv_std = 1 / np.sqrt(z.var(axis=0) + np.asarray(self.EPS, z.dtype))
        zhat = (z - z.mean(axis=0)) * inv_std
        y = params["gamma"] * zhat + params["beta"]
        loss_each = (batch["r"] * y).sum(axis=-1)
        return self.reduce(loss_each), {"zhat": zhat, "inv_std": inv_std, self.LOSS: loss_each}

    def dz(self, dzhat: np.ndarray, zhat: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
        """dz = inv_std (dzhat - mean_b dzhat - zhat mean_b(dzhat zhat))."""
        mean_term = dzhat.mean(axis=0)
        return inv_std * (dzhat - mean_term - zhat * (dzhat * zhat).mean(axis=0))

    def backward(
        self, params: Arrays, batch: Arrays, cache: dict[str, Any], g_loss: Any = None
    ) -> Arrays:
        """dy_b = g_b r_b; dgamma = sum_b dy zhat; dbeta = sum_b dy; dW = x^T dz."""
        x, zhat = batch["x"], cache["zhat"]
        g = self.default_g_loss(len(x), x.dtype) if g_loss is None else g_loss
        dy = g[:, None] * batch["r"]
        dz = self.dz(dy * params["gamma"], zhat, cache["inv_std"])
        return {"W": x.T @ dz, "gamma": (dy * zhat).sum(axis=0), "beta": dy.sum(axis=0)}


class LogisticRegression(FakeModule):
    """z = x . w + b (b a scalar), L = softplus(z) - y z (binary cross-entropy with logits)."""

    NAME = "logistic"
    DIMS: ClassVar[dict[str, int | None]] = {"n_in": 4}
    INPUTS: ClassVar = {"x": (("n_in",), "real"), "y": ((), "binary")}
    PARAMS: ClassVar = {"w": ("n_in",), "b": ()}

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]:
        """softplus(z) = max(z, 0) + log(1 + e^-|z|)."""
        z = batch["x"] @ params["w"] + params["b"]
        loss_each = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - batch["y"] * z
        return self.reduce(loss_each), {"yhat": sigmoid(z), self.LOSS: loss_each}

    def backward(
        self, params: Arrays, batch: Arrays, cache: dict[str, Any], g_loss: Any = None
    ) -> Arrays:
        """dz = g (sigma(z) - y); dw = x^T dz; db = sum_b dz."""
        x = batch["x"]
        g = self.default_g_loss(len(x), x.dtype) if g_loss is None else g_loss
        dz = g * (cache["yhat"] - batch["y"])
        return {"w": x.T @ dz, "b": dz.sum()}


# ---------------------------------------------------------------------------------------------
# broken variants


class ScaledGrad(SoftmaxMLP):
    """dW1 off by 1%."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        grads["W1"] = grads["W1"] * 1.01
        return grads


class TransposedGrad(SoftmaxMLP):
    """dW2 transposed: right shape whenever n_hidden == n_out."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        grads["W2"] = grads["W2"].T
        return grads


class BatchNormNoMean(BatchNormNet):
    """Batch-norm backward without the - mean_b dzhat term."""

    def dz(self, dzhat, zhat, inv_std):
        return inv_std * (dzhat - zhat * (dzhat * zhat).mean(axis=0))


class IgnoresGLoss(SoftmaxMLP):
    """Always uses the default adjoint 1/m, whatever g_loss is passed."""

    def backward(self, params, batch, cache, g_loss=None):
        return super().backward(params, batch, cache, None)


class WrongShape(SoftmaxMLP):
    """db1 returned as a (1, n_hidden) row."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        grads["b1"] = grads["b1"][None, :]
        return grads


class MissingGrad(SoftmaxMLP):
    """No gradient for b2."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        del grads["b2"]
        return grads


class Float64Leak(LogisticRegression):
    """Computes in float64 whatever the parameter dtype."""

    def forward(self, params, batch):
        params = {k: v.astype(np.float64) for k, v in params.items()}
        batch = {k: v.astype(np.float64) for k, v in batch.items()}
        return super().forward(params, batch)


class RaisesInBackward(LogisticRegression):
    """backward crashes."""

    def backward(self, params, batch, cache, g_loss=None):
        raise RuntimeError("boom")


class WrongReduction(LogisticRegression):
    """Reports the summed loss while declaring REDUCTION = "mean"."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        return float(cache[self.LOSS].sum()), cache


class LargeOffsetLoss(LogisticRegression):
    """Correct, but every per-example loss carries a constant 1e5: rounding error dominates."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        cache[self.LOSS] = cache[self.LOSS] + 1e5
        return self.reduce(cache[self.LOSS]), cache


class CancellingLoss(LogisticRegression):
    """Correct, but each loss is computed as (L + 1e3) - 1e3: rounding hidden from |L|."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        cache[self.LOSS] = (cache[self.LOSS] + 1e3) - 1e3
        return self.reduce(cache[self.LOSS]), cache


class ScaledGradBy(SoftmaxMLP):
    """Every gradient multiplied by a constant ``factor``."""

    def __init__(self, factor: float, name: str = "W1") -> None:
        self.factor, self.param = factor, name

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        grads[self.param] = grads[self.param] * self.factor
        return grads
