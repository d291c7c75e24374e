"""The derivation engine reaches the taught forms by derivation, and they are right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.autodiff.reverse import derive
from derive.emit.numpy_module import render
from derive.graph.builder import Builder
from derive.lang.spec import parse_spec
from derive.ops.functions import H, Z, output_form, sigmoid, softplus
from derive.pipeline import derive_spec
from derive.show import show_json, spec_str
from derive.verify.finite_diff import fd_check
from derive.verify.module import load_module
from derive.verify.symbolic import symbolic_check

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def staged(d, name: str) -> sp.Expr:
    """A staged adjoint with indices dropped (elementwise ones only), as a SymPy expression."""
    return sp.sympify(show_json(d)["nodes"][name]["staged"])


def same(a: sp.Expr | str, b: sp.Expr | str) -> bool:
    return sp.expand(sp.sympify(a) - sp.sympify(b)) == 0


def module_of(d, tmp_path: Path, name: str = "m"):
    path = tmp_path / f"{name}.py"
    path.write_text(render(d), encoding="utf-8")
    return load_module(path)


# ----- output forms (fit, then proof) --------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "form"),
    [
        (sigmoid(Z).defined(), H - H**2),
        (sp.tanh(Z), 1 - H**2),
        ((sp.exp(Z) - sp.exp(-Z)) / (sp.exp(Z) + sp.exp(-Z)), 1 - H**2),
        (sp.exp(Z), H),
        (1 / Z, -(H**2)),
        (sp.sqrt(Z), 1 / (2 * H)),
    ],
)
def test_output_form_found_and_proved(body: sp.Expr, form: sp.Expr) -> None:
    assert sp.expand(output_form(body) - form) == 0


@pytest.mark.parametrize(
    "body", [sp.log(Z), softplus(Z).defined(), Z**2, sp.sin(Z), Z * sigmoid(Z).defined()]
)
def test_output_form_refused_where_none_exists(body: sp.Expr) -> None:
    assert output_form(body) is None


def test_output_form_of_relu_is_refused_not_misfit() -> None:
    # on positive samples alone relu' = 1 would "fit"; the proof must refuse it
    relu = sp.Piecewise((Z, Z > 0), (0, True))
    assert output_form(relu) is None


# ----- the taught results ------------------------------------------------------------------------
def test_softmax_cross_entropy_gives_p_minus_t() -> None:
    d = derive_spec(EXAMPLES / "mlp_softmax.toml")
    node = show_json(d)["nodes"]["f"]
    assert same(node["adjoint"], "p - t")
    assert any("one_hot" in s["note"] for s in node["steps"])
    assert "g_p" not in show_json(d)["nodes"]["f"]["staged"]


def _softmax_spec(kind: str) -> str:
    text = (EXAMPLES / "mlp_softmax.toml").read_text()
    return text.replace('kind = "one_hot"', f'kind = "{kind}"')


def test_unconstrained_target_gives_honest_form() -> None:
    from derive.graph.builder import graph_from_spec

    d = derive(graph_from_spec(parse_spec(_softmax_spec("real"))))
    adj = show_json(d)["nodes"]["f"]["adjoint"]
    p, t = sp.IndexedBase("p"), sp.IndexedBase("t")
    b, c, c1, k = sp.symbols("b n n_1 k")  # labels of the k axis are n, n_1
    honest = p[b, c] * sp.Sum(t[b, c1], (c1, 1, k)) - t[b, c]
    assert sp.expand(sp.sympify(adj, locals={"p": p, "t": t, "k": k}) - honest) == 0


def test_probability_target_also_gives_p_minus_t() -> None:
    from derive.graph.builder import graph_from_spec

    d = derive(graph_from_spec(parse_spec(_softmax_spec("probability"))))
    assert same(show_json(d)["nodes"]["f"]["adjoint"], "p - t")


def test_sigmoid_derivative_in_its_output() -> None:
    d = derive_spec(EXAMPLES / "mlp_softmax.toml")
    assert same(staged(d, "z1"), "g_h1*h1*(1 - h1)")
    steps = show_json(d)["nodes"]["z1"]["steps"]
    assert steps[0]["kind"] == "local_derivative"
    assert "exp" in steps[0]["before"] and same(steps[0]["after"], "h1*(1 - h1)")


def test_tanh_derivative_in_its_output() -> None:
    d = derive_spec(EXAMPLES / "regression.toml")
    assert same(staged(d, "z1"), "g_h1*(1 - h1**2)")


def test_sigmoid_with_binary_cross_entropy_gives_yhat_minus_y() -> None:
    d = derive_spec(EXAMPLES / "logistic.toml")
    assert same(show_json(d)["nodes"]["z"]["adjoint"], "yhat - y")


def test_custom_swish_needs_no_code_and_reaches_output_form() -> None:
    d = derive_spec(EXAMPLES / "swish.toml")
    # swish' = h + s(1 - h), s = sigmoid(z): written in the op's own output h1
    assert same(staged(d, "z1"), "g_h1*(h1 + sigmoid_z1*(1 - h1))")


def test_batchnorm_backward_reaches_compact_form() -> None:
    d = derive_spec(EXAMPLES / "mlp_batchnorm.toml")
    got = show_json(d)["nodes"]["z1"]["staged"]
    g, xhat, gamma, std = (sp.IndexedBase(n) for n in ("g_y1", "xhat", "gamma", "std"))
    b, j, b1, m = sp.symbols("b j b_1 m")
    compact = (
        gamma[j]
        / (m * std[j])
        * (
            m * g[b, j]
            - sp.Sum(g[b1, j], (b1, 1, m))
            - xhat[b, j] * sp.Sum(g[b1, j] * xhat[b1, j], (b1, 1, m))
        )
    )
    names = {"g_y1": g, "xhat": xhat, "gamma": gamma, "std": std, "m": m}
    assert sp.expand(sp.sympify(got, locals=names) - compact) == 0


BN_BY_HAND = """
name = "bn_by_hand"
[dims]
d = 3
m = 4
k = 2
[constants]
eps = 1e-5
[inputs]
x = { shape = ["d"] }
t = { shape = ["k"], kind = "one_hot" }
[params]
W1 = { shape = ["m", "d"] }
gamma = { shape = ["m"], init = "ones" }
beta = { shape = ["m"] }
W2 = { shape = ["k", "m"] }
[forward]
z1 = "W1 @ x"
y1 = "%s"
f = "W2 @ tanh(y1)"
L = "softmax_cross_entropy(f, t)"
[loss]
output = "L"
"""


def test_batchnorm_by_hand_derives_like_the_builtin(tmp_path: Path) -> None:
    from derive.graph.builder import graph_from_spec

    by_hand = (
        "gamma * (z1 - batch_mean(z1)) / sqrt(batch_mean((z1 - batch_mean(z1))**2) + eps) + beta"
    )
    builtin = graph_from_spec(parse_spec(BN_BY_HAND % "batchnorm(z1, gamma, beta, eps=eps)"))
    manual = graph_from_spec(parse_spec(BN_BY_HAND % by_hand))
    d1, d2 = derive(builtin), derive(manual)
    params = {"W1", "gamma", "beta", "W2"}
    m1, m2 = module_of(d1, tmp_path, "a"), module_of(d2, tmp_path, "b")
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(6, 3)), "t": np.eye(2)[rng.integers(0, 2, 6)]}
    p = m1.init_params(1)
    p["gamma"] = rng.normal(size=4)
    g1, g2 = m1.loss_and_grad(p, batch)[1], m2.loss_and_grad(p, batch)[1]
    for name in params:
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-10, atol=1e-12)
    assert fd_check(m2).ok


def test_toy_graphs_give_lecture_values(tmp_path: Path) -> None:
    d = derive_spec(EXAMPLES / "toy_sum_product.toml")
    mod = module_of(d, tmp_path)
    loss, grads = mod.loss_and_grad(
        {"y": np.array(5.0), "z": np.array(-4.0)}, {"x": np.array([-2.0])}
    )
    assert loss == -12.0 and grads["y"] == -4.0 and grads["z"] == 3.0
    nodes = show_json(d)["nodes"]
    q, m, b1 = sp.IndexedBase("q"), sp.Symbol("m"), sp.Symbol("b_1")
    assert same(nodes["q"]["adjoint"], "z") and same(nodes["y"]["adjoint"], "m*z")
    z_adj = sp.sympify(nodes["z"]["adjoint"], locals={"q": q, "m": m})
    assert z_adj == sp.Sum(q[b1], (b1, 1, m))  # a parameter's gradient sums over the batch


def test_norm_toy_gives_2q_and_2_q_xT() -> None:
    d = derive_spec(EXAMPLES / "toy_norm.toml")
    nodes = show_json(d)["nodes"]
    assert same(nodes["q"]["adjoint"], "2*q")
    q, x = sp.IndexedBase("q"), sp.IndexedBase("x")
    i, i2, b1, m = sp.symbols("i i2 b_1 m")
    w_adj = sp.sympify(nodes["W"]["adjoint"], locals={"q": q, "x": x, "m": m})
    assert w_adj == 2 * sp.Sum(q[b1, i] * x[b1, i2], (b1, 1, m))  # ∇_W f = 2 q xᵀ


def test_row_and_column_conventions_transpose_the_swap_rule() -> None:
    col = (ROOT / "generated" / "mlp_softmax.py").read_text()
    row = (ROOT / "generated" / "regression_rows.py").read_text()
    assert "g_W1 = g_z1.T @ x" in col and "x @ W1.T" in col
    assert "g_W1 = x.T @ g_z_h" in row and "g_h = g_yhat @ W2.T" in row


def test_adjoint_of_value_used_twice_sums_both_paths(tmp_path: Path) -> None:
    b = Builder("twice", {"n": 3})
    x = b.input("x", ["n"])
    w = b.param("w", ["n"])
    h = b.let("h", b.call("tanh", w * x))
    b.let("L", b.call("sum", h * h + b.call("sigmoid", h)))
    d = derive(b.loss("L"))
    assert same(staged(d, "h"), "2*h + sigmoid_h*(1 - sigmoid_h)")  # seed g_L = 1
    assert fd_check(module_of(d, tmp_path)).ok


def test_symbolic_check_catches_a_wrong_derivative(tmp_path: Path, monkeypatch) -> None:
    """Corrupt the fitted sigmoid' (h instead of h - h²): both witnesses must object."""
    import derive.autodiff.reverse as derivation

    monkeypatch.setattr(derivation, "local_output_form", lambda fn: H)
    d = derive_spec(EXAMPLES / "mlp_softmax.toml")
    mod = module_of(d, tmp_path)
    assert not fd_check(mod).ok
    assert not symbolic_check(d.graph, mod).ok


