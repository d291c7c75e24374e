"""Elementwise ops with a kink: the derivative at the kink is a stated convention.

``at_zero`` is f'(0); it decides which side of the kink ``z = 0`` belongs to, so the
derivative ``sympy.diff`` gives is the one the convention states.
"""

from __future__ import annotations

from typing import Any

from derive.ops.table import Op, OpKind

E = OpKind.ELEMENTWISE


def _relu(sp: Any, z: Any, at_zero: Any = 0) -> Any:
    cond = z >= 0 if at_zero == 1 else z > 0
    return sp.Piecewise((z, cond), (0, True))


def _relu_params(values: list[Any]) -> list[Any]:
    (at_zero,) = values
    if not (at_zero.is_number and float(at_zero) in (0.0, 1.0)):
        raise ValueError("relu: at_zero (f'(0)) must be 0 or 1", None)
    return [int(float(at_zero))]


def _leaky_relu(sp: Any, z: Any, slope: Any, at_zero: Any = 1) -> Any:
    cond = z >= 0 if at_zero == 1 else z > 0
    return sp.Piecewise((z, cond), (slope * z, True))


def _leaky_relu_params(values: list[Any]) -> list[Any]:
    slope, at_zero = values
    one = at_zero.is_number and float(at_zero) == 1.0
    if at_zero != slope and not one:
        raise ValueError(
            "leaky_relu: at_zero (f'(0)) must be 1 or the slope",
            "the kink belongs to one side: at_zero=1 (right) or at_zero=slope (left)",
        )
    return [None, 1 if one else 0]  # None: keep the slope as written


OPS = [
    Op(
        "relu",
        E,
        ("z",),
        {"at_zero": 0.0},
        doc="max(z, 0); at_zero is f'(0)",
        definition=_relu,
        numpy="np.maximum({z}, 0)",
        latex=r"\operatorname{ReLU}",
        check_params=_relu_params,
    ),
    Op(
        "leaky_relu",
        E,
        ("z",),
        {"slope": 0.01, "at_zero": 1.0},
        doc="z if z > 0 else slope*z; at_zero is f'(0)",
        definition=_leaky_relu,
        numpy="np.where({z} > 0, {z}, {slope_factor} * {z_factor})",
        latex=r"\operatorname{LReLU}",
        check_params=_leaky_relu_params,
    ),
]
