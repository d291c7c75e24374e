"""Smooth elementwise ops: ``f(z)`` applied to every entry.

Each record is the whole op: signature, SymPy definition (its derivative is ``sympy.diff``
of it), NumPy spelling (stable where the naive form overflows) and LaTeX spelling.
"""

from __future__ import annotations

from derive.ops.table import Op, OpKind

E = OpKind.ELEMENTWISE

SIGMOID_HELPER = '''def _sigmoid(z):
    """1 / (1 + e^-z); where e^-z overflows (z far below 0) the value is its limit, 0."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))'''

SOFTPLUS_HELPER = '''def _softplus(z):
    """log(1 + e^z), without overflow."""
    return np.logaddexp(0, z)'''

OPS = [
    Op("exp", E, ("z",), doc="e^z", sympy="exp", numpy="np.exp({z})"),
    Op("log", E, ("z",), doc="natural logarithm", sympy="log", numpy="np.log({z})", latex=r"\log"),
    Op("sqrt", E, ("z",), doc="square root", sympy="sqrt"),
    Op("abs", E, ("z",), doc="|z|", sympy="Abs", numpy="np.abs({z})"),
    Op(
        "sigmoid",
        E,
        ("z",),
        doc="1/(1+e^-z)",
        definition=lambda sp, z: 1 / (1 + sp.exp(-z)),
        numpy="_sigmoid({z})",
        numpy_helper=SIGMOID_HELPER,
        latex=r"\sigma",
    ),
    Op(
        "tanh",
        E,
        ("z",),
        doc="hyperbolic tangent",
        sympy="tanh",
        numpy="np.tanh({z})",
        latex=r"\tanh",
    ),
    Op(
        "softplus",
        E,
        ("z",),
        doc="log(1 + e^z)",
        definition=lambda sp, z: sp.log(1 + sp.exp(z)),
        numpy="_softplus({z})",
        numpy_helper=SOFTPLUS_HELPER,
        latex=r"\operatorname{softplus}",
    ),
]

GELU_HELPER = '''def _gelu(z):
    """GELU, tanh approximation: z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))."""
    return 0.5 * z * (1 + np.tanh(0.7978845608028654 * (z + 0.044715 * z**3)))'''

OPS.append(
    Op(
        "gelu",
        E,
        ("z",),
        doc="z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))), the tanh approximation of z Phi(z)",
        definition=lambda sp, z: (
            z / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (z + sp.Rational(44715, 10**6) * z**3)))
        ),
        numpy="_gelu({z})",
        numpy_helper=GELU_HELPER,
        latex=r"\operatorname{GELU}",
    )
)
