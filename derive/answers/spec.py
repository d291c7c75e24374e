"""Judge a matrix- or vector-valued answer: the adjoint of one node of a spec.

The reference is the derivation's adjoint of the node for one example's loss, evaluated
by the engine at ``TRIALS`` random examples with random, distinct sizes per dimension.
The answer is evaluated with NumPy in the lecture's conventions (vectors are columns):
``(p - t) h_1^T``, ``h_1 \\odot (1 - h_1) \\odot W_2^T (p - t)``.  Node names are known
without definitions, as are ``\\delta_N`` (the adjoint of ``zN``) and ``g_X``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sympy import Sum

from derive.answers.batchform import (
    BATCH_SIZES,
    batch_env,
    batch_findings,
    batched,
    capitalised,
)
from derive.answers.batchform import reference as batch_reference
from derive.answers.diagnose import Context, diagnose, same
from derive.answers.numeric import Evaluator, ShapeError, shape_text
from derive.answers.reader import read
from derive.answers.scalar import BadQuestion, located, read_definitions, reading
from derive.answers.symbolic import latex, mathml
from derive.answers.tree import AnswerError, Name, Tree, drop_free_index, substitute, unknown_names
from derive.answers.values import Trial, make_trial
from derive.answers.verdict import Difference, Method, Reading, Status, Verdict
from derive.autodiff.adjoint import Derivation, adjoint_name
from derive.errors import SpecError
from derive.graph.nodes import BATCH, Node
from derive.lang.naming import gradient_of
from derive.show import full_adjoint, spec_str

TRIALS = 4
BATCH_VALUE = 13  # the batch size an answer's m (or B, N, M) stands for: no dimension is 13
BATCH_NAMES = ("B", "N", "m", "M")


def batch_names(d: Derivation) -> list[str]:
    """Names an answer may use for the batch size (those the spec does not use otherwise)."""
    taken = answer_names(d)
    return [n for n in dict.fromkeys((d.graph.batch_size.name, *BATCH_NAMES)) if n not in taken]


def answer_names(d: Derivation) -> dict[str, str]:
    """Names an answer may use -> value names (``delta1`` -> ``g_z1``)."""
    table = {n.name: n.name for n in d.graph.nodes if n.user}
    table.update({c: c for c in d.graph.constants})
    for name in d.adjoints:
        if name in table:
            table[adjoint_name(name)] = adjoint_name(name)
        match = re.fullmatch(r"z_?(\w*)", name)
        if match and name in table:
            table[f"delta{match.group(1)}"] = adjoint_name(name)
    return table


@dataclass
class SpecQuestion:
    """The question "∂L/∂node" of one spec, with its reference values precomputed."""

    derivation: Derivation
    wrt: str
    definitions: dict[str, Tree]
    trials: list[Trial]
    spec_name: str
    batch: bool = False  # the gradient of a whole batch's loss (parameters only)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """Values that do not depend on the answer, computed once per question."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    @classmethod
    def load(
        cls,
        spec: str | Path,
        wrt: str,
        defines: Sequence[str] = (),
        seed: int = 0,
        batch: bool = False,
    ) -> SpecQuestion:
        try:
            d = _derived(spec)
        except SpecError as err:
            raise BadQuestion(str(err)) from None
        return cls.from_derivation(d, wrt, defines, seed, str(spec), batch)

    @classmethod
    def from_derivation(
        cls,
        d: Derivation,
        wrt: str,
        defines: Sequence[str],
        seed: int,
        spec_name: str,
        batch: bool = False,
    ) -> SpecQuestion:
        try:
            node = read(wrt)
        except AnswerError:
            node = None
        if interacting(d):
            raise BadQuestion(
                f"{spec_name}: examples interact (batch statistics), so a question about one "
                "example's loss is not defined; derive verify code judges batch gradients"
            )
        choices = questions(d)
        if batch:
            choices = [c for c in choices if c in d.graph.params]
        if not isinstance(node, Name) or node.id not in choices:
            raise BadQuestion(f"--wrt {wrt}: not a value of the spec ({', '.join(choices)})")
        definitions = read_definitions(defines, set(answer_names(d)))
        rng = np.random.default_rng(seed)
        if batch:
            sizes = rng.permutation(BATCH_SIZES)
            trials = [make_trial(d, rng, int(sizes[i % len(sizes)])) for i in range(TRIALS)]
        else:
            trials = [make_trial(d, rng) for _ in range(TRIALS)]
        return cls(d, node.id, definitions, trials, spec_name, batch)

    @property
    def node(self) -> Node:
        return self.derivation.adjoints[self.wrt].node

    @property
    def question(self) -> str:
        g = self.derivation.graph
        if self.batch:
            size = g.batch_size
            return f"∂L/∂{self.wrt} for a batch of {size} examples of {g.name} ({g.reduction} loss)"
        return f"∂L/∂{self.wrt} for one example of {g.name}"

    def reference_reading(self) -> Reading:
        def compute() -> Reading:
            e = full_adjoint(self.derivation, self.wrt)  # derive show's dL/dnode
            if self.batch and self.derivation.graph.reduction == "mean":
                e = e / self.derivation.graph.batch_size
            return Reading(spec_str(e), latex(e), mathml(e))

        return self.cached("reference", compute)

    def envs(self) -> list[dict[str, np.ndarray]]:
        return self.cached("envs", self._envs)

    def _envs(self) -> list[dict[str, np.ndarray]]:
        g = self.derivation.graph
        by_name = {n.name: n for n in g.nodes}
        out = []
        for trial in self.trials:
            env: dict[str, np.ndarray] = {}
            for alias, target in answer_names(self.derivation).items():
                if target in g.constants:
                    env[alias] = np.asarray(g.constants[target])
                    continue
                base = gradient_of(target) if target not in by_name else None
                base = base or target
                node = self.derivation.adjoints[base].node if base != target else by_name[target]
                env[alias] = trial.per_example(target, node)
            env.update({n: np.asarray(float(BATCH_VALUE)) for n in batch_names(self.derivation)})
            out.append(batch_env(self, env, trial) if self.batch else env)
        return out

    def reference(self, trial: Trial) -> np.ndarray:
        if self.batch:
            return batch_reference(self, trial)
        return trial.per_example(adjoint_name(self.wrt), self.node)

    def judge(self, answer: str) -> Verdict:
        known = set(answer_names(self.derivation)) | set(self.definitions)
        known |= set(batch_names(self.derivation))
        marks = known
        if self.batch:
            capitals = {capitalised(n) for n in batched(self)}
            known |= capitals
            marks = known - (capitals - set(answer_names(self.derivation)))
        question = self.question
        try:
            tree = read(answer, marks)  # a target T of the batch leaves ^T a transpose
        except AnswerError as err:
            return Verdict(Status.UNREADABLE, question, error=located(err), hint=err.hint)
        shown = reading(tree, matrix=True)
        unknown = unknown_names(tree, known)
        entrywise = drop_free_index(tree, known) if unknown else None
        if entrywise is not None:  # p_j - t_j: the components of p - t
            tree, unknown = entrywise, []
        if unknown:
            hint = f"the spec's names: {', '.join(sorted(known))}"
            return Verdict(
                Status.UNREADABLE, question, shown, error=f"unknown name {unknown[0]!r}", hint=hint
            )
        return self._judge(substitute(tree, self.definitions), shown)

    def _judge(self, tree: Tree, shown: Reading) -> Verdict:
        envs = self.envs()
        refs = [self.reference(t) for t in self.trials]
        ctx = Context(self, tree, envs, refs)
        ref_shown = self.reference_reading()
        entries = sum(int(r.size) for r in refs)
        size = self.derivation.graph.batch_size
        what = f"batches ({size} from 8 to 11)" if self.batch else "examples"
        detail = f"{TRIALS} random {what} at random sizes, {entries} entries, rtol 1e-8"
        try:
            got = [
                Evaluator(env, dims=t.dim_names)(tree)
                for env, t in zip(envs, self.trials, strict=True)
            ]
        except ShapeError as err:
            verdict = Verdict(Status.WRONG, self.question, shown, ref_shown, Method.NUMERIC, detail)
            found = batch_findings(self, tree, None) if self.batch else []
            verdict.findings = found or diagnose(ctx, None, str(err))
            return verdict
        if all(same(a, r) for a, r in zip(got, refs, strict=True)):
            return Verdict(
                Status.EQUIVALENT, self.question, shown, ref_shown, Method.NUMERIC, detail
            )
        found = batch_findings(self, tree, got) if self.batch else []
        findings = found or diagnose(ctx, got, "")
        layout = all(same(a, r.T) for a, r in zip(got, refs, strict=True))
        status = Status.LAYOUT if layout else Status.WRONG
        trial = self.trials[0]
        point = {k: v for k, v in trial.sizes.items() if k in trial.dim_names.values()}
        if self.batch:
            point[size.name] = trial.sizes[BATCH]
        verdict = Verdict(status, self.question, shown, ref_shown, Method.NUMERIC, detail)
        verdict.difference = Difference(point, got[0], refs[0])
        verdict.findings = findings
        if layout:
            verdict.hint = (
                f"∂L/∂{self.wrt} has the shape of {self.wrt}: "
                f"{shape_text(refs[0].shape, trial.dim_names)}"
            )
        return verdict


def _derived(spec: str | Path) -> Derivation:
    """The spec's derivation, reused while the file is unchanged (one process, many answers)."""
    from derive.pipeline import derive_spec

    path = Path(spec)
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        return derive_spec(path)  # the spec reader says what is wrong
    if key not in _DERIVED:
        if len(_DERIVED) >= 8:
            _DERIVED.pop(next(iter(_DERIVED)))
        _DERIVED[key] = derive_spec(path)
    return _DERIVED[key]


_DERIVED: dict[tuple[str, int], Derivation] = {}


def interacting(d: Derivation) -> bool:
    """Whether a value sums over the batch (batch norm): examples are then not independent."""
    g = d.graph
    return any(
        g.labels.dim_of(limit[0]) == BATCH
        for n in g.nodes
        if n.expr is not None
        for total in n.expr.atoms(Sum)
        for limit in total.limits
    )


def questions(d: Derivation) -> list[str]:
    """Nodes a question may ask about: user-named values and parameters with an adjoint."""
    if interacting(d):
        return []
    return [n.name for n in d.graph.nodes if n.user and n.name in d.adjoints]
