"""The op table: one record per op, read by the reader, builder, printers, template and LaTeX."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.emit.printers import NumPyIndexPrinter
from derive.graph.builder import Builder
from derive.lang import naming
from derive.lang.naming import API
from derive.ops.functions import ELEMENTWISE
from derive.ops.signatures import RESERVED_NAMES
from derive.ops.table import BUILTIN_OPS, OpKind, elementwise_ops
from derive.tex.printer import OP_LATEX
from derive.verify.module import GradModule, load_module


@pytest.mark.parametrize("op", [op.name for op in elementwise_ops()])
def test_every_elementwise_op_has_a_sympy_function_and_a_numpy_spelling(op: str) -> None:
    record = BUILTIN_OPS[op]
    assert (record.definition is None) != (record.sympy is None)
    fn = ELEMENTWISE[op]
    if op == "sqrt":  # printed as a power
        return
    z = __import__("sympy").Symbol("z", real=True)
    call = fn(z, *[1 for _ in record.kwargs])
    code = NumPyIndexPrinter([]).doprint(call)
    assert code == record.numpy.format(
        z="z",
        z_factor="z",
        **dict.fromkeys(record.kwargs, "1"),
        **{f"{k}_factor": "1" for k in record.kwargs},
    )


def test_macros_and_reductions_have_no_numpy_spelling() -> None:
    for op in BUILTIN_OPS.values():
        if op.kind is OpKind.MACRO:
            assert op.macro and op.definition is None and op.numpy is None
        else:
            assert not op.macro


def test_latex_spellings_come_from_the_table() -> None:
    for op in BUILTIN_OPS.values():
        if op.latex is not None:
            assert OP_LATEX[op.name] == op.latex


def test_a_helper_op_cannot_be_replaced_by_a_custom_op(tmp_path: Path) -> None:
    """stop/size/total are bound inside the builder: a custom op of that name changes nothing."""

    def softmax_net(custom: bool):
        b = Builder("sm", {"k": 3}, taken=["f", "t", "w", "p", "L"])
        f, t = b.input("f", ["k"]), b.input("t", ["k"], kind="one_hot")
        w = b.param("w", ["k"])
        if custom:
            from derive.lang.expr import parse_expression

            for name in ("stop", "size", "total"):
                b.custom_ops[name] = (("a",), parse_expression("a * 0"))
        p = b.let("p", b.call("softmax", f + w))
        b.let("L", -b.call("sum", t * b.call("log", p)))
        return render(derive(b.loss("L")))

    plain, custom = softmax_net(False), softmax_net(True)
    assert plain == custom
    path = tmp_path / "sm.py"
    path.write_text(custom, encoding="utf-8")
    mod = load_module(path)
    f = np.array([[1000.0, 0.0, -3.0]])  # the max shift (stop) is what keeps this finite
    loss, _ = mod.loss_and_grad({"w": np.zeros(3)}, {"f": f, "t": np.eye(3)[[0]]})
    assert np.isfinite(loss)


def test_module_api_is_written_once() -> None:
    """The protocol the checks use, the reserved names and the emitted module agree."""
    members = set(GradModule.__annotations__) | {
        n for n, v in vars(GradModule).items() if inspect.isfunction(v) and not n.startswith("_")
    }
    assert members == {*API.functions, *API.constants}
    assert naming.MODULE_NAMES <= RESERVED_NAMES
    b = Builder("api", {"d": 2}, taken=["x", "w", "L"])
    x, w = b.input("x", ["d"]), b.param("w", ["d"])
    b.let("L", b.call("sum", w * x))
    text = render(derive(b.loss("L")))
    for name in API.functions:
        assert f"\ndef {name}(" in text
    for name in API.constants:
        assert f"\n{name} = " in text
    assert f"{API.seed}=None" in text
