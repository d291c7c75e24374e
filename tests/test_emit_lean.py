"""Emitted code pays only for the arithmetic: no per-call overhead a hand-written step avoids.

Each test names one such cost and fails when the emitted text brings it back: an array of
equal weights for the default ``g_loss``, a second array for a bias add, ``np.sum``'s
dispatch, a sigmoid that evaluates both branches, scalars applied to an array one by one.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from derive.emit.printers import NumPyIndexPrinter
from derive.ops.elementwise import SIGMOID_HELPER
from derive.pipeline import generate
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
GENERATED = sorted((ROOT / "generated").glob("*.py"))
TINY = ROOT / "benchmarks" / "specs" / "tiny_3_4_1.toml"


def backward_source(text: str) -> str:
    return text.split("\ndef backward(", 1)[1].split("\ndef ", 1)[0]


# a penalty's gradient (g_W1 = ... + lam W1 Σ_b g_J) reads the weights at the end of the pass:
# splitting there would write the whole backward pass twice, so these keep one path
ONE_PATH = {"mlp_elastic_net", "mlp_weight_decay"}


@pytest.mark.parametrize("path", GENERATED, ids=[p.stem for p in GENERATED])
def test_default_g_loss_is_one_scalar_weight(path: Path) -> None:
    if path.stem in ONE_PATH:
        back = backward_source(path.read_text())
        assert back.count("if g_loss is None:") == 1 and "else:" not in back
        return
    back = backward_source(path.read_text())
    assert "full_like" not in back and "ones_like" not in back
    default, given = back.split("    if g_loss is None:", 1)[1].split("\n    else:\n", 1)
    seed = re.search(r"        (g_\w+) = g_loss\n", given)
    assert seed is not None
    code = [ln for ln in default.splitlines() if not ln.lstrip().startswith("#")]
    assert seed.group(1) not in "\n".join(code)  # the default branch never forms the weights


def test_default_and_given_weights_agree(tmp_path: Path) -> None:
    m = load_module(generate(TINY, tmp_path).path)
    params = m.init_params(seed=1)
    rng = np.random.default_rng(2)
    batch = {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=(5, 1))}
    _, cache = m.forward(params, batch)
    default = m.backward(params, batch, cache)
    given = m.backward(params, batch, cache, g_loss=np.full(5, 0.2))
    for name in m.PARAMS:
        np.testing.assert_allclose(default[name], given[name], rtol=1e-14, atol=0)


@pytest.mark.parametrize("path", GENERATED, ids=[p.stem for p in GENERATED])
def test_reductions_are_array_methods(path: Path) -> None:
    text = path.read_text()
    for call in ("np.sum(", "np.max(", "np.mean(", ".mean()"):
        assert call not in text.split("\ndef init_params(", 1)[0], call


def test_bias_is_added_into_the_product() -> None:
    text = (ROOT / "generated" / "mlp_softmax.py").read_text()
    assert re.search(r"\n    z1 = x @ W1\.T\n    z1 \+= b1  # \(\w+, \w+\)\n", text)
    assert re.search(r"\n    f = h1 @ W2\.T\n    f \+= b2  #", text)
    assert "(x @ W1.T) + b1" not in text


def test_scalars_meet_before_the_array() -> None:
    b, k, m = sp.symbols("b k m")
    f, y = sp.IndexedBase("f"), sp.IndexedBase("y")
    expr = sp.Mul(2, 1 / m, f[b, k] - y[b, k])  # as the derivation leaves it
    assert NumPyIndexPrinter([b, k]).doprint(expr) == "2 / m * (f - y)"


def sigmoid_helper():
    namespace = {"np": np}
    exec(SIGMOID_HELPER, namespace)  # the op table's own helper source, trusted
    return namespace["_sigmoid"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_is_exact_at_extremes_and_silent(dtype: type) -> None:
    sigmoid = sigmoid_helper()
    z = np.array([-1000.0, -80.0, -30.0, 0.0, 30.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(all="raise", under="ignore"):
        warnings.simplefilter("error")
        got = sigmoid(z)
    assert got.dtype == dtype
    exact = [0.0, np.exp(-80.0), 1 / (1 + np.exp(30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0]
    # relative accuracy where the value is tiny: no 1 - (1 - e) cancellation
    rel = 1e-15 if dtype == np.float64 else 1e-6
    small = 1e-37 if dtype == np.float32 else 0.0  # float32 has no normal e^-80
    np.testing.assert_allclose(got, np.array(exact), rtol=rel, atol=small)
    assert "np.where" not in SIGMOID_HELPER  # one branch, not both evaluated and picked


def test_a_difference_both_passes_read_is_computed_once(tmp_path: Path) -> None:
    text = generate(TINY, tmp_path).path.read_text()
    forward, backward = text.split("\ndef backward(", 1)
    assert "    f_minus_y = f - y  # (m, n)" in forward
    assert "f - y" not in backward  # read from the cache, not formed again
    assert "2 / m * f_minus_y" in backward
    m = load_module(generate(TINY, tmp_path).path)
    params = m.init_params(seed=3)
    rng = np.random.default_rng(4)
    batch = {"x": rng.normal(size=(4, 3)), "y": rng.normal(size=(4, 1))}
    loss, cache = m.forward(params, batch)
    np.testing.assert_array_equal(cache["f_minus_y"], cache["f"] - batch["y"])
    assert loss == pytest.approx(np.mean(np.sum((cache["f"] - batch["y"]) ** 2, axis=1)))


def test_a_row_wise_dot_is_vecdot_and_a_column_one_stays_einsum() -> None:
    b, k = sp.symbols("b k")
    a, c = sp.IndexedBase("a"), sp.IndexedBase("c")
    rows = sp.Sum(a[b, k] * c[b, k], (k, 1, sp.Symbol("n")))
    assert NumPyIndexPrinter([b]).doprint(rows) == "np.vecdot(a, c)"
    columns = sp.Sum(a[b, k] * c[b, k], (b, 1, sp.Symbol("m")))
    assert NumPyIndexPrinter([k]).doprint(columns).startswith("np.einsum(")


STACK_CASES = [  # (a's labels, b's labels, contracted, output): attention's contractions
    ("bij", "bkj", "j", "bik"),  # q @ k.T per example
    ("bij", "bjk", "j", "bik"),  # a @ v
    ("bji", "bjk", "j", "bik"),  # a.T @ g_o
    ("bij", "jk", "j", "bik"),  # x @ W, W shared by every example
    ("ji", "bjk", "j", "bik"),  # W.T @ x
]


@pytest.mark.parametrize(("la", "lb", "j", "out"), STACK_CASES)
def test_stacked_contractions_are_matmuls_and_right(la: str, lb: str, j: str, out: str) -> None:
    sym = {c: sp.Symbol(c) for c in "bijk"}
    sizes = {"b": 3, "i": 4, "j": 5, "k": 2}
    A, B = sp.IndexedBase("A"), sp.IndexedBase("B")
    expr = sp.Sum(A[tuple(sym[c] for c in la)] * B[tuple(sym[c] for c in lb)], (sym[j], 1, 5))
    code = NumPyIndexPrinter([sym[c] for c in out]).doprint(expr)
    assert "@" in code and "einsum" not in code, code
    rng = np.random.default_rng(0)
    arrays = {
        "A": rng.normal(size=[sizes[c] for c in la]),
        "B": rng.normal(size=[sizes[c] for c in lb]),
    }
    got = eval(code, {"np": np}, arrays)  # our own printer's output on our own arrays
    want = np.einsum(f"{la},{lb}->{out}", arrays["A"], arrays["B"])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_a_weight_gradient_over_a_stack_is_one_tensordot() -> None:
    b, n, i, j = sp.symbols("b n i j")
    g, x = sp.IndexedBase("g"), sp.IndexedBase("x")
    expr = sp.Sum(g[b, n, i] * x[b, n, j], (b, 1, 3), (n, 1, 4))
    code = NumPyIndexPrinter([i, j]).doprint(expr)
    assert code == "np.tensordot(g, x, axes=([0, 1], [0, 1]))"
    rng = np.random.default_rng(1)
    arrays = {"g": rng.normal(size=(3, 4, 2)), "x": rng.normal(size=(3, 4, 5))}
    got = eval(code, {"np": np}, arrays)  # our own printer's output on our own arrays
    np.testing.assert_allclose(got, np.einsum("bni,bnj->ij", arrays["g"], arrays["x"]))
    attention = (ROOT / "generated" / "attention.py").read_text()
    assert attention.count("np.tensordot(") == 3 and attention.count("np.einsum(") == 1


POOL = "bijkl"
SIZES = {"b": 3, "i": 2, "j": 4, "k": 5, "l": 2}


def assert_same(got: np.ndarray, want: np.ndarray, code: str) -> None:
    """The printed code's value is einsum's, and so is its shape."""
    np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=1e-10, atol=1e-12)
    assert np.shape(got) == want.shape, code


@st.composite
def contractions(draw: st.DrawFn) -> tuple[str, str, str, str]:
    """Two factors' labels (no label twice in one factor), the summed labels, the output."""
    la = "".join(draw(st.permutations(POOL))[: draw(st.integers(1, 4))])
    lb = "".join(draw(st.permutations(POOL))[: draw(st.integers(1, 4))])
    both = [c for c in la if c in lb]
    summed = "".join(c for c in both if draw(st.booleans()))
    if not summed:
        return la, lb, "", ""
    rest = [c for c in dict.fromkeys(la + lb) if c not in summed]
    out = "".join(draw(st.permutations(rest)))
    return la, lb, summed, out


