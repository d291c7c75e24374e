"""Minibatch training of a generated module, and the small dataset shipped with the package.

Update rules, with learning rate epsilon and gradient g of the minibatch loss:

    SGD       theta <- theta - epsilon g
    momentum  v <- alpha v - epsilon g;  theta <- theta + v
    Adam      t <- t + 1;  s <- rho1 s + (1 - rho1) g;  r <- rho2 r + (1 - rho2) g*g;
              s_hat = s / (1 - rho1^t);  r_hat = r / (1 - rho2^t);
              theta <- theta - epsilon s_hat / (sqrt(r_hat) + delta)

with alpha = 0.9, rho1 = 0.9, rho2 = 0.999, delta = 1e-8.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]

BLOBS_HEADER = ("x1", "x2", "x3", "x4", "label")
BLOBS_CENTERS = np.array(
    [
        [1.6, 0.8, -0.4, 0.0],
        [-1.2, 1.0, 0.8, -0.6],
        [0.2, -1.4, -0.2, 1.0],
    ]
)
BLOBS_SPREAD = 0.8
OPTIMIZERS = ("sgd", "momentum", "adam")


# ---------------------------------------------------------------------------------------------
# data


def make_blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in R^4: x = c_label + 0.8 z, z ~ N(0, I), labels balanced, shuffled.

    The centres are 2.8 to 3.4 apart, so the classes overlap a little: the nearest-centre
    (Bayes) rule is right about 94% of the time.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(BLOBS_CENTERS)
    rng.shuffle(labels)
    X = BLOBS_CENTERS[labels] + BLOBS_SPREAD * rng.standard_normal((n, BLOBS_CENTERS.shape[1]))
    return X, labels


def blobs_csv_text(n: int = 300, seed: int = 0) -> str:
    """``make_blobs`` as CSV text: header ``x1,x2,x3,x4,label``, features with 4 decimals."""
    X, labels = make_blobs(n, seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BLOBS_HEADER)
    for row, label in zip(X, labels, strict=True):
        writer.writerow([f"{v:.4f}" for v in row] + [str(int(label))])
    return out.getvalue()


def write_blobs_csv(path: str | Path, n: int = 300, seed: int = 0) -> Path:
    """Write ``blobs_csv_text(n, seed)`` to ``path`` (how ``derive/data/blobs.csv`` was made)."""
    path = Path(path)
    path.write_text(blobs_csv_text(n, seed), encoding="utf-8")
    return path


def parse_blobs_csv(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 4) float64 and integer labels (n,) from CSV text with a header row."""
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], [r for r in rows[1:] if r]
    if tuple(header) != BLOBS_HEADER:
        raise ValueError(f"unexpected CSV header {header}, expected {list(BLOBS_HEADER)}")
    X = np.array([[float(v) for v in r[:-1]] for r in body], dtype=np.float64)
    labels = np.array([int(r[-1]) for r in body], dtype=np.int64)
    return X, labels


def load_blobs() -> tuple[np.ndarray, np.ndarray]:
    """The shipped dataset ``derive/data/blobs.csv``: X float64 (300, 4), labels int (300,)."""
    text = resources.files("derive").joinpath("data", "blobs.csv").read_text(encoding="utf-8")
    return parse_blobs_csv(text)


def one_hot(labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """T[b, j] = 1 if labels[b] == j else 0, float64 of shape (n, k); k defaults to max + 1."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("labels must be a 1-D integer array")
    k = int(labels.max()) + 1 if k is None else k
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}")
    return np.eye(k)[labels]


# ---------------------------------------------------------------------------------------------
# optimizers


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
    opt = Optimizer(optimizer, lr)
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
