"""PNG plots with matplotlib (the optional ``plot`` extra): learning curves, gradient flow."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from derive.errors import SpecError
from derive.train.fit import History


def require_matplotlib(option: str = "--plot") -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a user error saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError(
            f"{option} needs matplotlib, which is not installed",
            file="derive",
            hint="pip install 'derive[plot]' (or pip install matplotlib), or leave out " + option,
        ) from None
    return plt


def _save(fig: Any, path: Path) -> None:
    """Write the PNG through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def learning_curves(history: History, path: str | Path, title: str) -> Path:
    """Loss (left) and accuracy (right) per epoch, training and validation; best epoch marked."""
    plt = require_matplotlib()
    epochs = [r.epoch for r in history.records]
    has_acc = any(r.train_acc is not None for r in history.records)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4))
    axes = list(axes) if has_acc else [axes]
    panels = [("loss", "train_loss", "val_loss")]
    if has_acc:
        panels.append(("accuracy", "train_acc", "val_acc"))
    for ax, (label, tr, va) in zip(axes, panels, strict=True):
        ax.plot(epochs, [getattr(r, tr) for r in history.records], "o-", ms=3, label="training")
        vals = [getattr(r, va) for r in history.records]
        if any(v is not None for v in vals):
            ax.plot(epochs, vals, "s-", ms=3, label="validation")
        ax.axvline(history.best_epoch, color="grey", ls="--", lw=1, label="best (kept)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    _save(fig, path)
    plt.close(fig)
    return path


def gradient_flow(
    series: Mapping[str, Sequence[tuple[str, float]]], path: str | Path, title: str
) -> Path:
    """Per-layer gradient norms (log scale) for each network, input layer on the left."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, points in series.items():
        ax.plot(range(1, len(points) + 1), [v for _, v in points], "o-", ms=4, label=name)
    ax.set_yscale("log")
    ax.set_xticks(range(1, max((len(p) for p in series.values()), default=1) + 1))
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel("||dL/dW|| at initialization")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    _save(fig, path)
    plt.close(fig)
    return path
