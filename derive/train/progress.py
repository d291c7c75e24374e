"""Training progress: a bar redrawn in place on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

from typing import TextIO

from derive.train.fit import EpochRecord, Progress

BAR = 24


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def epoch_line(record: EpochRecord, epochs: int, best: bool) -> str:
    """``epoch  3/30  loss 0.4123  acc 0.913  val_loss 0.4410  val_acc 0.900  lr 1.0e-03 *``."""
    width = len(str(epochs))
    parts = [
        f"epoch {record.epoch:>{width}}/{epochs}",
        f"loss {_fmt(record.train_loss, 4)}",
        f"acc {_fmt(record.train_acc, 3)}",
    ]
    if record.val_loss is not None:
        parts += [f"val_loss {_fmt(record.val_loss, 4)}", f"val_acc {_fmt(record.val_acc, 3)}"]
    parts.append(f"lr {record.lr:.1e}")
    return "  ".join(parts) + ("  *" if best else "")


class LineProgress(Progress):
    """One line per epoch (``*`` marks a new best); on a terminal, a bar while an epoch runs."""

    def __init__(self, stream: TextIO, epochs: int, tty: bool | None = None) -> None:
        self.stream = stream
        self.epochs = epochs
        self.tty = stream.isatty() if tty is None else tty

    def batch(self, epoch: int, done: int, total: int, loss: float) -> None:
        if not self.tty:
            return
        filled = BAR * done // total
        bar = "#" * filled + "." * (BAR - filled)
        width = len(str(self.epochs))
        self.stream.write(
            f"\repoch {epoch:>{width}}/{self.epochs} [{bar}] {done}/{total}  loss {loss:.4f}"
        )
        self.stream.flush()

    def epoch(self, record: EpochRecord, best: bool) -> None:
        clear = "\r\033[K" if self.tty else ""
        self.stream.write(clear + epoch_line(record, self.epochs, best) + "\n")
        self.stream.flush()
