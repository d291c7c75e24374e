"""``derive train``: derive and emit the spec, load its data, train it, report and save."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from derive.errors import SpecError
from derive.train.datasets import Roles, load_data
from derive.train.fit import History, Settings, fit
from derive.train.optim import Optimizer
from derive.train.plots import learning_curves, require_matplotlib
from derive.train.progress import LineProgress
from derive.train.schedules import Schedule, schedule_names


@dataclass(frozen=True)
class TrainOptions:
    data: str
    optimizer: str = "adam"
    epochs: int = 30
    batch_size: int = 32
    lr: float | None = None
    schedule: str = "constant"
    val_split: float = 0.2
    patience: int | None = 10
    seed: int = 0
    dims: tuple[tuple[str, int], ...] = ()
    plot: str | None = None
    save: str | None = None
    json: bool = False


def load_generated(spec: str | Path) -> Any:
    """Derive ``spec``, emit its module into a temporary folder and import it."""
    from derive.pipeline import generate
    from derive.verify.module import load_module

    with tempfile.TemporaryDirectory(prefix="derive-train-") as tmp:
        return load_module(generate(spec, tmp).path)


def initial_params(module: Any, data_dims: dict[str, int], opts: TrainOptions, where: str):
    """Sizes from the spec, then the data, then ``--dim``; all must be known."""
    sizes = {k: v for k, v in module.DIMS.items() if v is not None}
    sizes.update(data_dims)
    sizes.update(dict(opts.dims))
    used = {d for shape in module.PARAMS.values() for d in shape if isinstance(d, str)}
    missing = sorted(used - sizes.keys())
    if missing:
        raise SpecError(
            f"no size for {', '.join(missing)}: the spec leaves it open and the data cannot "
            "tell it",
            file=where,
            hint=f"give it in the spec's [dims] or as --dim {missing[0]}=SIZE",
        )
    return module.init_params(seed=opts.seed, dims=sizes)


def parse_dims(items: list[str]) -> tuple[tuple[str, int], ...]:
    """``["m=32"]`` -> ``(("m", 32),)``; anything else is a user error."""
    out = []
    for item in items:
        name, _, size = item.partition("=")
        if not name.strip().isidentifier() or not size.strip().isdigit() or int(size) < 1:
            raise SpecError(f"--dim {item!r}: expected NAME=SIZE with SIZE >= 1", file="derive")
        out.append((name.strip(), int(size)))
    return tuple(out)


def check_output(path: str | None, option: str) -> None:
    """Refuse an output path whose folder cannot be written, before any work is done."""
    if path is None:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
        raise SpecError(
            f"{option} {path}: cannot write a file there",
            file="derive",
            hint="give a file name in an existing, writable folder",
        )


def _check_options(opts: TrainOptions, where: str) -> None:
    check_output(opts.plot, "--plot")
    check_output(opts.save, "--save")
    if opts.schedule not in schedule_names():
        raise SpecError(
            f"unknown schedule '{opts.schedule}' (choose {', '.join(schedule_names())})",
            file="derive train",
        )
    problems = []
    if opts.epochs < 1:
        problems.append("--epochs must be at least 1")
    if opts.batch_size < 1:
        problems.append("--batch-size must be at least 1")
    if not 0 <= opts.val_split < 1:
        problems.append("--val-split must lie in [0, 1)")
    if opts.lr is not None and not opts.lr >= 0:
        problems.append("--lr must be a number >= 0")
    if opts.patience is not None and opts.patience < 1:
        problems.append("--patience must be at least 1")
    if problems:
        raise SpecError("; ".join(problems), file=where)


def save_weights(params: dict[str, np.ndarray], path: str | Path) -> Path:
    """``np.savez`` through a temporary file: ``dict(np.load(path))`` is the module's params.

    A module with batch norm also gets its running statistics (``z1.mean``, ``z1.var``: the
    ``state`` of ``forward``); their names are not identifiers, so no parameter has them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **params)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def run_train(
    spec: str, opts: TrainOptions, out: TextIO | None = None, err: TextIO | None = None
) -> History:
    """The whole command; returns the history. User mistakes raise SpecError before training."""
    out = out or sys.stdout
    err = err or sys.stderr
    _check_options(opts, spec)
    if opts.plot:
        require_matplotlib()
    try:
        optimizer = Optimizer.make(opts.optimizer)
    except ValueError as exc:
        raise SpecError(str(exc), file="derive train") from None
    if opts.lr is not None:
        optimizer.hyper["epsilon"] = opts.lr
    module = load_generated(spec)
    roles = Roles.of(module, spec)
    data = load_data(opts.data, module, spec)
    params = initial_params(module, data.dims, opts, spec)
    train, val = data.split(opts.val_split, opts.seed)
    steps = opts.epochs * -(-len(train) // opts.batch_size)
    schedule = Schedule.make(opts.schedule, optimizer.hyper["epsilon"], steps)
    progress = LineProgress(err if opts.json else out, opts.epochs)
    settings = Settings(opts.epochs, opts.batch_size, opts.patience, opts.seed)
    history = fit(module, params, train, val, roles, optimizer, schedule, settings, progress)
    if opts.save:
        save_weights({**history.params, **(history.state or {})}, opts.save)
    if opts.plot:
        title = f"{module.NAME} on {Path(opts.data).name}: {optimizer.rule.title}"
        learning_curves(history, opts.plot, title)
    _report(history, module, opts, len(train), len(val) if val else 0, out)
    return history


def _report(
    history: History, module: Any, opts: TrainOptions, n_train: int, n_val: int, out: TextIO
) -> None:
    if opts.json:
        result = {
            "spec": module.NAME,
            "data": opts.data,
            "optimizer": opts.optimizer,
            "schedule": opts.schedule,
            "examples": {"train": n_train, "validation": n_val},
            **history.to_json(),
            "saved": opts.save,
            "plot": opts.plot,
        }
        print(json.dumps(result, indent=2), file=out)
        return
    best = history.best
    stop = "stopped early, " if history.stopped_early else ""
    figures = f"loss {best.train_loss:.4f}"
    if best.val_loss is not None:
        figures += f", validation loss {best.val_loss:.4f}"
    if best.val_acc is not None:
        figures += f", validation accuracy {best.val_acc:.3f}"
    elif best.train_acc is not None:
        figures += f", accuracy {best.train_acc:.3f}"
    print(
        f"{stop}best epoch {history.best_epoch} of {len(history.records)} "
        f"({n_train} training, {n_val} validation examples): {figures}",
        file=out,
    )
    for what, path in (("weights", opts.save), ("learning curves", opts.plot)):
        if path:
            print(f"{what}: {path}", file=out)


def run_analyze(
    specs: list[str],
    dims: tuple[tuple[str, int], ...],
    seed: int,
    batch: int,
    plot: str | None,
    as_json: bool,
    out: TextIO | None = None,
) -> None:
    """Parameter counts and gradient flow for each spec; one table (and plot) for them all."""
    out = out or sys.stdout
    from derive.train.analyze import analysis_text, analyze_spec
    from derive.train.plots import gradient_flow

    check_output(plot, "--plot")
    if plot:
        require_matplotlib()
    results = [analyze_spec(spec, dict(dims), seed, batch) for spec in specs]
    if plot:
        series = {r.name: [(f.node, f.norm) for f in r.flow] for r in results}
        gradient_flow(series, plot, f"Gradient flow at initialization (batch {batch}, seed {seed})")
    if as_json:
        payload = {"seed": seed, "batch": batch, "specs": [r.to_json() for r in results]}
        print(json.dumps(payload, indent=2), file=out)
    else:
        print(analysis_text(results, seed, batch), file=out)
        if plot:
            print(f"plot: {plot}", file=out)