@settings(max_examples=300, deadline=None)
@given(case=contractions())
def test_every_contraction_form_agrees_with_einsum(case: tuple[str, str, str, str]) -> None:
    """Whatever form the printer picks (@, stacked @, tensordot, vecdot, einsum), the value
    is einsum's, for random label layouts of two factors."""
    la, lb, summed, out = case
    assume(summed)
    sym = {c: sp.Symbol(c) for c in POOL}
    A, B = sp.IndexedBase("A"), sp.IndexedBase("B")
    limits = [(sym[c], 1, SIZES[c]) for c in summed]
    expr = sp.Sum(A[tuple(sym[c] for c in la)] * B[tuple(sym[c] for c in lb)], *limits)
    code = NumPyIndexPrinter([sym[c] for c in out]).doprint(expr)
    rng = np.random.default_rng(len(code))
    arrays = {
        "A": rng.normal(size=[SIZES[c] for c in la]),
        "B": rng.normal(size=[SIZES[c] for c in lb]),
    }
    got = eval(code, {"np": np}, arrays)  # our own printer's output on our own arrays
    want = np.einsum(f"{la},{lb}->{out}", arrays["A"], arrays["B"])
    assert_same(got, want, code)


@settings(max_examples=200, deadline=None)
@given(case=contractions(), data=st.data())
def test_factors_outside_the_sum_and_sums_of_products_agree_with_einsum(
    case: tuple[str, str, str, str], data: st.DataObject
) -> None:
    """``Σ C A B`` with ``C`` free of the summed labels, and ``Σ (A B - A' B')``: the factor
    leaves the sum and each product is its own contraction; the value is einsum's."""
    la, lb, summed, out = case
    assume(summed and out)
    spare = [c for c in POOL if c not in la + lb]  # labels only the outside factor has
    extra = "".join(data.draw(st.permutations(spare))[: data.draw(st.integers(0, len(spare)))])
    pool = out + extra
    lc = "".join(data.draw(st.permutations(pool))[: data.draw(st.integers(1, len(pool)))])
    out = "".join(data.draw(st.permutations(out + "".join(c for c in extra if c in lc))))
    sym = {c: sp.Symbol(c) for c in POOL}
    A, B, C, D = (sp.IndexedBase(n) for n in "ABCD")
    limits = [(sym[c], 1, SIZES[c]) for c in summed]

    def entry(base: sp.IndexedBase, labels: str) -> sp.Expr:
        return base[tuple(sym[c] for c in labels)]

    body = entry(C, lc) * entry(A, la) * entry(B, lb) - entry(D, la) * entry(B, lb)
    code = NumPyIndexPrinter([sym[c] for c in out]).doprint(sp.Sum(body, *limits))
    rng = np.random.default_rng(len(code))
    arrays = {
        name: rng.normal(size=[SIZES[c] for c in labels])
        for name, labels in (("A", la), ("B", lb), ("C", lc), ("D", la))
    }
    got = eval(code, {"np": np}, arrays)  # our own printer's output on our own arrays
    want = np.einsum(f"{lc},{la},{lb}->{out}", arrays["C"], arrays["A"], arrays["B"])
    rest = "".join(c for c in out if c in la + lb)
    second = np.einsum(f"{la},{lb}->{rest}", arrays["D"], arrays["B"])
    want = (
        want - np.einsum(f"{rest}->{out}", second)
        if rest == out
        else want - np.einsum(f"{rest},{lc}->{out}", second, np.ones([SIZES[c] for c in lc]))
    )
    assert_same(got, want, code)


