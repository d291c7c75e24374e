"""A generated module as the checks see it: its protocol, loading by path, random data.

:class:`GradModule` names the module's API; :func:`load_module` imports a file under a
fresh name; :func:`random_params`, :func:`random_input` and :func:`random_batch` draw
points that respect each input's kind (real, one-hot, probability, binary).
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from derive.errors import suggest

Arrays = dict[str, np.ndarray]
KINDS = ("real", "one_hot", "probability", "binary")

_load_counter = itertools.count()


class GradModule(Protocol):
    """The interface of an emitted module (a module object or any object with these names)."""

    NAME: str
    LOSS: str
    REDUCTION: str
    DIMS: dict[str, int | None]
    INPUTS: dict[str, tuple[tuple[str | int, ...], str]]
    PARAMS: dict[str, tuple[str | int, ...]]

    def forward(self, params: Arrays, batch: Arrays) -> tuple[float, dict[str, Any]]: ...

    def backward(
        self,
        params: Arrays,
        batch: Arrays,
        cache: dict[str, Any],
        g_loss: np.ndarray | None = None,
    ) -> Arrays: ...

    def loss_and_grad(self, params: Arrays, batch: Arrays) -> tuple[float, Arrays]: ...

    def init_params(
        self, seed: int = 0, dims: dict[str, int] | None = None, dtype: Any = np.float64
    ) -> Arrays: ...


def load_module(path: str | Path) -> ModuleType:
    """Import a ``.py`` file by path under a fresh name ``_derive_loaded_<stem>_<k>``.

    The module is registered in ``sys.modules`` under that unique name (so dataclasses and
    pickling inside it work); loading the same file twice gives two independent modules.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no module file at {path}")
    name = f"_derive_loaded_{path.stem}_{next(_load_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _shape_dims(module: GradModule) -> Iterable[str | int]:
    """Every entry of every declared input and parameter shape."""
    for shape, _kind in module.INPUTS.values():
        yield from shape
    for shape in module.PARAMS.values():
        yield from shape


def resolve_dims(
    module: GradModule, overrides: Mapping[str, int] | None = None, default: int = 3
) -> dict[str, int]:
    """Concrete size of every named dimension.

    Declared sizes are kept, unspecified ones (``None`` or used in a shape but never declared)
    become ``default``, and ``overrides`` win over both. An override naming no dimension of the
    module is a ``ValueError`` (with a spelling suggestion).
    """
    dims = {name: default if size is None else int(size) for name, size in module.DIMS.items()}
    for d in _shape_dims(module):
        if isinstance(d, str):
            dims.setdefault(d, default)
    for name, size in (overrides or {}).items():
        if name not in dims:
            hint = suggest(name, dims)
            raise ValueError(f"unknown dimension '{name}'" + (f"; {hint}" if hint else ""))
        dims[name] = int(size)
    bad = {name: size for name, size in dims.items() if size < 1}
    if bad:
        raise ValueError(f"dimension sizes must be positive: {bad}")
    return dims


def concrete_shape(shape: tuple[str | int, ...], dims: Mapping[str, int]) -> tuple[int, ...]:
    """Replace dimension names in ``shape`` by their sizes."""
    return tuple(dims[d] if isinstance(d, str) else int(d) for d in shape)


def random_params(module: GradModule, dims: Mapping[str, int], rng: np.random.Generator) -> Arrays:
    """Every parameter drawn i.i.d. from N(0, 0.5^2), float64 (scales such as gamma included)."""
    return {
        name: 0.5 * rng.standard_normal(concrete_shape(shape, dims))
        for name, shape in module.PARAMS.items()
    }


def random_input(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """One batch-first input of the given kind and full shape ``(m, *per_example)``.

    real: N(0, 1); one_hot: rows e_j over the last axis with j uniform; probability: rows from
    Dirichlet(1, ..., 1) over the last axis; binary: 0 or 1 with probability 1/2 each.
    """
    if kind == "real":
        return rng.standard_normal(shape)
    if kind == "binary":
        return rng.integers(0, 2, size=shape).astype(np.float64)
    if kind not in ("one_hot", "probability"):
        raise ValueError(f"unknown input kind '{kind}' (expected one of {', '.join(KINDS)})")
    if len(shape) < 2:
        raise ValueError(f"a {kind} input needs a class axis, got per-example shape ()")
    *lead, k = shape
    if kind == "probability":
        return rng.dirichlet(np.ones(k), size=tuple(lead))
    return np.eye(k)[rng.integers(0, k, size=tuple(lead))]


def random_batch(
    module: GradModule, dims: Mapping[str, int], m: int, rng: np.random.Generator
) -> Arrays:
    """A batch of ``m`` examples for every declared input, each drawn by its kind."""
    return {
        name: random_input(kind, (m, *concrete_shape(shape, dims)), rng)
        for name, (shape, kind) in module.INPUTS.items()
    }
