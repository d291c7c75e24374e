"""Training data for a generated module: CSV, .npz or the bundled ``digits`` set, checked.

A data set is matched to the spec's two inputs, features ``x`` (per-example shape ``(d,)``)
and targets ``t`` (the input whose kind is not ``real``, else the last one declared):

- CSV: one example per row, the ``d`` feature columns first, then the target: one integer
  label ``0..k-1`` for a ``one_hot`` target (a 0/1 label for ``binary``), else ``k`` numbers.
  A first row that is not all numbers is a header.
- .npz: arrays named after the inputs (``x``, ``t``), or ``X`` and ``y``; integer labels of
  shape ``(n,)`` stand for a one-hot target.
- ``digits``: 1,797 8x8 images of handwritten digits (UCI, via scikit-learn; see
  ``derive/data/DIGITS_LICENSE.txt``), pixels 0..16 scaled to 0..1, labels 0..9.

Anything that does not fit (wrong column count, a NaN, a label out of range, sizes that
disagree with the spec) raises :class:`SpecError` naming the file, row and column.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from derive.errors import SpecError

DIGITS = "digits"


@dataclass(frozen=True)
class Roles:
    """Which input holds features, which holds targets, and their declared shapes/kind."""

    x: str
    t: str
    x_dims: tuple[str | int, ...]
    t_dims: tuple[str | int, ...]
    t_kind: str

    @classmethod
    def of(cls, module: Any, where: str) -> Roles:
        masks = getattr(module, "DROPOUT", {})  # made by the module itself
        inputs: Mapping[str, tuple[tuple[str | int, ...], str]] = {
            n: v for n, v in module.INPUTS.items() if n not in masks
        }
        if len(inputs) != 2:
            raise SpecError(
                f"training needs exactly two inputs (features and targets); "
                f"the spec declares {len(inputs)}: {', '.join(inputs)}",
                file=where,
            )
        names = list(inputs)
        labelled = [n for n in names if inputs[n][1] != "real"]
        t = labelled[0] if len(labelled) == 1 else names[-1]
        x = next(n for n in names if n != t)
        x_dims, t_dims = inputs[x][0], inputs[t][0]
        if len(x_dims) != 1 or len(t_dims) > 1:
            raise SpecError(
                f"training reads rows of numbers: '{x}' must be a vector and '{t}' a vector "
                f"or scalar (they are {list(x_dims)} and {list(t_dims)})",
                file=where,
            )
        return cls(x, t, tuple(x_dims), tuple(t_dims), inputs[t][1])

    @property
    def labels(self) -> bool:
        """Targets given as one integer label per example."""
        return self.t_kind in ("one_hot", "binary")


@dataclass
class Dataset:
    """Features ``X`` (n, d), targets ``T`` in the shape the module expects, sizes found."""

    X: np.ndarray
    T: np.ndarray
    dims: dict[str, int]
    source: str

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, idx: np.ndarray) -> Dataset:
        return Dataset(self.X[idx], self.T[idx], self.dims, self.source)

    def split(self, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
        """Shuffle with ``seed`` and hold out ``round(fraction n)`` examples for validation."""
        n = len(self)
        n_val = round(fraction * n)
        if n_val == 0:
            return self, None
        if n_val >= n:
            raise SpecError(
                f"--val-split {fraction} leaves no training examples out of {n}", file=self.source
            )
        order = np.random.default_rng(seed).permutation(n)
        return self.subset(order[n_val:]), self.subset(order[:n_val])


def _size(dim: str | int, dims: Mapping[str, int | None]) -> int | None:
    return dim if isinstance(dim, int) else dims.get(dim)


def load_data(source: str, module: Any, where: str) -> Dataset:
    """Read ``source`` (a .csv or .npz path, or ``digits``) for ``module``'s inputs."""
    roles = Roles.of(module, where)
    if source == DIGITS:
        text = gzip.decompress(
            resources.files("derive").joinpath("data", "digits.csv.gz").read_bytes()
        ).decode("ascii")
        X, y, lines = _read_csv_text(text, DIGITS, roles, module.DIMS, n_x=64)
        return _assemble(X / 16.0, y, roles, module.DIMS, DIGITS, lines)
    path = Path(source)
    if not path.is_file():
        raise SpecError(
            "no such data file", file=source, hint="give a .csv or .npz file, or 'digits'"
        )
    lines = None
    if path.suffix == ".npz":
        X, y = _read_npz(path, roles)
    elif path.suffix == ".csv":
        X, y, lines = _read_csv_text(path.read_text(encoding="utf-8"), source, roles, module.DIMS)
    else:
        raise SpecError("unknown data format", file=source, hint="use a .csv or .npz file")
    return _assemble(X, y, roles, module.DIMS, source, lines)


