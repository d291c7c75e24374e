"""Op parameters are given positionally or by keyword, as in NumPy and PyTorch."""

from __future__ import annotations

import pytest

from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.errors import SpecError
from derive.graph.builder import Builder, graph_from_spec
from derive.lang.spec import parse_spec

SPEC = """
name = "params"
[dims]
d = 3
m = 4
[constants]
alpha = 0.2
[inputs]
x = {{ shape = ["d"] }}
y = {{ shape = ["m"] }}
[params]
W = {{ shape = ["m", "d"] }}
gamma = {{ shape = ["m"] }}
beta = {{ shape = ["m"] }}
[ops]
scaled = {{ args = ["z", "a"], expr = "a * tanh(z)" }}
[forward]
z = "W @ x"
h = "{call}"
L = "sum((h - y)**2)"
[loss]
output = "L"
"""


def module_text(call: str) -> str:
    """The generated module after its header (which holds the spec's hash)."""
    text = render(derive(graph_from_spec(parse_spec(SPEC.format(call=call)))))
    return text[text.index("import numpy") :]


@pytest.mark.parametrize(
    ("positional", "keyword"),
    [
        ("leaky_relu(z, 0.1)", "leaky_relu(z, slope=0.1)"),
        ("leaky_relu(z, alpha)", "leaky_relu(z, slope=alpha)"),
        ("leaky_relu(z, alpha, alpha)", "leaky_relu(z, slope=alpha, at_zero=alpha)"),
        ("relu(z, 1)", "relu(z, at_zero=1)"),
        ("batchnorm(z, gamma, beta, 1e-3)", "batchnorm(z, gamma, beta, eps=1e-3)"),
        ("batchnorm(z, gamma, beta=beta)", "batchnorm(z, gamma, beta)"),
        ("scaled(z, a=alpha)", "scaled(z, alpha)"),
    ],
)
def test_positional_parameters_mean_the_keywords(positional: str, keyword: str) -> None:
    assert module_text(positional) == module_text(keyword)


def test_positional_parameter_is_used() -> None:
    assert "0.1 * z" in module_text("leaky_relu(z, 0.1)")
    assert "+ 0.001)" in module_text("batchnorm(z, gamma, beta, 1e-3)")


def test_python_builder_takes_positional_parameters() -> None:
    def text(*args: object, **kwargs: object) -> str:
        b = Builder("bp", {"d": 3})
        x, w = b.input("x", ["d"]), b.param("w", ["d"])
        h = b.let("h", b.call("leaky_relu", w * x, *args, **kwargs))
        b.let("L", b.call("sum", h))
        text = render(derive(b.loss("L")))
        return text[text.index("import numpy") :]

    assert text(0.1) == text(slope=0.1)
    with pytest.raises(SpecError) as err:
        text(0.1, 1, 2)
    assert err.value.hint == "call it as leaky_relu(z, slope=0.01, at_zero=1)"


@pytest.mark.parametrize(
    ("call", "hint"),
    [
        ("leaky_relu(z, 0.1, 1, 3)", "call it as leaky_relu(z, slope=0.01, at_zero=1)"),
        ("batchnorm(z, gamma)", "call it as batchnorm(z, gamma, beta, eps=1e-05)"),
        ("scaled(z)", "call it as scaled(z, a)"),
    ],
)
def test_hint_shows_the_whole_signature(call: str, hint: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.format(call=call))
    assert err.value.hint == hint