def test_spec_printer_is_plain_only_when_elementwise() -> None:
    p, t, s = sp.IndexedBase("p"), sp.IndexedBase("t"), sp.IndexedBase("s")
    b, k, k1 = sp.symbols("b k k_1", integer=True)
    assert spec_str(p[b, k] - t[b, k]) == "p - t"
    text = spec_str(p[b, k] * sp.Sum(t[b, k1], (k1, 1, 3)))
    assert "Sum(" in text and "[b, k_1]" in text
    assert "[b]" in spec_str(p[b, k] / s[b])


# ----- property: random networks derive to gradients finite differences agree with ----------
ACTS = ["sigmoid", "tanh", "softplus", "exp", "leaky_relu", "sqrt_abs", "swish"]


def _act(b: Builder, name: str, t):
    if name == "sqrt_abs":
        return b.call("sqrt", b.call("abs", t) + 1)
    if name == "swish":
        return t * b.call("sigmoid", t)
    if name == "leaky_relu":
        return b.call("leaky_relu", t, slope=0.1)
    return b.call(name, t)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    acts=st.lists(st.sampled_from(ACTS), min_size=1, max_size=3),
    rows=st.booleans(),
    loss=st.sampled_from(["ce", "se", "sum"]),
    named=st.booleans(),
)
def test_random_networks_pass_both_checks(tmp_path: Path, acts, rows, loss, named) -> None:
    b = Builder("rand", {"d": 3, "m": 2, "k": 3})
    x = b.input("x", ["d"])
    t = b.input("t", ["k"], kind="one_hot" if loss == "ce" else "real")
    h = x
    width = "d"
    for n, act in enumerate(acts):
        out = "m" if n < len(acts) - 1 else "k"
        w = b.param(f"W{n}", [width, out] if rows else [out, width])
        bias = b.param(f"b{n}", [out])
        z = (h @ w if rows else w @ h) + bias
        h = _act(b, act, z) if n < len(acts) - 1 or loss != "ce" else z
        if named:
            h = b.let(f"h{n}", h)
        width = out
    if loss == "ce":
        b.let("L", b.call("softmax_cross_entropy", h, t))
    elif loss == "se":
        b.let("L", b.call("squared_error", h, t))
    else:
        b.let("L", b.call("sum", h * t))
    d = derive(b.loss("L", reduction="mean"))
    mod = module_of(d, tmp_path, f"rand_{abs(hash((tuple(acts), rows, loss, named)))}")
    assert fd_check(mod, batch_sizes=(1, 3)).ok
    assert symbolic_check(d.graph, mod, points=1).ok


