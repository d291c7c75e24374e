"""An answer's entrywise functions and their primes come from the op table.

``\\sigma'(z)`` in an answer is evaluated with ``sympy.diff`` of the sigmoid op's definition,
``\\sigma(z)`` with the op's NumPy spelling: these tests check the functions against finite
differences and against high-precision values, at ordinary points and at |z| = 1000, and
that changing an op's record changes them (nothing is typed twice).
"""

from __future__ import annotations

import dataclasses

import mpmath
import numpy as np
import pytest
import sympy as sp

from derive.answers import entrywise
from derive.answers.caps import MAX_PRIMES
from derive.answers.numeric import Evaluator
from derive.answers.reader import read
from derive.answers.scalar import judge_scalar
from derive.answers.tree import PRIMED, AnswerError, Call, Name
from derive.answers.verdict import Status
from derive.ops.functions import Z, written_out
from derive.ops.table import BUILTIN_OPS

ORDINARY = np.array([-2.5, -1.3, -0.4, 0.35, 0.9, 1.7, 3.2])
POSITIVE = np.array([0.2, 0.5, 0.9, 1.3, 2.2, 4.0])  # log's domain
EXTREME = np.array([-1000.0, -700.0, -100.0, -40.0, 40.0, 100.0, 700.0, 1000.0])
NO_WARNINGS = {"over": "raise", "invalid": "raise", "divide": "raise"}  # underflow to 0 is fine


@pytest.fixture(autouse=True)
def fresh_cache():
    entrywise.derivative.cache_clear()
    yield
    entrywise.derivative.cache_clear()


def points(name: str) -> np.ndarray:
    return POSITIVE if name == "log" else ORDINARY


def exact(name: str, order: int, z: float) -> float:
    """The op's definition differentiated ``order`` times, at 50 digits (no output forms)."""
    body = written_out(entrywise.call(BUILTIN_OPS[name]))
    f = sp.lambdify(Z, sp.diff(body, Z, order), "mpmath")
    with mpmath.workdps(50):
        return float(f(mpmath.mpf(z)))


def test_the_reader_functions_are_unchanged() -> None:
    assert sorted(entrywise.ENTRYWISE) == ["abs", "exp", "log", "relu", "sigmoid", "sqrt", "tanh"]
    assert sorted(PRIMED) == ["exp", "log", "relu", "sigmoid", "tanh"]
    assert PRIMED <= entrywise.ENTRYWISE


