"""What a user names or nests does not change the result.

Each case is one network written twice: every op on a line of its own (staged) and as
most people write it (nested).  Both must derive the same adjoints (up to the names of
intermediate values) and emit the same backward code: every contraction a GEMM, nothing
computed twice, nothing computed and never read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.graph.builder import graph_from_spec
from derive.lang.spec import parse_spec
from derive.verify.module import load_module

HEAD = """
name = "{name}"
[dims]
d = 4
m = 5
k = 3
[constants]
alpha = 0.1
[inputs]
x = {{ shape = ["d"] }}
t = {{ shape = ["k"], kind = "one_hot" }}
y = {{ shape = ["m"], kind = "binary" }}
[params]
W1 = {{ shape = ["m", "d"] }}
b1 = {{ shape = ["m"] }}
gamma = {{ shape = ["m"], init = "ones" }}
beta = {{ shape = ["m"] }}
W2 = {{ shape = ["m", "m"] }}
b2 = {{ shape = ["m"] }}
W3 = {{ shape = ["k", "m"] }}
b3 = {{ shape = ["k"] }}
[loss]
output = "L"
[forward]
"""

CE = 'L = "softmax_cross_entropy(W3 @ h + b3, t)"'

# name: (staged lines, nested lines); both define h (or the loss) from x.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "bn_relu": (
        ['z1 = "W1 @ x"', 'y1 = "batchnorm(z1, gamma, beta)"', 'h = "relu(y1)"', CE],
        ['h = "relu(batchnorm(W1 @ x, gamma, beta))"', CE],
    ),
    "bn_relu_affine_named": (
        ['z1 = "W1 @ x"', 'y1 = "batchnorm(z1, gamma, beta)"', 'h = "relu(y1)"', CE],
        ['z1 = "W1 @ x"', 'h = "relu(batchnorm(z1, gamma, beta))"', CE],
    ),
    "bn_leaky_relu": (
        [
            'z1 = "W1 @ x"',
            'y1 = "batchnorm(z1, gamma, beta)"',
            'h = "leaky_relu(y1, slope=alpha)"',
            CE,
        ],
        ['h = "leaky_relu(batchnorm(W1 @ x, gamma, beta), slope=alpha)"', CE],
    ),
    "affine_in_activation": (
        ['z1 = "W1 @ x + b1"', 'h = "tanh(z1)"', CE],
        ['h = "tanh(W1 @ x + b1)"', CE],
    ),
    "matmul_in_relu": (
        ['z1 = "W1 @ x"', 'h = "relu(z1)"', CE],
        ['h = "relu(W1 @ x)"', CE],
    ),
    "softmax_in_ce": (
        [
            'h = "sigmoid(W1 @ x + b1)"',
            'f = "W3 @ h + b3"',
            'p = "softmax(f)"',
            'L = "cross_entropy(p, t)"',
        ],
        ['h = "sigmoid(W1 @ x + b1)"', 'L = "cross_entropy(softmax(W3 @ h + b3), t)"'],
    ),
    "sigmoid_in_bce": (
        ['z1 = "W1 @ x + b1"', 'yhat = "sigmoid(z1)"', 'L = "sum(binary_cross_entropy(yhat, y))"'],
        ['L = "sum(binary_cross_entropy(sigmoid(W1 @ x + b1), y))"'],
    ),
    "logits_in_bce": (  # no contraction in the logits: staged all the same
        ['h = "tanh(W1 @ x + b1)"', 'f = "h + b2"', 'L = "sum(bce_with_logits(f, y))"'],
        ['h = "tanh(W1 @ x + b1)"', 'L = "sum(bce_with_logits(h + b2, y))"'],
    ),
    "sigmoid_of_a_sum_in_bce": (
        [
            'h = "tanh(W1 @ x + b1)"',
            'f = "h + b2"',
            'yhat = "sigmoid(f)"',
            'L = "sum(binary_cross_entropy(yhat, y))"',
        ],
        ['h = "tanh(W1 @ x + b1)"', 'L = "sum(binary_cross_entropy(sigmoid(h + b2), y))"'],
    ),
    "residual": (
        [
            'h1 = "tanh(W1 @ x + b1)"',
            'z2 = "W2 @ h1 + b2"',
            'r = "relu(z2)"',
            'h = "h1 + r"',
            CE,
        ],
        ['h1 = "tanh(W1 @ x + b1)"', 'h = "h1 + relu(W2 @ h1 + b2)"', CE],
    ),
}


def derivation(name: str, lines: list[str]):
    text = HEAD.format(name=name) + "\n".join(lines) + "\n"
    return derive(graph_from_spec(parse_spec(text)))


def name_map(staged, nested) -> dict[str, str]:
    """Nested name -> staged name, node by node (the two graphs must have the same shape)."""
    gs, gn = staged.graph, nested.graph
    mapping: dict[str, str] = {}
    ns = [n for n in gs.nodes if n.expr is not None]
    nn = [n for n in gn.nodes if n.expr is not None]
    assert len(ns) == len(nn), (ns, nn)
    for a, b in zip(nn, ns, strict=True):
        mapping[a.name] = b.name
    for a, b in zip(nn, ns, strict=True):
        assert (a.kind, a.dims, a.op) == (b.kind, b.dims, b.op), (a, b)
        assert rename_expr(a.expr, mapping) == b.expr, (a, b)
    return mapping


def rename_expr(e: sp.Expr, mapping: dict[str, str]) -> sp.Expr:
    subs = {}
    for a in e.atoms(sp.Indexed):
        name = a.base.label.name
        if name in mapping:
            subs[a.base] = sp.IndexedBase(mapping[name])
    for s in e.atoms(sp.Symbol):
        if s.name in mapping and s.is_real and s.is_integer is not True:
            subs[s] = sp.Symbol(mapping[s.name], real=True)
    return e.xreplace(subs)


def full_mapping(mapping: dict[str, str]) -> dict[str, str]:
    return {**mapping, **{f"g_{a}": f"g_{b}" for a, b in mapping.items()}}


def backward_lines(text: str) -> list[str]:
    """Assignments of the backward pass, comments and cache reads left out."""
    body = text[text.index("def backward") : text.index("def loss_and_grad")]
    out = []
    for line in body.splitlines():
        s = line.strip()
        if s.startswith("#") or "= cache[" in s or "= params[" in s or "= batch[" in s:
            continue
        out.append(line)
    return out


def rename_code(lines: list[str], mapping: dict[str, str]) -> list[str]:
    def sub(m: re.Match) -> str:
        return mapping.get(m.group(0), m.group(0))

    return [re.sub(r"\b[A-Za-z_]\w*\b", sub, ln) for ln in lines]


REDUCTION = r'np\.einsum\("[^"]+", [\w, ]+\)|\w+(?:\.T)?\.sum\(axis=\d\)|\w+(?:\.T)? @ \w+(?:\.T)?'
"""A matmul, einsum or sum over one axis of a named array, as the printer writes them."""


def assignments(text: str) -> list[tuple[str, str]]:
    """(target, right-hand side) of every one-line assignment in forward and backward."""
    out = []
    for m in re.finditer(r"^    (\w+) = (.+)$", text, flags=re.M):
        rhs = re.sub(r"\s*#.*$", "", m.group(2))
        out.append((m.group(1), rhs))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_nested_derives_as_staged(case: str, tmp_path: Path) -> None:
    staged_lines, nested_lines = CASES[case]
    ds, dn = derivation(f"{case}_s", staged_lines), derivation(f"{case}_n", nested_lines)
    mapping = name_map(ds, dn)
    full = full_mapping(mapping)

    # the same named adjoints, with the same forms
    computed_s, computed_n = ds.needed(), dn.needed()
    assert [mapping.get(n, n) for n in computed_n] == computed_s
    for name in computed_n:
        got = rename_expr(dn.adjoints[name].expr, full)
        assert got == ds.adjoints[mapping.get(name, name)].expr, name

    # the same backward code, line for line
    ts, tn = render(ds), render(dn)
    assert rename_code(backward_lines(tn), full) == backward_lines(ts)

    # nothing computed twice, nothing broadcast to three axes instead of a GEMM
    for text in (ts, tn):
        for part in text.split("\ndef ")[1:3]:  # forward, backward
            rhs = [r for _, r in assignments(part)]
            assert len(rhs) == len(set(rhs)), part
            code = re.sub(r"#.*", "", part)
            found = re.findall(REDUCTION, code)
            assert len(found) == len(set(found)), found
        assert "None, :]" not in text and "_in2" not in text

    # and the same numbers
    ms = _load(tmp_path, "s", ts)
    mn = _load(tmp_path, "n", tn)
    rng = np.random.default_rng(0)
    params = ms.init_params(seed=1)
    batch = {
        "x": rng.normal(size=(6, 4)),
        "t": np.eye(3)[rng.integers(0, 3, 6)],
        "y": rng.integers(0, 2, (6, 5)).astype(float),
    }
    batch = {k: v for k, v in batch.items() if k in ms.INPUTS}
    ls, gs = ms.loss_and_grad(params, batch)
    ln, gn = mn.loss_and_grad(params, batch)
    assert np.isclose(ls, ln)
    for k in gs:
        np.testing.assert_allclose(gn[k], gs[k], rtol=1e-12, atol=1e-14)


def _load(tmp_path: Path, tag: str, text: str):
    path = tmp_path / f"m_{tag}.py"
    path.write_text(text, encoding="utf-8")
    return load_module(path)