def test_l2_penalty_adds_weight_decay_to_the_gradient(tmp_path: Path) -> None:
    mod = module_of(derive_spec(EXAMPLES / "mlp_weight_decay.toml"), tmp_path)
    params = mod.init_params(3)
    rng = np.random.default_rng(0)
    batch = {"x": rng.normal(size=(5, 4)), "t": np.eye(3)[rng.integers(0, 3, 5)]}
    with_decay = mod.loss_and_grad(params, batch)[1]
    mod.lam = 0.0
    without = mod.loss_and_grad(params, batch)[1]
    for name in ("W1", "W2"):  # (lam/2)||W||² averaged over the batch adds lam W
        np.testing.assert_allclose(with_decay[name] - without[name], 1e-3 * params[name])
    np.testing.assert_allclose(with_decay["b1"], without["b1"])


def test_log_softmax_beside_softmax_is_computed_once_and_gives_p_minus_t() -> None:
    from derive.graph.builder import graph_from_spec

    text = (EXAMPLES / "mlp_softmax.toml").read_text()
    text = text.replace('p  = "softmax(f)"', 'p  = "softmax(f)"\nlp = "log_softmax(f)"')
    text = text.replace('L  = "-sum(t * log(p))"', 'L  = "-sum(t * lp)"')
    d = derive(graph_from_spec(parse_spec(text)))
    assert same(show_json(d)["nodes"]["f"]["adjoint"], "p - t")
    forward = render(d).split("def forward")[1].split("def backward")[0]
    assert forward.count("np.exp(") == 1 and "np.log(p" not in forward  # log-sum-exp, shared


@pytest.mark.parametrize("spec", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_show_json_strings_parse_with_plain_sympify(spec: Path) -> None:
    """derive's own output: every expression string rebuilds under ``sympify`` alone."""
    for node in show_json(derive_spec(spec))["nodes"].values():
        texts = [node[k] for k in ("forward", "adjoint", "staged") if k in node]
        texts += [s[k] for s in node.get("steps", []) for k in ("before", "after") if k in s]
        for text in texts:
            assert isinstance(sp.sympify(text), sp.Basic), text
