"""What is wrong with a matrix answer: compare it with mutants of the reference.

Mutants of the reference values (sign, factor 2), of the answer (a transpose added or
removed, two names swapped, ``z`` for ``h = σ(z)``), of the derivation (a σ′ factor left
out, the softmax Jacobian or its diagonal instead of the simplified form) and the other
values of the derivation (the adjoint of another node, a local derivative, a forward
value).  Each match is a :class:`Finding`; a match must hold in every trial.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from derive.answers.numeric import Evaluator, ShapeError, shape_text
from derive.answers.scalar import reading
from derive.answers.tree import Bin, Call, Name, Neg, Op, SumOver, Transpose, Tree, names, walk
from derive.answers.values import Trial, adjoints_with, evaluate_on
from derive.answers.verdict import Finding, Mistake
from derive.autodiff.adjoint import adjoint_name
from derive.autodiff.steps import StepKind

if TYPE_CHECKING:
    from derive.answers.spec import SpecQuestion

ACTIVATION = re.compile(r"\s*(sigmoid|tanh|relu|leaky_relu|softplus|swish)\((\w+)\)\s*")
SOFTMAX = re.compile(r"\s*softmax\((\w+)\)\s*")
SIGMA_PRIME = {"sigmoid": "{h} ⊙ (1 − {h})", "tanh": "1 − {h}²"}


def same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        if a.size == 1 and b.size == 1:
            a, b = a.reshape(()), b.reshape(())
        else:
            return False
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    return bool(np.all(np.isfinite(a)) and np.allclose(a, b, rtol=1e-8, atol=1e-10 * scale))


@dataclass
class Context:
    question: SpecQuestion
    tree: Tree
    envs: list[dict[str, np.ndarray]]
    refs: list[np.ndarray]

    def evaluate(self, tree: Tree, change: Callable[[dict], dict] | None = None) -> list | None:
        """The tree's value in every trial (None when sizes do not fit)."""
        out = []
        for env, trial in zip(self.envs, self.question.trials, strict=True):
            try:
                out.append(Evaluator(change(env) if change else env, dims=trial.dim_names)(tree))
            except (ShapeError, KeyError):
                return None
        return out

    def matches(self, values: list | None, targets: list) -> bool:
        return values is not None and all(same(a, b) for a, b in zip(values, targets, strict=True))


def diagnose(ctx: Context, got: list | None, shape_error: str) -> list[Finding]:
    q = ctx.question
    findings: list[Finding] = []
    wrt = q.wrt
    trial = q.trials[0]
    variants = list(_transpose_variants(ctx.tree))
    for variant, where in variants:
        if ctx.matches(ctx.evaluate(variant), ctx.refs):
            fixed = reading(variant, matrix=True).plain
            findings.append(Finding(Mistake.TRANSPOSE_MISSING, f"{where}: {fixed} is right"))
            break
    if got is None:
        if not findings:
            findings.append(Finding(Mistake.WRONG_SHAPE, f"the sizes do not fit: {shape_error}"))
        return findings
    ref_shape = shape_text(ctx.refs[0].shape, trial.dim_names)
    if ctx.matches(got, [r.T for r in ctx.refs]):
        return [Finding(Mistake.TRANSPOSE, f"this is ∂L/∂{wrt} transposed; it is {ref_shape}")]
    if got[0].shape != ctx.refs[0].shape and not (got[0].size == ctx.refs[0].size == 1):
        shape = shape_text(got[0].shape, trial.dim_names)
        findings.append(
            Finding(Mistake.WRONG_SHAPE, f"the answer is {shape}; ∂L/∂{wrt} is {ref_shape}")
        )
    swapped = _swaps(ctx)
    findings += swapped
    if not swapped and ctx.matches(got, [-r for r in ctx.refs]):
        findings.append(Finding(Mistake.SIGN, "the sign is flipped"))
    if ctx.matches(got, [2 * r for r in ctx.refs]):
        findings.append(Finding(Mistake.FACTOR_2_EXTRA, "off by a factor of 2 (an extra 2)"))
    if ctx.matches(got, [r / 2 for r in ctx.refs]):
        findings.append(Finding(Mistake.FACTOR_2_MISSING, "off by a factor of 2 (a 2 missing)"))
    findings += _batch_mean(ctx, got)
    if not findings:
        findings += _constant_factor(ctx, got)
    findings += _activations(ctx, got)
    findings += _softmax(ctx, got)
    findings += _intermediates(ctx, got, {f.mistake for f in findings})
    return findings


