"""Minibatch training of a generated module: shuffled minibatches, an update rule from
:mod:`derive.train.optim`, and the loss and accuracy after each epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derive.train.optim import Arrays, Optimizer

# ---------------------------------------------------------------------------------------------
# training


@dataclass
class TrainResult:
    """Per-epoch mean per-example loss and accuracy on the whole training set, final params."""

    losses: list[float]
    final_accuracy: float
    params: Arrays
    accuracies: list[float] = field(default_factory=list)


def infer_dims(module: Any, batch: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Sizes of the named dimensions read off the per-example shapes of the given inputs."""
    dims: dict[str, int] = {}
    for name, (shape, _kind) in module.INPUTS.items():
        if name not in batch:
            continue
        actual = np.shape(batch[name])[1:]
        if len(actual) != len(shape):
            raise ValueError(f"input '{name}' has per-example shape {actual}, declared {shape}")
        for d, size in zip(shape, actual, strict=True):
            if isinstance(d, str) and dims.setdefault(d, size) != size:
                raise ValueError(f"dimension '{d}' is both {dims[d]} and {size}")
    return dims


def _initial_params(
    module: Any, batch: Mapping[str, np.ndarray], dims: Mapping[str, int] | None, seed: int
) -> Arrays:
    """``module.init_params`` with declared sizes, sizes read off the data, then ``dims``."""
    sizes = {k: v for k, v in module.DIMS.items() if v is not None}
    sizes.update(infer_dims(module, batch))
    sizes.update(dims or {})
    used = {d for shape in module.PARAMS.values() for d in shape if isinstance(d, str)}
    missing = sorted(used - sizes.keys())
    if missing:
        raise ValueError(f"sizes of {', '.join(missing)} unknown; pass dims={{...}}")
    return module.init_params(seed=seed, dims=sizes)


def evaluate(
    module: Any, params: Arrays, batch: Mapping[str, np.ndarray], target: str, prob_name: str
) -> tuple[float, float]:
    """(mean per-example loss, accuracy) with accuracy = mean(argmax p == argmax t)."""
    _loss, cache = module.forward(params, dict(batch))
    if prob_name not in cache:
        raise KeyError(f"forward cache has no '{prob_name}' (have {', '.join(cache)})")
    pred = np.argmax(cache[prob_name], axis=-1)
    truth = np.argmax(batch[target], axis=-1)
    return float(np.mean(cache[module.LOSS])), float(np.mean(pred == truth))


def train(
    module: Any,
    X: np.ndarray,
    T: np.ndarray,
    *,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 0.5,
    optimizer: str = "sgd",
    seed: int = 0,
    input_names: tuple[str, str] = ("x", "t"),
    prob_name: str = "p",
    dims: Mapping[str, int] | None = None,
    params: Arrays | None = None,
    log: Callable[[str], Any] | None = print,
) -> TrainResult:
    """Minibatch training with ``module.loss_and_grad``, reshuffled every epoch.

    Parameters start from ``params`` or ``module.init_params(seed, dims)``, where unspecified
    sizes are read off X and T. After each epoch the whole set is evaluated and one line
    ``epoch  3  loss 0.4123  acc 0.913`` is logged (``log=None`` silences it).
    """
    x_name, t_name = input_names
    data = {x_name: np.asarray(X, dtype=np.float64), t_name: np.asarray(T, dtype=np.float64)}
    n = len(data[x_name])
    if len(data[t_name]) != n:
        raise ValueError(f"X has {n} rows but T has {len(data[t_name])}")
    rng = np.random.default_rng(seed)
    theta = dict(params) if params is not None else _initial_params(module, data, dims, seed)
    opt = Optimizer.make(optimizer, epsilon=lr)
    losses: list[float] = []
    accuracies: list[float] = []
    width = max(2, len(str(epochs)))
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            _loss, grads = module.loss_and_grad(theta, {k: v[idx] for k, v in data.items()})
            theta = opt.step(theta, grads)
        loss, acc = evaluate(module, theta, data, t_name, prob_name)
        losses.append(loss)
        accuracies.append(acc)
        if log is not None:
            log(f"epoch {epoch:>{width}}  loss {loss:.4f}  acc {acc:.3f}")
    final = accuracies[-1] if accuracies else evaluate(module, theta, data, t_name, prob_name)[1]
    return TrainResult(losses, final, theta, accuracies)