@settings(max_examples=200, deadline=None)
@given(case=contractions(), data=st.data())
def test_three_factor_sums_agree_with_einsum(
    case: tuple[str, str, str, str], data: st.DataObject
) -> None:
    """``Σ A B C`` with ``C`` on some of ``A``'s axes: ``C`` joins ``A`` entry by entry and
    one contraction is left; the value is einsum's whatever form is printed."""
    la, lb, summed, out = case
    assume(summed)
    lc = "".join(data.draw(st.permutations(la))[: data.draw(st.integers(1, len(la)))])
    sym = {c: sp.Symbol(c) for c in POOL}
    A, B, C = (sp.IndexedBase(n) for n in "ABC")
    limits = [(sym[c], 1, SIZES[c]) for c in summed]
    body = A[tuple(sym[c] for c in la)] * B[tuple(sym[c] for c in lb)]
    body = body * C[tuple(sym[c] for c in lc)]
    code = NumPyIndexPrinter([sym[c] for c in out]).doprint(sp.Sum(body, *limits))
    rng = np.random.default_rng(len(code))
    arrays = {
        n: rng.normal(size=[SIZES[c] for c in lab])
        for n, lab in zip("ABC", (la, lb, lc), strict=True)
    }
    got = eval(code, {"np": np}, arrays)  # our own printer's output on our own arrays
    want = np.einsum(f"{la},{lb},{lc}->{out}", arrays["A"], arrays["B"], arrays["C"])
    assert_same(got, want, code)