def _batch_mean(ctx: Context, got: list) -> list[Finding]:
    """``1/m`` of the batch mean in an answer about one example's loss."""
    from derive.answers.spec import BATCH_VALUE, batch_names

    if ctx.question.batch:  # batch questions: judged in batchform
        return []
    used = [n for n in batch_names(ctx.question.derivation) if n in names(ctx.tree)]
    if used and ctx.matches(got, [r / BATCH_VALUE for r in ctx.refs]):
        message = (
            f"the 1/{used[0]} of the batch mean does not belong here: the question is "
            f"∂L/∂{ctx.question.wrt} for one example's loss"
        )
        return [Finding(Mistake.MEAN_EXTRA, message)]
    return []


def _constant_factor(ctx: Context, got: list) -> list[Finding]:
    """The answer is the reference times one constant (``1/k``, ``3``, ...)."""
    ratios = []
    for a, r in zip(got, ctx.refs, strict=True):
        if a.shape != r.shape:
            return []
        mask = np.abs(r) > 1e-9
        with np.errstate(all="ignore"):
            ratios.append((a[mask] / r[mask]).ravel())
    ratio = np.concatenate(ratios)
    if ratio.size < 2 or not np.all(np.isfinite(ratio)) or ratio[0] == 0:
        return []
    if not np.allclose(ratio, ratio[0], rtol=1e-8):
        return []
    c = sp.nsimplify(float(ratio[0]), tolerance=1e-9, rational=True)
    return [Finding(Mistake.CONSTANT_FACTOR, f"off by a constant factor {c}")]


def _transpose_variants(tree: Tree):
    """The answer with one transpose removed, or one name transposed."""
    for node in walk(tree):
        if isinstance(node, Transpose):
            yield _replace(tree, node, node.operand), f"an extra transpose on {_show(node.operand)}"
    for name in dict.fromkeys(n for n in walk(tree) if isinstance(n, Name)):
        yield _replace(tree, name, Transpose(name)), f"a transpose is missing on {_show(name)}"


def _show(tree: Tree) -> str:
    return reading(tree, matrix=True).plain


def _replace(tree: Tree, old: Tree, new: Tree) -> Tree:
    if tree is old:
        return new
    if isinstance(tree, Neg):
        return Neg(_replace(tree.operand, old, new))
    if isinstance(tree, Transpose):
        return Transpose(_replace(tree.operand, old, new))
    if isinstance(tree, Bin):
        return Bin(tree.op, _replace(tree.left, old, new), _replace(tree.right, old, new))
    if isinstance(tree, Call):
        return Call(tree.func, tuple(_replace(a, old, new) for a in tree.args), tree.prime)
    if isinstance(tree, SumOver):
        return SumOver(tree.index, _replace(tree.body, old, new), tree.lo, tree.hi)
    return tree


def _swaps(ctx: Context) -> list[Finding]:
    """``t - p`` written where the reference has ``p - t``: two names swapped."""
    reference = ctx.question.reference_reading().plain
    for node in walk(ctx.tree):
        if not (isinstance(node, Bin) and node.op is Op.SUB):
            continue
        a, b = node.left, node.right
        if not (isinstance(a, Name) and isinstance(b, Name) and a.id in ctx.envs[0]):
            continue
        if b.id not in ctx.envs[0] or not re.search(
            rf"\b{b.id}(\[[^\]]*\])? - {a.id}\b", reference
        ):
            continue

        def swap(env: dict, a: str = a.id, b: str = b.id) -> dict:
            return {**env, a: env[b], b: env[a]}

        if ctx.matches(ctx.evaluate(ctx.tree, swap), ctx.refs):
            message = f"{a.id} and {b.id} are swapped ({a.id} − {b.id} written for {b.id} − {a.id})"
            return [Finding(Mistake.T_MINUS_P, message)]
    return []


def activation_pairs(q: SpecQuestion) -> list[tuple[str, str, str]]:
    """``(h, z, function)`` for every ``h = f(z)`` of the spec."""
    out = []
    for node in q.derivation.graph.nodes:
        match = ACTIVATION.fullmatch(node.meta.get("text", ""))
        if match and node.user:
            out.append((node.name, match.group(2), match.group(1)))
    return out


