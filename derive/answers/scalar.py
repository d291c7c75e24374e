"""Judge a scalar answer: the derivative of an expression with respect to one variable.

The reference is ``sympy.diff`` of the expression (read by the same reader).  Two deciders:

* symbolic: ``simplify(answer - reference) == 0`` in a bounded child process
  (:mod:`derive.answers.bounded`); used when it finishes in time;
* numeric: ``POINTS`` random points where the reference is defined (drawn from [-2, 2],
  then from (0, 2] when logs or roots leave too few), relative tolerance ``RTOL``.  That is
  twelve times WeBWorK's 5 points at a 10^5 times tighter tolerance than its 0.1 %.

An answer is equivalent only when the numeric check agrees; a wrong answer gets a point,
both values and a diagnosis from mutants of the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy as sp

from derive.answers.bounded import run_bounded
from derive.answers.numeric import Evaluator, ShapeError
from derive.answers.reader import read
from derive.answers.symbolic import PrimedBase, latex, mathml, plain, symbol, to_sympy
from derive.answers.tree import AnswerError, Name, Tree, names, substitute, unknown_names
from derive.answers.verdict import (
    Difference,
    Finding,
    Method,
    Mistake,
    Reading,
    Status,
    Verdict,
)
from derive.ops.functions import written_out

POINTS = 60
RTOL = 1e-8


class BadQuestion(Exception):
    """The question itself (expression, variable, definitions) is unusable: exit 2."""


def located(err: AnswerError) -> str:
    return err.message + (f" (column {err.col})" if err.col else "")


def reading(tree: Tree, matrix: bool = False) -> Reading:
    e = to_sympy(tree, matrix=matrix, evaluate=False)
    return Reading(plain(e), latex(e), mathml(e))


def read_definitions(defines: Sequence[str], known: set[str]) -> dict[str, Tree]:
    """``name=formula`` definitions, each usable by the later ones and by the answer."""
    table: dict[str, Tree] = {}
    for text in defines:
        if "=" not in text:
            raise BadQuestion(
                f"--define {text!r}: expected NAME=FORMULA, e.g. \\hat{{y}}=sigmoid(z)"
            )
        lhs, rhs = text.split("=", 1)
        try:
            name = read(lhs)
            body = read(rhs, known | set(table))
        except AnswerError as err:
            raise BadQuestion(f"--define {text!r}: {err}") from None
        if not isinstance(name, Name):
            raise BadQuestion(f"--define {text!r}: the left side must be one name")
        table[name.id] = substitute(body, table)
    return table


def judge_scalar(
    expr: str,
    wrt: str,
    answer: str,
    given: Mapping[str, float] | None = None,
    defines: Sequence[str] = (),
    seed: int = 0,
) -> Verdict:
    given = dict(given or {})
    try:
        expr_tree = read(expr)
    except AnswerError as err:
        raise BadQuestion(f"--expr: {err}") from None
    definitions = read_definitions(defines, set(names(expr_tree)))
    expr_tree = substitute(expr_tree, definitions)
    variables = names(expr_tree)
    wrt = _canonical(wrt)
    given = {_canonical(k): float(v) for k, v in given.items()}
    if wrt not in variables:
        raise BadQuestion(
            f"--wrt {wrt}: the expression has no variable {wrt} ({', '.join(variables)})"
        )
    if wrt in given:
        raise BadQuestion(f"--given {wrt}: cannot fix the variable we differentiate by")
    question = f"∂/∂{wrt} of {reading(expr_tree).plain}" + "".join(
        f", {k} = {v:g}" for k, v in given.items()
    )
    known = set(variables) | set(definitions) | set(given)
    try:
        tree = read(answer, known)
    except AnswerError as err:
        return Verdict(Status.UNREADABLE, question, error=located(err), hint=err.hint)
    shown = reading(tree)
    unknown = unknown_names(tree, known)
    if unknown:
        return Verdict(
            Status.UNREADABLE,
            question,
            shown,
            error=f"unknown name {unknown[0]!r}",
            hint=f"the question's names: {', '.join(sorted(known))}; name parts with --define",
        )
    full = substitute(tree, definitions)
    return _judge(expr_tree, wrt, full, shown, given, question, seed)


def _canonical(name: str) -> str:
    try:
        tree = read(name)
    except AnswerError:
        raise BadQuestion(f"{name!r} is not a variable name") from None
    if not isinstance(tree, Name):
        raise BadQuestion(f"{name!r} is not a variable name")
    return tree.id


def _judge(
    expr_tree: Tree,
    wrt: str,
    tree: Tree,
    shown: Reading,
    given: dict[str, float],
    question: str,
    seed: int,
) -> Verdict:
    fixed = {symbol(k, False): sp.nsimplify(v, rational=True) for k, v in given.items()}
    expr = to_sympy(expr_tree).xreplace(fixed)
    reference = sp.diff(expr, symbol(wrt, False))
    variables = [v for v in names(expr_tree) if v not in given]
    env, ref_values = _points(reference, variables, seed)
    evaluate = Evaluator({**env, **{k: np.full(POINTS, v) for k, v in given.items()}}, scalar=True)
    try:
        got = np.broadcast_to(evaluate(tree), (POINTS,))
    except ShapeError as err:
        return Verdict(Status.UNREADABLE, question, shown, error=str(err))
    tidy = run_bounded(_tidy, reference) or reference
    ref_shown = Reading(plain(tidy), latex(tidy), mathml(tidy))
    close = _close(got, ref_values)
    proved = None
    if close.all():
        answer = to_sympy(tree).xreplace(fixed)
        proved = run_bounded(_simplifies_to_zero, answer - reference)
        if proved:
            detail = "simplify(answer - reference) = 0"
            return Verdict(Status.EQUIVALENT, question, shown, ref_shown, Method.SYMBOLIC, detail)
        if proved is None:
            detail = f"agrees at {POINTS} random points within relative tolerance {RTOL:g}"
            return Verdict(Status.EQUIVALENT, question, shown, ref_shown, Method.NUMERIC, detail)
    bad = int(np.argmin(close))
    point = {name: float(env[name][bad]) for name in variables}
    method, detail = Method.NUMERIC, f"differs at {int((~close).sum())} of {POINTS} random points"
    if proved is False:
        method, detail = Method.SYMBOLIC, "answer - reference simplifies to a nonzero constant"
    verdict = Verdict(
        Status.WRONG,
        question,
        shown,
        ref_shown,
        method,
        detail,
        Difference(point, float(got[bad]), float(ref_values[bad])),
    )
    verdict.findings = _diagnose(got, ref_values, expr, wrt, variables, env)
    return verdict


def _written(e: sp.Expr) -> sp.Expr:
    """``e`` with σ and primed functions (σ′, tanh″) written out."""
    return written_out(e.rewrite(PrimedBase, sp.exp) if e.has(PrimedBase) else e)


def _lambdify(e: sp.Expr, variables: list[str]):
    syms = [symbol(v, False) for v in variables]
    body = _written(e)
    return sp.lambdify(syms, body, modules="numpy", dummify=True)


def _points(reference: sp.Expr, variables: list[str], seed: int) -> tuple[dict, np.ndarray]:
    """``POINTS`` random points where the reference is finite, and its values there."""
    f = _lambdify(reference, variables)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for low in (-2.0, 0.05, 0.05, 0.05):
        draw = rng.uniform(low, 2.0, size=(len(variables), 4 * POINTS))
        with np.errstate(all="ignore"):
            v = np.broadcast_to(np.asarray(f(*draw), dtype=complex), (4 * POINTS,))
        ok = np.isfinite(v) & (np.abs(v.imag) <= 1e-12 * (1 + np.abs(v.real)))
        chosen.append(draw[:, ok])
        values.append(v.real[ok])
        if sum(c.shape[1] for c in chosen) >= POINTS:
            break
    pts = np.concatenate(chosen, axis=1)[:, :POINTS]
    if pts.shape[1] < POINTS:
        raise BadQuestion("the derivative is undefined at almost every random point")
    env = {name: pts[i] for i, name in enumerate(variables)}
    return env, np.concatenate(values)[:POINTS]


def _close(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.isfinite(got) & (np.abs(got - ref) <= RTOL * np.maximum(1.0, np.abs(ref)))


def _simplifies_to_zero(difference: sp.Expr) -> bool | None:
    e = written_out(
        difference.rewrite(PrimedBase, sp.exp) if difference.has(PrimedBase) else difference
    )
    e = sp.simplify(e)
    if e == 0:
        return True
    return False if e.is_number and e.is_nonzero else None


def _tidy(e: sp.Expr) -> sp.Expr:
    return sp.simplify(written_out(e))


def _diagnose(
    got: np.ndarray,
    ref: np.ndarray,
    expr: sp.Expr,
    wrt: str,
    variables: list[str],
    env: dict[str, np.ndarray],
) -> list[Finding]:
    mutants: list[tuple[Mistake, str, np.ndarray]] = [
        (Mistake.SIGN, "the sign is flipped", -ref),
        (Mistake.FACTOR_2_EXTRA, "off by a factor of 2 (an extra factor 2)", 2 * ref),
        (Mistake.FACTOR_2_MISSING, "off by a factor of 2 (a factor 2 or ½ missing)", ref / 2),
    ]
    args = [env[v] for v in variables]
    with np.errstate(all="ignore"):
        value = np.broadcast_to(np.asarray(_lambdify(expr, variables)(*args), float), ref.shape)
        mutants.append(
            (Mistake.NOT_DIFFERENTIATED, "this is the expression itself, not its derivative", value)
        )
        for other in variables:
            if other != wrt:
                d = sp.diff(expr, symbol(other, False))
                v = np.broadcast_to(np.asarray(_lambdify(d, variables)(*args), float), ref.shape)
                message = f"this is ∂/∂{other}; the question asks for ∂/∂{wrt}"
                mutants.append((Mistake.WRONG_VARIABLE, message, v))
    found = [Finding(kind, message) for kind, message, m in mutants if _matches(got, m)]
    return found or _factors(got, ref, variables, env)


def _factors(
    got: np.ndarray, ref: np.ndarray, variables: list[str], env: dict[str, np.ndarray]
) -> list[Finding]:
    """The answer is the reference times a constant, a variable, or one over a variable."""
    with np.errstate(all="ignore"):
        ok = np.isfinite(got) & (np.abs(ref) > 1e-9)
        if 2 * int(ok.sum()) < ok.size:
            return []
        ratio = got[ok] / ref[ok]
        if _close(ratio, np.full_like(ratio, ratio[0])).all() and ratio[0] != 0:
            c = sp.nsimplify(float(ratio[0]), tolerance=1e-9, rational=True)
            return [Finding(Mistake.CONSTANT_FACTOR, f"off by a constant factor {c}")]
        for v in variables:
            if _close(ratio, 1 / env[v][ok]).all():
                message = f"a factor {v} is missing (an inner derivative of the chain rule?)"
                return [Finding(Mistake.FACTOR_MISSING, message)]
            if _close(ratio, env[v][ok]).all():
                return [Finding(Mistake.FACTOR_EXTRA, f"an extra factor {v}")]
    return []


def _matches(got: np.ndarray, mutant: np.ndarray) -> bool:
    """Equal wherever the mutant is defined, and that is at least half the points."""
    ok = np.isfinite(mutant)
    return 2 * int(ok.sum()) >= ok.size and bool(_close(got[ok], mutant[ok]).all())
