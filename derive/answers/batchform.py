"""Parameter gradients asked in batch form: the loss of a whole batch of examples.

The answer sees each per-example value as a batch matrix, one row per example
(``H_1`` is m × n, ``P - T`` is m × k, m the batch size), and the reference is the
gradient of the batch loss: ``Σ_b ∂ℓ_b/∂W`` for ``reduction = "sum"``, ``(1/m) Σ_b
∂ℓ_b/∂W`` for ``"mean"`` (for the softmax classifier, ``∂L/∂W2 = (1/m) (P − T)ᵀ H_1``).
An answer written for one example (``(p - t) h_1^T``) is evaluated example by example;
when the sum of those values, or their mean, is the reference, the diagnosis is the
missing batch sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from derive.answers.diagnose import same
from derive.answers.numeric import Evaluator, ShapeError
from derive.answers.tree import Tree
from derive.answers.values import Trial
from derive.answers.verdict import Finding, Mistake
from derive.graph.nodes import BATCH

if TYPE_CHECKING:
    from derive.answers.spec import SpecQuestion

BATCH_SIZES = (8, 9, 10, 11)  # no dimension (2..7) and not the per-example batch size (13)


def batch_size(q: SpecQuestion, trial: Trial) -> int:
    return trial.sizes[BATCH]


def batch_symbol(q: SpecQuestion) -> str:
    """The batch size's name in the spec's graph (``m`` unless the spec declares a dim ``m``)."""
    return q.derivation.graph.batch_size.name


def capitalised(name: str) -> str:
    return name[:1].upper() + name[1:]


def batched(q: SpecQuestion) -> set[str]:
    """Answer names whose values carry the batch axis (one row per example)."""
    from derive.answers.spec import answer_names

    g = q.derivation.graph
    by_name = {n.name: n for n in g.nodes}
    out = set()
    for alias, target in answer_names(q.derivation).items():
        node = by_name.get(target)
        if node is None and target.startswith("g_") and target[2:] in q.derivation.adjoints:
            node = q.derivation.adjoints[target[2:]].node
        if node is not None and node.dims and node.dims[0] == BATCH:
            out.add(alias)
    return out


def batch_env(q: SpecQuestion, env: dict[str, np.ndarray], trial: Trial) -> dict:
    """The per-example environment with batched names as m × n matrices (also capitalised)."""
    from derive.answers.spec import answer_names, batch_names

    table = answer_names(q.derivation)
    out = dict(env)
    for alias in batched(q):
        v = np.asarray(trial.values[table[alias]])
        v = v.reshape(v.shape[0], -1) if v.ndim <= 2 else v
        out[alias] = v
        out.setdefault(capitalised(alias), v)
    out.update({n: np.asarray(float(batch_size(q, trial))) for n in batch_names(q.derivation)})
    return out


def example_envs(q: SpecQuestion, env: dict[str, np.ndarray], trial: Trial) -> list[dict]:
    """One environment per example: batched names as that example's columns."""
    out = []
    for b in range(batch_size(q, trial)):
        one = dict(env)
        for alias in batched(q):
            v = env[alias][b]
            v = v[:, None] if v.ndim == 1 else v
            if env.get(capitalised(alias)) is env[alias]:
                one[capitalised(alias)] = v
            one[alias] = v
        out.append(one)
    return out


def reference(q: SpecQuestion, trial: Trial) -> np.ndarray:
    """∂L/∂param of the batch loss (the engine's trial sums the examples' gradients)."""
    v = trial.per_example(f"g_{q.wrt}", q.node)
    return v / batch_size(q, trial) if q.derivation.graph.reduction == "mean" else v


def batch_findings(q: SpecQuestion, tree: Tree, got: list | None) -> list[Finding]:
    """A batch sum (or the 1/m of the mean) missing from the answer."""
    refs = [q.reference(t) for t in q.trials]
    sizes = [batch_size(q, t) for t in q.trials]
    mean = q.derivation.graph.reduction == "mean"
    sums = []
    for env, trial in zip(q.envs(), q.trials, strict=True):
        try:
            values = [Evaluator(e, dims=trial.dim_names)(tree) for e in example_envs(q, env, trial)]
        except (ShapeError, KeyError):
            sums = []
            break
        sums.append(np.sum(values, axis=0))
    wrt, size = q.wrt, batch_symbol(q)
    if sums and all(same(s, r) for s, r in zip(sums, refs, strict=True)):
        message = (
            f"the sum over the batch is missing: this is one example's ∂ℓ/∂{wrt}; "
            f"∂L/∂{wrt} sums it over the {size} examples"
        )
        return [Finding(Mistake.BATCH_SUM_MISSING, message)]
    if sums and all(same(s / n, r) for s, n, r in zip(sums, sizes, refs, strict=True)):
        message = (
            f"the sum over the batch and the 1/{size} of the mean are missing: this is one "
            f"example's ∂ℓ/∂{wrt}; ∂L/∂{wrt} is its mean over the {size} examples"
        )
        return [Finding(Mistake.BATCH_SUM_MISSING, message)]
    if got is None:
        return []
    if mean and all(same(a, r * n) for a, n, r in zip(got, sizes, refs, strict=True)):
        message = (
            f"the 1/{size} of the batch mean is missing "
            "(the spec's loss is the mean over the batch)"
        )
        return [Finding(Mistake.MEAN_MISSING, message)]
    if not mean and all(same(a * n, r) for a, n, r in zip(got, sizes, refs, strict=True)):
        message = f'the loss is the sum over the batch (reduction = "sum"): no 1/{size}'
        return [Finding(Mistake.MEAN_EXTRA, message)]
    return []
