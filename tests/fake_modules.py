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


# ---------------------------------------------------------------------------------------------
# broken variants that only one check can see


class MeanOfGLoss(SoftmaxMLP):
    """Replaces every per-example weight by their mean: right whenever the weights are equal."""

    def backward(self, params, batch, cache, g_loss=None):
        if g_loss is not None:
            g_loss = np.full_like(g_loss, np.mean(g_loss))
        return super().backward(params, batch, cache, g_loss)


class BatchNormSumNet(BatchNormNet):
    """Batch norm with L_b = sum_j y_bj: with equal weights dL/dz is exactly zero."""

    NAME = "batchnorm_sum_net"
    INPUTS: ClassVar = {"x": (("n_in",), "real")}

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]:
        """y as in BatchNormNet, L_b = sum_j y_bj."""
        ones = np.ones((len(batch["x"]), params["W"].shape[1]), dtype=batch["x"].dtype)
        return super().forward(params, {**batch, "r": ones})

    def backward(self, params, batch, cache, g_loss=None):
        ones = np.ones((len(batch["x"]), params["W"].shape[1]), dtype=batch["x"].dtype)
        return super().backward(params, {**batch, "r": ones}, cache, g_loss)


class BatchNormSumNoProjection(BatchNormSumNet):
    """Drops the - zhat mean_b(dzhat zhat) term, which vanishes when the weights are equal."""

    def dz(self, dzhat, zhat, inv_std):
        return inv_std * (dzhat - dzhat.mean(axis=0))


class NonFiniteLoss(LogisticRegression):
    """The first example's loss is NaN."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        cache[self.LOSS] = cache[self.LOSS].copy()
        cache[self.LOSS][0] = np.nan
        return self.reduce(cache[self.LOSS]), cache


class NoLossInCache(LogisticRegression):
    """The cache lacks the per-example loss."""

    def forward(self, params, batch):
        loss, cache = super().forward(params, batch)
        del cache[self.LOSS]
        return loss, cache


class LossAsColumn(LogisticRegression):
    """The per-example loss cached as an (m, 1) column."""

    def forward(self, params, batch):
        loss, cache = super().forward(params, batch)
        cache[self.LOSS] = cache[self.LOSS][:, None]
        return loss, cache


class BackwardReturnsList(LogisticRegression):
    """backward returns the gradients as a list."""

    def backward(self, params, batch, cache, g_loss=None):
        return list(super().backward(params, batch, cache, g_loss).values())


class DefaultGLossIsOne(LogisticRegression):
    """REDUCTION = "mean" but backward's default adjoint is 1 per example (the sum's)."""

    def default_g_loss(self, m, dtype):
        return np.ones(m, dtype=dtype)


class LossAndGradLossDoubled(LogisticRegression):
    """loss_and_grad reports twice the loss."""

    def loss_and_grad(self, params, batch):
        loss, grads = super().loss_and_grad(params, batch)
        return 2 * loss, grads


class LossAndGradGradScaled(LogisticRegression):
    """loss_and_grad's dw is 1% off (backward itself is right)."""

    def loss_and_grad(self, params, batch):
        loss, grads = super().loss_and_grad(params, batch)
        return loss, {**grads, "w": grads["w"] * 1.01}


class LossAndGradRaises(LogisticRegression):
    """loss_and_grad crashes (forward and backward work)."""

    def loss_and_grad(self, params, batch):
        raise KeyError("no such array")


class InitIgnoresDtype(LogisticRegression):
    """init_params always returns float64."""

    def init_params(self, seed=0, dims=None, dtype=np.float64):
        return super().init_params(seed, dims, np.float64)


class OverflowsInFloat32(LogisticRegression):
    """Passes the loss through 1e30 * 1e30, which is inf in float32."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        big = np.asarray(1e30, dtype=cache[self.LOSS].dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            cache[self.LOSS] = cache[self.LOSS] * big * big / big / big
        return self.reduce(cache[self.LOSS]), cache


class Float64GradsInFloat32(LogisticRegression):
    """Gradients always float64, also for float32 parameters."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        return {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()}


class RaisesInFloat32(LogisticRegression):
    """forward refuses float32 inputs."""

    def forward(self, params, batch):
        if batch["x"].dtype == np.float32:
            raise TypeError("float32 not supported")
        return super().forward(params, batch)


class WithScaledGrad:
    """Any module (a loaded file, say) with one gradient multiplied by ``factor``."""

    def __init__(self, module: Any, name: str, factor: float = 1.01) -> None:
        self.module, self.name, self.factor = module, name, factor

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.module, attr)

    def backward(self, params, batch, cache, g_loss=None):
        grads = dict(self.module.backward(params, batch, cache, g_loss))
        grads[self.name] = grads[self.name] * self.factor
        return grads

    def loss_and_grad(self, params, batch):
        loss, cache = self.module.forward(params, batch)
        return loss, self.backward(params, batch, cache)


class NanAwayFromStart(LogisticRegression):
    """The loss is NaN once b has moved from where backward was last called."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        if float(params["b"]) != getattr(self, "start", float(params["b"])):
            cache[self.LOSS] = np.full_like(cache[self.LOSS], np.nan)
        return self.reduce(cache[self.LOSS]), cache

    def backward(self, params, batch, cache, g_loss=None):
        self.start = float(params["b"])
        return super().backward(params, batch, cache, g_loss)


class LargeOffsetScaledGrad(LargeOffsetLoss):
    """Per-example losses near 1e5 (rounding noise dominates) and dw twice too large."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        return {**grads, "w": 2 * grads["w"]}


class LossSlightlyOff(LogisticRegression):
    """The reported batch loss is 1e-10 (relative) away from the mean of the per-example ones."""

    def forward(self, params, batch):
        loss, cache = super().forward(params, batch)
        return loss * (1 + 1e-10), cache


class UnknownReduction(LogisticRegression):
    """Declares a reduction the checker does not know."""

    REDUCTION = "median"


class LossAndGradLossSlightlyOff(LogisticRegression):
    """loss_and_grad's loss is 1e-10 (relative) away from forward's."""

    def loss_and_grad(self, params, batch):
        loss, grads = super().loss_and_grad(params, batch)
        return loss * (1 + 1e-10), grads


class LossAndGradGradNudged(LogisticRegression):
    """loss_and_grad's dw is 1e-9 away from backward's (absolute, each entry)."""

    def loss_and_grad(self, params, batch):
        loss, grads = super().loss_and_grad(params, batch)
        return loss, {**grads, "w": grads["w"] + 1e-9}


class LossAndGradMissesGrad(LogisticRegression):
    """loss_and_grad leaves out db (backward has it)."""

    def loss_and_grad(self, params, batch):
        loss, grads = super().loss_and_grad(params, batch)
        return loss, {"w": grads["w"]}


class DefaultBackwardWrongShape(LogisticRegression):
    """backward without g_loss returns dw as a column."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        return grads if g_loss is not None else {**grads, "w": grads["w"][:, None]}


class OverflowingLoss(LogisticRegression):
    """Every per-example loss is exp(1000 + |z|) = inf (overflowing)."""

    def forward(self, params, batch):
        _loss, cache = super().forward(params, batch)
        cache[self.LOSS] = np.exp(1000.0 + np.abs(cache[self.LOSS]))
        return self.reduce(cache[self.LOSS]), cache


class BothGradsMisnamed(LogisticRegression):
    """Returns the gradients under the keys 'weights' and 'bias'."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        return {"weights": grads["w"], "bias": grads["b"]}
