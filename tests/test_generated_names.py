"""Values derive names itself get names a reader recognises from the math."""

from __future__ import annotations

import re

import pytest

from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.graph.builder import graph_from_spec
from derive.lang.spec import parse_spec

SPEC = """
name = "names"
[dims]
d = 4
m = 5
[inputs]
x = {{ shape = ["d"] }}
r = {{ shape = ["m"] }}
[params]
W = {{ shape = ["m", "d"] }}
gamma = {{ shape = ["m"] }}
beta = {{ shape = ["m"] }}
[forward]
{forward}
L = "sum((h - r)**2)"
[loss]
output = "L"
"""


def names(forward: str) -> set[str]:
    """Every name the generated module assigns."""
    text = render(derive(graph_from_spec(parse_spec(SPEC.format(forward=forward)))))
    return set(re.findall(r"^ +(\w+) = ", text, flags=re.M))  # also inside if train:


@pytest.mark.parametrize(
    ("forward", "expected", "never"),
    [
        (
            'h = "relu(batchnorm(W @ x, gamma, beta))"',
            {"z_h", "z_centered", "std", "xhat", "y_h"},
            {"mm", "d2", "y", "v"},
        ),
        (
            'z = "W @ x"\nh = "(z - batch_mean(z)) / sqrt(batch_mean((z - batch_mean(z))**2) + 1)"',
            {"z", "std"},
            {"sqrt_z_h", "sqrt_pre"},
        ),
        ('h = "tanh(W @ x)"', {"g_z_h"}, {"mm", "g_mm"}),
    ],
)
def test_internal_values_are_named_like_the_math(forward: str, expected: set, never: set) -> None:
    got = names(forward)
    assert expected <= got, got
    assert not never & got, got