def _read_csv_text(
    text: str, where: str, roles: Roles, dims: Mapping[str, int | None], n_x: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rows of numbers and their line numbers, header skipped; errors name line and column."""
    d = n_x if n_x is not None else _size(roles.x_dims[0], dims)
    n_t = 1 if roles.labels or not roles.t_dims else _size(roles.t_dims[0], dims)
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    width: int | None = None
    for line, row in _csv_rows(text):
        cells = [c.strip() for c in row]
        if not rows and width is None and not any(_is_number(c) for c in cells):
            width = len(cells)  # a header fixes the column count
            continue
        width = width if width is not None else len(cells)
        expected = (d + n_t) if d is not None and n_t is not None else width
        if len(cells) != expected:
            raise SpecError(
                f"row {len(rows) + 1} has {len(cells)} columns, expected {expected}"
                + _layout(roles, d, n_t),
                file=where,
                line=line,
            )
        values = []
        for col, cell in enumerate(cells, start=1):
            if not _is_number(cell):
                raise SpecError(
                    f"row {len(rows) + 1}, column {col}: {cell!r} is not a number",
                    file=where,
                    line=line,
                )
            value = float(cell)
            if not math.isfinite(value):
                raise SpecError(
                    f"row {len(rows) + 1}, column {col}: {cell} is not a finite number",
                    file=where,
                    line=line,
                    hint="remove or fill in the missing values before training",
                )
            values.append(value)
        rows.append(values)
        line_numbers.append(line)
    if not rows:
        raise SpecError("no data rows", file=where)
    table = np.array(rows, dtype=np.float64)
    split = table.shape[1] - (n_t if n_t is not None else 1)
    return table[:, :split], table[:, split:], line_numbers


def _csv_rows(text: str):
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        if row and any(c.strip() for c in row):
            yield reader.line_num, row


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _layout(roles: Roles, d: int | None, n_t: int | None) -> str:
    what = "1 label" if roles.labels else f"{n_t} target values"
    return f" ({d} features for '{roles.x}', then {what} for '{roles.t}')"


def _read_npz(path: Path, roles: Roles) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    pairs = [(roles.x, roles.t), ("X", "y"), ("x", "y"), ("X", "t")]
    for xn, tn in pairs:
        if xn in arrays and tn in arrays:
            X, T = arrays[xn], arrays[tn]
            break
    else:
        raise SpecError(
            f"no arrays named '{roles.x}' and '{roles.t}' (or 'X' and 'y'); "
            f"the file has {', '.join(arrays) or 'none'}",
            file=str(path),
        )
    if X.ndim != 2:
        raise SpecError(
            f"'{xn}' has shape {X.shape}; expected (examples, features)", file=str(path)
        )
    T = T.reshape(len(T), -1) if T.ndim <= 2 else T
    if T.ndim != 2 or len(T) != len(X):
        raise SpecError(
            f"'{tn}' has shape {arrays[tn].shape} but '{xn}' has {X.shape[0]} rows", file=str(path)
        )
    for name, arr in ((xn, X), (tn, T)):
        if not np.issubdtype(arr.dtype, np.number):
            raise SpecError(f"'{name}' holds {arr.dtype}, not numbers", file=str(path))
        bad = np.argwhere(~np.isfinite(arr.astype(np.float64)))
        if len(bad):
            i, j = bad[0]
            raise SpecError(
                f"row {i + 1}, column {j + 1} of '{name}' is {arr[i, j]} (not a finite number)",
                file=str(path),
            )
    return X.astype(np.float64), T.astype(np.float64)


def _assemble(
    X: np.ndarray,
    T: np.ndarray,
    roles: Roles,
    declared: Mapping[str, int | None],
    where: str,
    lines: list[int] | None = None,
) -> Dataset:
    """Check sizes against the spec, turn labels into one-hot rows, record the sizes."""
    dims: dict[str, int] = {}
    _bind(roles.x_dims[0], X.shape[1], dims, declared, where, f"feature columns of '{roles.x}'")
    col = X.shape[1] + 1
    if roles.t_kind == "one_hot" and T.shape[1] > 1:
        T = _labels_of_one_hot(T, where)
    if roles.labels:
        if T.shape[1] != 1:
            raise SpecError(
                f"'{roles.t}' is {roles.t_kind}: give one integer label per example, "
                f"not {T.shape[1]} columns",
                file=where,
            )
        labels = T[:, 0]
        whole = labels == np.round(labels)
        if not whole.all():
            i = int(np.argmin(whole))
            raise SpecError(
                f"row {i + 1}, column {col}: label {labels[i]:g} is not a whole number",
                file=where,
                line=lines[i] if lines else None,
            )
        labels = labels.astype(np.int64)
        if roles.t_kind == "binary" or not roles.t_dims:
            k = 2
        else:
            k = _size(roles.t_dims[0], declared) or int(labels.max()) + 1
        out = np.flatnonzero((labels < 0) | (labels >= k))
        if len(out):
            i = int(out[0])
            raise SpecError(
                f"row {i + 1}, column {col}: label {labels[i]} is outside 0..{k - 1} "
                f"('{roles.t}' has {k} classes)",
                file=where,
                line=lines[i] if lines else None,
            )
        if roles.t_kind == "binary":
            T = labels.astype(np.float64).reshape((-1, *([1] if roles.t_dims else [])))
        else:
            _bind(roles.t_dims[0], k, dims, declared, where, f"classes of '{roles.t}'")
            T = np.eye(k)[labels]
    elif roles.t_dims:
        _bind(roles.t_dims[0], T.shape[1], dims, declared, where, f"target columns of '{roles.t}'")
    else:
        T = T[:, 0]
    return Dataset(X, T, dims, where)


def _labels_of_one_hot(T: np.ndarray, where: str) -> np.ndarray:
    """One-hot rows (from an .npz) back to labels, refusing rows that are not one-hot."""
    ok = np.isin(T, (0.0, 1.0)).all(axis=1) & (T.sum(axis=1) == 1)
    if not ok.all():
        i = int(np.argmin(ok))
        raise SpecError(
            f"row {i + 1} of the targets is not one-hot (one 1, the rest 0): {T[i].tolist()}",
            file=where,
        )
    return np.argmax(T, axis=1)[:, None].astype(np.float64)


def _bind(
    dim: str | int,
    size: int,
    dims: dict[str, int],
    declared: Mapping[str, int | None],
    where: str,
    what: str,
) -> None:
    want = _size(dim, declared) if isinstance(dim, str) else dim
    if want is not None and want != size:
        label = f"{dim} = {want}" if isinstance(dim, str) else f"size {want}"
        raise SpecError(
            f"the data has {size} {what} but the spec declares {label}",
            file=where,
            hint="use data that matches the spec, or change the spec's [dims]",
        )
    if isinstance(dim, str) and dims.setdefault(dim, size) != size:
        raise SpecError(f"dimension {dim} is both {dims[dim]} and {size} in the data", file=where)
