"""The checker says FAIL: one broken module per check, the verdict, `derive check`'s exit code
and its JSON.

Everything built on derive's checker (formula and code checking, checked LaTeX steps) rests on
it being able to reject wrong code; each class of mistake below is seen by exactly one check.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import fake_modules as fm
import numpy as np
import pytest

from derive.cli import main
from derive.pipeline import generate
from derive.verify import run as check_module
from derive.verify.finite_diff import fd_check
from derive.verify.module import load_module
from derive.verify.report import FullReport, SymbolicResult
from derive.verify.symbolic import symbolic_check

ROOT = Path(__file__).resolve().parents[1]
LOGISTIC = ROOT / "examples" / "logistic.toml"
MLP = ROOT / "examples" / "mlp_softmax.toml"


def failing(report) -> set[str]:
    return {name for name, r in report.params.items() if not r.ok}


# ---------------------------------------------------------------------------------------------
# fd_check: one broken module per check

#: module, parameters whose gradient fails, text of the note (module-level problems) or None
BROKEN = {
    "non-finite loss": (fm.NonFiniteLoss, {"w", "b"}, "loss is not finite"),
    "no loss in cache": (fm.NoLossInCache, {"w", "b"}, "has no entry 'L'"),
    "loss as column": (fm.LossAsColumn, {"w", "b"}, "expected (2,)"),
    "backward returns list": (fm.BackwardReturnsList, {"w", "b"}, "returned list, not a dict"),
    "default g_loss": (fm.DefaultGLossIsOne, set(), "backward default g_loss disagrees"),
    "loss_and_grad loss": (fm.LossAndGradLossDoubled, set(), "loss_and_grad loss differs"),
    "loss_and_grad grads": (fm.LossAndGradGradScaled, set(), "loss_and_grad disagrees"),
    "consistency raises": (fm.LossAndGradRaises, set(), "consistency check raised KeyError"),
    "loss 1e-10 off": (fm.LossSlightlyOff, set(), "!= mean of cache['L']"),
    "loss_and_grad loss 1e-10 off": (
        fm.LossAndGradLossSlightlyOff,
        set(),
        "loss_and_grad loss differs",
    ),
    "loss_and_grad grad 1e-9 off": (fm.LossAndGradGradNudged, set(), "loss_and_grad disagrees"),
    "loss_and_grad misses a gradient": (
        fm.LossAndGradMissesGrad,
        set(),
        "loss_and_grad has no gradient for 'b'",
    ),
    "default backward wrong shape": (
        fm.DefaultBackwardWrongShape,
        set(),
        "backward default g_loss gives shape (4, 1) for 'w', not (4,)",
    ),
    "unknown reduction": (fm.UnknownReduction, set(), "raised ValueError: unknown REDUCTION"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_module_level_check_rejects_its_broken_module(case: str) -> None:
    cls, params, says = BROKEN[case]
    report = fd_check(cls())
    assert report.ok is False
    assert failing(report) == params
    assert all(report.params[name].ok is False for name in params)
    assert any(says in note for note in report.notes), report.notes
    assert report.to_json()["ok"] is False
    assert report.table().splitlines()[-1].startswith("FAIL")
    assert "module-level problem" in report.table().splitlines()[-1]


def test_gradient_problems_are_named_exactly() -> None:
    assert fd_check(fm.MissingGrad()).params["b2"].note == "gradient missing"
    nan = fd_check(NanGradient()).params["w"].note
    assert nan == "gradient has non-finite entries", nan
    smoke = fd_check(fm.Float64GradsInFloat32()).float32.note
    assert smoke == "'w': gradient dtype float64 != parameter dtype float32", smoke
    shape = fd_check(fm.WrongShape()).params["b1"].note
    assert shape == "gradient shape (1, 3) != parameter shape (3,)", shape
    misnamed = fd_check(fm.BothGradsMisnamed()).params["b"].note
    assert misnamed == "gradient missing (backward returned unexpected 'bias', 'weights')"
    right = fd_check(fm.SoftmaxMLP(), dims={"n_in": 8, "n_hidden": 8})  # W1: 64 entries
    assert right.params["W1"].note == "every entry"
    right = fd_check(fm.SoftmaxMLP(), dims={"n_in": 13, "n_hidden": 5})  # 65 entries
    assert right.params["W1"].note == "6 random directions + 4 random entries"


class NanGradient(fm.LogisticRegression):
    """A NaN in dw."""

    def backward(self, params, batch, cache, g_loss=None):
        grads = super().backward(params, batch, cache, g_loss)
        return {**grads, "w": np.where(np.arange(grads["w"].size) == 0, np.nan, grads["w"])}


def test_a_loss_outside_its_domain_is_named_and_stays_quiet() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow inside forward raises no warning
        report = fd_check(fm.OverflowingLoss(), batch_sizes=(1, 2))
    assert report.notes == [
        f"m={m}: the loss is not finite at random normal inputs and parameters: is a log, sqrt "
        "or power applied outside its domain? (nothing was compared)"
        for m in (1, 2)
    ]


def test_the_same_modules_pass_when_mended() -> None:
    """The base class of every broken module above passes: the failure is the planted bug."""
    assert fd_check(fm.LogisticRegression()).ok


FLOAT32 = {
    "init ignores dtype": (fm.InitIgnoresDtype, "init_params(dtype=float32) gave non-float32"),
    "overflows in float32": (fm.OverflowsInFloat32, "loss is not finite"),
    "float64 gradients": (fm.Float64GradsInFloat32, "gradient dtype float64 != parameter dtype"),
    "raises in float32": (fm.RaisesInFloat32, "raised TypeError: float32 not supported"),
    "float64 leak": (fm.Float64Leak, "is float64, not float32"),
}


@pytest.mark.parametrize("case", sorted(FLOAT32))
def test_float32_run_alone_turns_the_verdict_false(case: str) -> None:
    cls, says = FLOAT32[case]
    report = fd_check(cls())
    assert failing(report) == set() and report.notes == []  # every float64 check passes
    assert not report.float32.ok and not report.ok
    assert says in report.float32.note
    data = report.to_json()
    assert data["ok"] is False and data["float32"] == {"ok": False, "note": report.float32.note}
    assert "float32 run failed" in report.table().splitlines()[-1]


def test_a_finite_difference_that_is_not_finite_is_a_failure() -> None:
    report = fd_check(fm.NanAwayFromStart(), batch_sizes=(2,))
    assert failing(report) == {"b"} and report.params["b"].ok is False
    assert "finite difference not finite" in report.params["b"].note
    assert math.isnan(report.params["b"].max_abs_err)


def test_the_rounding_allowance_does_not_hide_a_wrong_gradient() -> None:
    """Losses near 1e5 make the noise term large; a gradient twice too large still fails."""
    assert fd_check(fm.LargeOffsetLoss()).ok
    report = fd_check(fm.LargeOffsetScaledGrad())
    assert failing(report) == {"w"} and report.params["w"].ok is False


@pytest.mark.parametrize(("off", "ok"), [(0.5, True), (1.5, False), (3.0, False)])
def test_the_tolerance_boundary_is_rtol(off: float, ok: bool) -> None:
    """A gradient off by ``off`` times rtol passes below 1 and fails above it (atol, rounding
    noise and truncation error are all far below rtol here)."""
    rtol = 1e-4
    report = fd_check(fm.ScaledGradBy(1 + off * rtol, "W2"), rtol=rtol, atol=1e-12)
    assert report.ok is ok
    assert report.params["W2"].ok is ok
    assert report.params["W2"].max_rel_err == pytest.approx(off * rtol, rel=0.01)


def test_sixty_four_entries_are_checked_one_by_one_and_the_worst_is_located() -> None:
    report = fd_check(fm.ScaledGrad(), dims={"n_in": 8, "n_hidden": 8})  # W1: 64 entries
    w1 = report.params["W1"]
    assert w1.n_compared == 3 * 64 and w1.note.startswith("worst at m=")
    assert re.search(r"worst at m=[125] entry \(\d, \d\): analytic -?\d", w1.note), w1.note
    bigger = fd_check(fm.ScaledGrad(), dims={"n_in": 13, "n_hidden": 5})  # 65 entries
    assert bigger.params["W1"].n_compared == 3 * (6 + 4)


def test_no_batch_size_means_no_comparison_and_no_pass() -> None:
    report = fd_check(fm.LogisticRegression(), batch_sizes=())
    assert not report.ok
    assert all("no comparison could be made" in r.note for r in report.params.values())


# ---------------------------------------------------------------------------------------------
# random per-example weights


@pytest.mark.parametrize(
    ("broken", "right"),
    [
        (fm.MeanOfGLoss, fm.SoftmaxMLP),
        (fm.BatchNormSumNoProjection, fm.BatchNormSumNet),
    ],
)
def test_a_module_right_only_under_equal_weights_is_rejected(broken: type, right: type) -> None:
    bad, good = broken(), right()
    rng = np.random.default_rng(1)
    dims = {"n_in": 3, "n_hidden": 4, "n_out": 3, "n": 4}
    params = good.init_params(seed=2, dims=dims)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    m = 5
    batch = {"x": rng.standard_normal((m, 3)), "t": np.eye(3)[rng.integers(0, 3, m)]}
    _loss, cache = good.forward(params, batch)
    for g in (np.full(m, 0.2), np.full(m, 1.3)):  # equal weights: the same gradients
        expected = good.backward(params, batch, cache, g)
        got = bad.backward(params, batch, cache, g)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-10, atol=1e-12)
    assert fd_check(good).ok
    report = fd_check(bad)
    assert not report.ok and failing(report)
    assert report.notes == []  # the default adjoint (equal weights) agrees, too


def test_batchnorm_sum_gradient_vanishes_under_equal_weights() -> None:
    """Why the batch-norm case needs unequal weights: with equal ones dL/dW is zero."""
    net = fm.BatchNormSumNet()
    params = net.init_params(seed=0, dims={"n_in": 3, "n": 4})
    batch = {"x": np.random.default_rng(0).standard_normal((5, 3))}
    _loss, cache = net.forward(params, batch)
    np.testing.assert_allclose(net.backward(params, batch, cache)["W"], 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the SymPy cross-check, and the overall verdict


@pytest.fixture(scope="module")
def logistic(tmp_path_factory: pytest.TempPathFactory):
    gen = generate(LOGISTIC, tmp_path_factory.mktemp("logistic"))
    return gen.derivation.graph, load_module(gen.path)


def test_symbolic_check_passes_the_emitted_module(logistic) -> None:
    graph, mod = logistic
    result = symbolic_check(graph, mod, points=2)
    assert result.ok and not result.skipped
    assert max(result.max_abs_err.values()) < 1e-10


@pytest.mark.parametrize("factor", [1 + 1e-5, -1.0, 0.0])
def test_symbolic_check_rejects_each_wrong_gradient(logistic, factor: float) -> None:
    graph, mod = logistic
    for name in mod.PARAMS:
        result = symbolic_check(graph, fm.WithScaledGrad(mod, name, factor), points=2)
        assert not result.ok, name
        assert result.max_abs_err[name] > 1e-8
        assert all(v < 1e-10 for k, v in result.max_abs_err.items() if k != name)


def test_full_report_verdict_needs_both_checks() -> None:
    fd = fd_check(fm.LogisticRegression())
    assert fd.ok
    assert FullReport(fd, None).ok
    assert FullReport(fd, SymbolicResult(True, {"w": 0.0})).ok
    skipped = SymbolicResult(True, {}, {}, "skipped: over its budget", skipped=True)
    assert FullReport(fd, skipped).ok
    wrong = FullReport(fd, SymbolicResult(False, {"w": 0.5, "b": 0.0}, {"n": 2}))
    assert not wrong.ok
    data = wrong.to_json()
    assert data["ok"] is False and data["symbolic"]["ok"] is False
    assert all(entry["ok"] for entry in data["params"].values())
    assert "FAIL: direct SymPy differentiation" in wrong.table()
    assert not FullReport(fd_check(fm.ScaledGrad()), SymbolicResult(True)).ok


def test_check_exits_1_when_only_the_symbolic_check_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = check_module.symbolic_check

    def on_broken_module(graph, module, **kwargs):
        return real(graph, fm.WithScaledGrad(module, "b", 1.001), **kwargs)

    monkeypatch.setattr(check_module, "symbolic_check", on_broken_module)
    assert main(["check", str(LOGISTIC), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["float32"]["ok"] is True
    assert all(entry["ok"] for entry in data["params"].values())  # finite differences pass
    assert data["symbolic"]["ok"] is False and data["symbolic"]["skipped"] is False
    assert data["symbolic"]["max_abs_err"]["b"] > 1e-8
    assert main(["check", str(LOGISTIC)]) == 1
    assert "FAIL: direct SymPy differentiation" in capsys.readouterr().out


def test_check_exits_1_and_names_the_wrong_gradient(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = check_module.load_module
    monkeypatch.setattr(
        check_module, "load_module", lambda path: fm.WithScaledGrad(real(path), "W1", 1.01)
    )
    assert main(["check", str(MLP), "--json", "--no-symbolic"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and "symbolic" not in data
    assert {n for n, e in data["params"].items() if not e["ok"]} == {"W1"}
    assert math.isclose(data["params"]["W1"]["max_rel_err"], 0.01 / 1.01, rel_tol=1e-2)
    assert main(["check", str(MLP), "--no-symbolic"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("FAIL: 1/4 gradients wrong (W1)") for line in lines), lines


def test_check_exits_0_on_the_unbroken_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(LOGISTIC), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["symbolic"]["ok"] is True


def test_the_default_seed_is_zero() -> None:
    default = fd_check(fm.BatchNormNet()).to_json()
    assert default == fd_check(fm.BatchNormNet(), seed=0).to_json()
    assert default != fd_check(fm.BatchNormNet(), seed=1).to_json()
