"""Mini-batch training of a generated module with validation and early stopping.

Each epoch reshuffles the training set (seeded), takes one optimizer step per mini-batch
on ``module.loss_and_grad`` with the scheduled learning rate ``epsilon_k`` (k counts steps),
then evaluates the mean per-example loss and the accuracy on the whole training and
validation sets. A module with dropout trains with masks drawn from (seed, step) and is
evaluated in its evaluation mode (masks of ones: the identity). Early stopping watches the
validation loss: after ``patience`` epochs without a new best, training stops, and the
parameters of the best epoch are returned.

Accuracy is reported for one-hot targets: ``argmax`` of the last cached value shaped like
the target (probabilities or logits: the argmax is the same) against ``argmax t``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from derive.train.datasets import Dataset, Roles
from derive.train.optim import Optimizer
from derive.train.schedules import Schedule

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    train_acc: float | None
    val_loss: float | None = None
    val_acc: float | None = None


@dataclass
class History:
    """Every epoch's figures, the best epoch (lowest validation loss) and its parameters."""

    records: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    params: Arrays = field(default_factory=dict)
    state: Arrays | None = None  # batch norm's running statistics at the best epoch
    steps: int = 0
    seconds: float = 0.0

    @property
    def best(self) -> EpochRecord:
        return self.records[max(self.best_epoch, 1) - 1]

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "epochs_run": len(self.records),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "steps": self.steps,
            "seconds": round(self.seconds, 3),
            "train_loss": best.train_loss,
            "train_accuracy": best.train_acc,
            "val_loss": best.val_loss,
            "val_accuracy": best.val_acc,
            "history": [asdict(r) for r in self.records],
        }


@dataclass(frozen=True)
class Settings:
    epochs: int = 30
    batch_size: int = 32
    patience: int | None = 10
    seed: int = 0


class Progress:
    """What the loop reports: a batch within an epoch, and an epoch's figures."""

    def batch(self, epoch: int, done: int, total: int, loss: float) -> None:  # pragma: no cover
        pass

    def epoch(self, record: EpochRecord, best: bool) -> None:  # pragma: no cover
        pass


def _eval_mode(module: Any, state: Arrays | None = None) -> dict[str, Any]:
    """Keyword arguments for evaluation: dropout off, batch norm by its running statistics."""
    if state is not None:
        return {"train": False, "state": state}
    return {"train": False} if getattr(module, "DROPOUT", None) else {}


def initial_state(module: Any, params: Mapping[str, np.ndarray]) -> Arrays | None:
    """Batch norm's running statistics at their start (means 0, variances 1), else None.

    The sizes come from the parameters' shapes, so open dims set by the data are known.
    """
    if not hasattr(module, "init_state"):
        return None
    sizes = {}
    for name, dims in module.PARAMS.items():
        sizes.update(zip(dims, np.shape(params[name]), strict=True))
    return module.init_state(dims=sizes)


def prediction_name(
    module: Any, params: Arrays, data: Dataset, roles: Roles, state: Arrays | None = None
) -> str | None:
    """The last cached value shaped like the one-hot target, whose argmax is the prediction."""
    if roles.t_kind != "one_hot":
        return None
    probe = data.subset(np.arange(min(len(data), 2)))
    _loss, cache = module.forward(
        params, {roles.x: probe.X, roles.t: probe.T}, **_eval_mode(module, state)
    )
    names = [
        n
        for n, v in cache.items()
        if n not in (module.LOSS, roles.t) and np.shape(v) == np.shape(probe.T)
    ]
    return names[-1] if names else None


def evaluate(
    module: Any,
    params: Arrays,
    data: Dataset,
    roles: Roles,
    pred: str | None,
    state: Arrays | None = None,
) -> tuple[float, float | None]:
    """(mean per-example loss, accuracy or None) on the whole of ``data``; dropout off, and
    batch norm by the running statistics ``state`` when given."""
    batch = {roles.x: data.X, roles.t: data.T}
    _loss, cache = module.forward(params, batch, **_eval_mode(module, state))
    loss = float(np.mean(cache[module.LOSS]))
    if pred is None:
        return loss, None
    hits = np.argmax(cache[pred], axis=-1) == np.argmax(data.T, axis=-1)
    return loss, float(np.mean(hits))


def fit(
    module: Any,
    params: Mapping[str, np.ndarray],
    train: Dataset,
    val: Dataset | None,
    roles: Roles,
    optimizer: Optimizer,
    schedule: Schedule,
    settings: Settings,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> History:
    """Train from ``params``; returns the history and the best epoch's parameters."""
    start = clock()
    theta = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    rng = np.random.default_rng(settings.seed)
    state = initial_state(module, theta)
    pred = prediction_name(module, theta, train, roles, state)
    dropout = bool(getattr(module, "DROPOUT", None))
    extra: dict[str, Any] = {} if state is None else {"state": state}
    history = History(params=theta)
    best_loss = np.inf
    n = len(train)
    batches = -(-n // settings.batch_size)
    for epoch in range(1, settings.epochs + 1):
        order = rng.permutation(n)
        lr = schedule.lr(history.steps)
        for b, begin in enumerate(range(0, n, settings.batch_size), start=1):
            idx = order[begin : begin + settings.batch_size]
            batch = {roles.x: train.X[idx], roles.t: train.T[idx]}
            if dropout:  # fresh masks every step, reproducible from the seed
                extra["seed"] = (settings.seed, history.steps)
            # batch norm's running statistics move at every step (forward updates ``state``)
            loss, grads = module.loss_and_grad(theta, batch, **extra)
            lr = schedule.lr(history.steps)
            theta = optimizer.step(theta, grads, lr=lr)
            history.steps += 1
            if progress is not None:
                progress.batch(epoch, b, batches, float(loss))
        train_loss, train_acc = evaluate(module, theta, train, roles, pred, state)
        val_loss, val_acc = (
            evaluate(module, theta, val, roles, pred, state) if val else (None, None)
        )
        record = EpochRecord(epoch, lr, train_loss, train_acc, val_loss, val_acc)
        history.records.append(record)
        watched = val_loss if val_loss is not None else train_loss
        improved = bool(watched < best_loss)
        if improved:
            best_loss, history.best_epoch, history.params = watched, epoch, theta
            history.state = None if state is None else dict(state)
        if progress is not None:
            progress.epoch(record, improved)
        if not np.isfinite(watched):
            history.stopped_early = True
            break
        patience = settings.patience
        if val is not None and patience is not None and epoch - history.best_epoch >= patience:
            history.stopped_early = epoch < settings.epochs
            break
    history.seconds = clock() - start
    return history
