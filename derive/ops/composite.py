"""Composite ops, written as macros in the spec language itself.

A macro is a list of ``(name, expression)`` statements over the op's arguments and
parameters; the last statement is the result.  A user's ``[ops]`` entry goes through the
same machinery, so nothing here has a derivative of its own.
"""

from __future__ import annotations

from derive.ops.table import Op, OpKind

M = OpKind.MACRO

OPS = [
    Op(
        "softmax",
        M,
        ("f",),
        {"axis": -1},
        doc="e^f_j / sum_k e^f_k along axis (the last)",
        macro=(
            ("c", "stop(max(f, axis=axis, keepdims=1))"),
            ("e", "exp(f - c)"),
            ("s", "sum(e, axis=axis, keepdims=1)"),
            ("p", "e / s"),
        ),
        latex=r"\operatorname{softmax}",
    ),
    Op(
        "log_softmax",
        M,
        ("f",),
        {"axis": -1},
        doc="f_j - log sum_k e^f_k along axis (the last)",
        macro=(("out", "log(softmax(f, axis=axis))"),),
    ),
    # losses (one example; the [loss] reduction handles the batch)
    Op(
        "squared_error",
        M,
        ("yhat", "y"),
        doc="sum((yhat - y)**2)",
        macro=(("out", "sum((yhat - y)**2)"),),
    ),
    Op("cross_entropy", M, ("p", "t"), doc="-sum(t*log(p))", macro=(("out", "-sum(t * log(p))"),)),
    Op(
        "softmax_cross_entropy",
        M,
        ("f", "t"),
        doc="cross_entropy(softmax(f), t)",
        macro=(("out", "cross_entropy(softmax(f), t)"),),
    ),
    Op(
        "binary_cross_entropy",
        M,
        ("yhat", "y"),
        doc="-(y log yhat + (1-y) log(1-yhat))",
        macro=(("out", "-(y * log(yhat) + (1 - y) * log(1 - yhat))"),),
    ),
    Op(
        "bce_with_logits",
        M,
        ("z", "y"),
        doc="binary_cross_entropy(sigmoid(z), y)",
        macro=(("out", "binary_cross_entropy(sigmoid(z), y)"),),
    ),
    Op("l1", M, ("w",), doc="sum(abs(w)) over every entry", macro=(("out", "sum(abs(w))"),)),
    Op("l2", M, ("w",), doc="sum(w**2) over every entry", macro=(("out", "sum(w**2)"),)),
    # batch-coupled
    Op(
        "batchnorm",
        M,
        ("z", "gamma", "beta"),
        {"eps": 1e-5},
        doc="batch normalization",
        macro=(
            ("mu", "batch_mean(z)"),
            ("z_centered", "z - mu"),
            ("var", "batch_mean(z_centered**2)"),
            ("std", "sqrt(var + eps)"),
            ("xhat", "z_centered / std"),
            ("y", "gamma * xhat + beta"),
        ),
    ),
]