@settings(max_examples=150, deadline=None)
@given(case=contractions())
def test_a_product_of_a_sum_agrees_with_einsum(case: tuple[str, str, str, str]) -> None:
    """``Σ (A + D) B`` (a Gram matrix's adjoint ``Σ (g_in + g_ni) z_nd``): one contraction per
    term of the sum; the value is einsum's."""
    la, lb, summed, out = case
    assume(summed)
    sym = {c: sp.Symbol(c) for c in POOL}
    A, B, D = (sp.IndexedBase(n) for n in "ABD")
    limits = [(sym[c], 1, SIZES[c]) for c in summed]
    a, b = A[tuple(sym[c] for c in la)], B[tuple(sym[c] for c in lb)]
    d = D[tuple(sym[c] for c in reversed(la))]
    code = NumPyIndexPrinter([sym[c] for c in out]).doprint(sp.Sum((a + d) * b, *limits))
    rng = np.random.default_rng(len(code))
    arrays = {
        "A": rng.normal(size=[SIZES[c] for c in la]),
        "B": rng.normal(size=[SIZES[c] for c in lb]),
        "D": rng.normal(size=[SIZES[c] for c in reversed(la)]),
    }
    got = eval(code, {"np": np}, arrays)  # our own printer's output on our own arrays
    both = arrays["A"] + np.einsum(f"{la[::-1]}->{la}", arrays["D"])
    assert_same(got, np.einsum(f"{la},{lb}->{out}", both, arrays["B"]), code)
