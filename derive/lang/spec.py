"""Reading a TOML network spec into a checked :class:`Spec`.

Every problem is a :class:`~derive.errors.SpecError` carrying the file, the 1-based line
of the offending key and a hint on how to mend it. ``tomllib`` reports no positions for
valid documents, so a small line scanner (:class:`_Locator`) maps key paths to lines.
Shapes are not checked here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from derive.errors import SpecError
from derive.lang.context import _Ctx
from derive.lang.penalties import read_penalties
from derive.lang.records import Spec
from derive.lang.scope import _check_forward, _check_op_bodies, _check_unique, _Scope
from derive.lang.sections import (
    _check_top,
    _read_constants,
    _read_dims,
    _read_forward,
    _read_latex,
    _read_loss,
    _read_ops,
    _read_string,
    _read_tensors,
)
from derive.lang.toml_text import _load_toml, _Locator

# ---------------------------------------------------------------------------------------
# Public entry points


def load_spec(path: str | Path) -> Spec:
    """Read and check the spec file at ``path``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(
            f"cannot read the spec file: {err.strerror or err}",
            file=str(path),
            hint="check the path; a spec is a TOML file such as examples/mlp.toml",
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            "the file is not valid UTF-8",
            file=str(path),
            line=raw[: err.start].count(b"\n") + 1,
            hint="save the spec as UTF-8 text",
        ) from None
    return _parse(text, str(path), hashlib.sha256(raw).hexdigest())


def parse_spec(text: str, file: str = "<string>") -> Spec:
    """Check spec ``text``; ``file`` is only used in error messages and ``Spec.file``."""
    return _parse(text, file, hashlib.sha256(text.encode("utf-8")).hexdigest())


def _parse(text: str, file: str, digest: str) -> Spec:
    """Read every section in turn, then cross-check names and expressions."""
    ctx = _Ctx(file, _Locator(text))
    data = _load_toml(text.removeprefix("\ufeff"), ctx)
    _check_top(data, ctx)
    name = _read_string(data, "name", ctx)
    description = _read_string(data, "description", ctx)
    dims = _read_dims(data, ctx)
    constants = _read_constants(data, ctx)
    inputs = _read_tensors(data, "inputs", dims, ctx)
    params = _read_tensors(data, "params", dims, ctx)
    ops = _read_ops(data, ctx)
    forward = _read_forward(data, ctx)
    lines = _check_unique(ctx, dims, inputs, params, constants, ops, forward)
    scope = _Scope(dims, inputs, params, constants, ops, forward)
    _check_op_bodies(scope, ctx)
    _check_forward(scope, ctx)
    loss, reduction = _read_loss(data, scope, ctx)
    latex = _read_latex(data, lines, ctx)
    penalties = read_penalties(data, params, reduction, ctx)
    loss_line = ctx.line("loss", "output")
    if loss_line is not None:
        lines.setdefault("loss", loss_line)
    return Spec(
        file=file,
        name=name,
        description=description,
        dims=dims,
        inputs=inputs,
        params=params,
        constants=constants,
        ops=ops,
        forward=forward,
        loss=loss,
        reduction=reduction,
        lines=lines,
        sha256=digest,
        source=text,
        latex=latex,
        penalties=penalties,
    )
