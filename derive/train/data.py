"""The small dataset shipped with the package (three Gaussian blobs) and one-hot labels."""

from __future__ import annotations

import csv
import io
from importlib import resources
from pathlib import Path

import numpy as np

BLOBS_HEADER = ("x1", "x2", "x3", "x4", "label")
BLOBS_CENTERS = np.array(
    [
        [1.6, 0.8, -0.4, 0.0],
        [-1.2, 1.0, 0.8, -0.6],
        [0.2, -1.4, -0.2, 1.0],
    ]
)
BLOBS_SPREAD = 0.8


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