@pytest.mark.parametrize("name", sorted(entrywise.ENTRYWISE))
def test_values_are_the_ops_numpy_spelling(name: str) -> None:
    z = POSITIVE if name in ("log", "sqrt") else ORDINARY
    expected = [exact(name, 0, v) for v in z]
    np.testing.assert_allclose(entrywise.value(name)(z), expected, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("order", range(1, MAX_PRIMES + 1))
@pytest.mark.parametrize("name", sorted(PRIMED))
def test_derivatives_agree_with_central_differences(name: str, order: int) -> None:
    z, h = points(name), 1e-5
    lower = entrywise.derivative(name, order - 1)
    central = (lower(z + h) - lower(z - h)) / (2 * h)
    np.testing.assert_allclose(entrywise.derivative(name, order)(z), central, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("order", range(1, MAX_PRIMES + 1))
@pytest.mark.parametrize("name", sorted(PRIMED))
def test_derivatives_are_sympy_diff_of_the_definition(name: str, order: int) -> None:
    z = points(name)
    expected = [exact(name, order, v) for v in z]
    np.testing.assert_allclose(entrywise.derivative(name, order)(z), expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_finite_and_right_at_extreme_magnitudes(name: str) -> None:
    for order in range(MAX_PRIMES + 1):
        with np.errstate(**NO_WARNINGS):
            got = entrywise.derivative(name, order)(EXTREME)
        assert np.isfinite(got).all(), (name, order, got)
        expected = [exact(name, order, v) for v in EXTREME]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-15, err_msg=f"{name} {order}")


def test_sigmoid_prime_is_zero_not_nan_at_1000() -> None:
    with np.errstate(**NO_WARNINGS):
        got = entrywise.derivative("sigmoid")(np.array([-1000.0, 1000.0]))
    assert got.tolist() == [0.0, 0.0]
    for z in (-1000.0, 1000.0):
        answer = Evaluator({"z": np.array([[z]])})(read(r"\sigma'(z)", {"z"}))
        assert answer.tolist() == [[0.0]]


def test_sigmoid_prime_as_accurate_as_the_old_formula() -> None:
    def old(z):  # the hand-typed sigmoid' this module replaced
        e = np.exp(-np.abs(z))
        s = np.where(z >= 0, 1, e) / (1 + e)
        return s * (1 - s)

    z = np.linspace(-1000, 1000, 401)
    true = np.array([exact("sigmoid", 1, v) for v in z])
    with np.errstate(all="ignore"):
        new, was = entrywise.derivative("sigmoid")(z), old(z)
    normal = true >= np.finfo(float).tiny
    new_err = np.abs(new - true)[normal] / true[normal]
    old_err = np.abs(was - true)[normal] / true[normal]
    assert (new_err <= old_err + 1e-15).all()
    # below the smallest normal float (z < -708) the op's helper gives 0 where the old one
    # gave e^z: a difference no tolerance can see
    assert (np.abs(new - true)[~normal] < np.finfo(float).tiny).all()


def test_log_exp_at_extreme_magnitudes() -> None:
    with np.errstate(**NO_WARNINGS):
        assert entrywise.derivative("log")(np.array([1000.0, -1000.0])).tolist() == [1e-3, -1e-3]
        assert entrywise.derivative("log", 2)(np.array([1000.0])).tolist() == [-1e-6]
        assert entrywise.value("exp")(np.array([-1000.0])).tolist() == [0.0]
        assert entrywise.derivative("exp", 3)(np.array([-1000.0])).tolist() == [0.0]


def test_relu_prime_at_zero_is_the_op_tables_convention() -> None:
    at_zero = BUILTIN_OPS["relu"].kwargs["at_zero"]
    z = np.array([-1.0, 0.0, 1.0])
    assert entrywise.derivative("relu")(z).tolist() == [0.0, at_zero, 1.0]
    tree = Call("relu", (Name("z"),), 1)
    assert Evaluator({"z": z[:, None]})(tree)[:, 0].tolist() == [0.0, at_zero, 1.0]
    assert entrywise.derivative("relu", 2)(z).tolist() == [0.0, 0.0, 0.0]


def test_derivatives_are_built_from_the_op_table(monkeypatch) -> None:
    """Change an op's record and its derivative changes: nothing is transcribed."""
    relu = BUILTIN_OPS["relu"]
    monkeypatch.setitem(BUILTIN_OPS, "relu", dataclasses.replace(relu, kwargs={"at_zero": 1.0}))
    assert entrywise.derivative("relu")(np.array([0.0])).tolist() == [1.0]

    steeper = dataclasses.replace(
        BUILTIN_OPS["sigmoid"], definition=lambda sp, z: 1 / (1 + sp.exp(-2 * z))
    )
    monkeypatch.setitem(BUILTIN_OPS, "sigmoid", steeper)
    assert entrywise.derivative("sigmoid")(np.array([0.0])).tolist() == [0.5]  # 2 σ(1 - σ)

    monkeypatch.undo()
    entrywise.derivative.cache_clear()
    assert entrywise.derivative("relu")(np.array([0.0])).tolist() == [0.0]
    assert entrywise.derivative("sigmoid")(np.array([0.0])).tolist() == [0.25]


def test_functions_are_built_once_and_only_for_the_readers_functions() -> None:
    assert entrywise.derivative("tanh", 2) is entrywise.derivative("tanh", 2)
    assert entrywise.value("sigmoid") is entrywise.value("sigmoid")
    for name, order in (("softmax", 1), ("gelu", 1), ("sigmoid", MAX_PRIMES + 1), ("log", -1)):
        with pytest.raises(ValueError, match="no entrywise function"):
            entrywise.derivative(name, order)


def test_higher_primes_are_derivatives_of_that_order() -> None:
    assert judge_scalar(r"\tanh'(x)", "x", r"\tanh''(x)").status is Status.EQUIVALENT
    assert judge_scalar(r"\tanh(x)", "x", r"\tanh''(x)").status is Status.WRONG
    assert judge_scalar(r"\sigma(x)", "x", r"\sigma''(x)").status is Status.WRONG
    assert judge_scalar(r"\log(x)", "x", r"\log''(x)").status is Status.WRONG
    assert judge_scalar(r"\sigma(x) (1 - \sigma(x))", "x", r"\sigma''(x)").status is (
        Status.EQUIVALENT
    )


def test_primes_are_capped() -> None:
    assert read(r"\tanh'''(x)") == Call("tanh", (Name("x"),), 3)
    with pytest.raises(AnswerError, match="derivative marks"):
        read(r"\tanh''''(x)")
    with pytest.raises(AnswerError, match="not supported"):
        read("sqrt'(x)")


@pytest.mark.parametrize(
    ("text", "plain", "tex"),
    [
        (r"\sigma'(z)", "sigmoid'(z)", r"\sigma'\left(z\right)"),
        (r"\sigma''(z)", "sigmoid''(z)", r"\sigma''\left(z\right)"),
        (r"\tanh''(z)", "tanh''(z)", r"\tanh''\left(z\right)"),
        (r"\exp'(z)", "exp'(z)", r"\exp'\left(z\right)"),
        (r"\log'''(z)", "log'''(z)", r"\log'''\left(z\right)"),
    ],
)
def test_a_prime_is_shown_as_written(text: str, plain: str, tex: str) -> None:
    """How an answer was read echoes its marks, never a written-out derivative."""
    from derive.answers.scalar import reading

    shown = reading(read(text))
    assert (shown.plain, shown.latex) == (plain, tex)