def _activations(ctx: Context, got: list) -> list[Finding]:
    q = ctx.question
    findings = []
    for h, z, f in activation_pairs(q):
        if z in names(ctx.tree) and z in ctx.envs[0] and h in ctx.envs[0]:

            def use_h(env: dict, z: str = z, h: str = h) -> dict:
                return {**env, z: env[h]}

            if ctx.matches(ctx.evaluate(ctx.tree, use_h), ctx.refs):
                message = f"{z} is used where {h} = {f}({z}) was meant"
                findings.append(Finding(Mistake.PRE_ACTIVATION, message))
        if z not in q.derivation.adjoints or h not in q.derivation.adjoints:
            continue

        def compute(z: str = z, h: str = h) -> list[np.ndarray]:
            out = []
            for trial in q.trials:
                values = adjoints_with(q.derivation, trial, {z: h})
                out.append(Trial(trial.sizes, values).per_example(adjoint_name(q.wrt), q.node))
            return out

        if ctx.matches(got, q.cached(("sigma-prime", z), compute)):
            factor = SIGMA_PRIME.get(f, f"{f}′({z})").format(h=h)
            message = f"the {f}′ factor ({factor}) is missing"
            if q.wrt == z:
                message += f": this is ∂L/∂{h}; the question asks for ∂L/∂{z}"
            findings.append(Finding(Mistake.SIGMA_PRIME_MISSING, message))
    return findings


def _softmax(ctx: Context, got: list) -> list[Finding]:
    q = ctx.question
    findings = []
    for node in q.derivation.graph.nodes:
        match = SOFTMAX.fullmatch(node.meta.get("text", ""))
        if not match or node.name not in ctx.envs[0]:
            continue
        p, f = node.name, match.group(1)
        jac = [np.diag(env[p][:, 0]) - env[p] @ env[p].T for env in ctx.envs]
        if ctx.matches(got, jac):
            message = (
                f"this is ∂{p}/∂{f}, the softmax Jacobian diag({p}) − {p} {p}ᵀ; "
                f"∂L/∂{f} is that Jacobian applied to ∂L/∂{p}, which simplifies"
            )
            findings.append(Finding(Mistake.SOFTMAX_JACOBIAN, message))
        g_p = adjoint_name(p)
        if q.wrt == f and g_p in ctx.envs[0]:
            diag = [env[p] * (1 - env[p]) * env[g_p] for env in ctx.envs]
            if ctx.matches(got, diag):
                message = (
                    f"softmax was treated as entrywise: only the diagonal {p} ⊙ (1 − {p}) of its "
                    f"Jacobian was used; ∂L/∂{f} needs the whole Jacobian"
                )
                findings.append(Finding(Mistake.SOFTMAX_ELEMENTWISE, message))
    return findings


def _intermediates(ctx: Context, got: list, found: set[Mistake]) -> list[Finding]:
    q = ctx.question
    d = q.derivation
    findings = []
    if Mistake.SIGMA_PRIME_MISSING not in found:
        for name in d.adjoints:
            g = adjoint_name(name)
            other = name != q.wrt and g in ctx.envs[0]
            if other and ctx.matches(got, [env[g] for env in ctx.envs]):
                message = f"this is ∂L/∂{name}; the question asks for ∂L/∂{q.wrt}"
                findings.append(Finding(Mistake.INTERMEDIATE, message))
    for name, adj in d.adjoints.items():
        for step in adj.steps + d.local_steps.get(name, []):
            if step.kind is not StepKind.LOCAL_DERIVATIVE:
                continue

            def compute(step=step, adj=adj) -> list | None:
                try:
                    return [evaluate_on(d, t, step.after, adj.node) for t in q.trials]
                except (KeyError, TypeError, ValueError):
                    return None

            if ctx.matches(got, q.cached(("step", name, step.title, str(step.after)), compute)):
                message = f"this is the local derivative ∂{step.node}/∂{name}, not ∂L/∂{q.wrt}"
                findings.append(Finding(Mistake.INTERMEDIATE, message))
                return findings
    for node in d.graph.nodes:
        value = node.user and node.name in ctx.envs[0]
        if value and ctx.matches(got, [env[node.name] for env in ctx.envs]):
            message = f"this is the value of {node.name}, not a derivative"
            findings.append(Finding(Mistake.INTERMEDIATE, message))
    return findings
