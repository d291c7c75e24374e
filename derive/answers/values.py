"""Concrete values of a derivation at random sizes: every node and every named adjoint.

One example (a batch of 1) at random, distinct sizes per dimension, so that a product
whose sizes do not fit is caught and a transpose is visible.  Forward values and the
adjoints come from the engine's concrete evaluator (:mod:`derive.verify.evaluate`): each
node's index expression evaluated entry by entry, each adjoint from its staged form in
the order the code computes them (the loss seed is 1: one example's loss).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from derive.autodiff.adjoint import Derivation, adjoint_name
from derive.graph.nodes import BATCH, Node
from derive.ops.functions import written_out
from derive.show import seeded
from derive.verify.evaluate import _evaluate, size_substitution
from derive.verify.module import random_input

SIZES = (2, 3, 4, 5, 6, 7)


@dataclass
class Trial:
    """One random example: sizes, every node's value and every named adjoint (batch axis 1)."""

    sizes: dict[str, int]
    values: dict[str, np.ndarray]

    def per_example(self, name: str, node: Node) -> np.ndarray:
        """The value as the answer sees it: no batch axis, vectors as columns."""
        v = self.values[name]
        if node.dims and node.dims[0] == BATCH:
            v = v[0]
        return v[:, None] if v.ndim == 1 else v

    @property
    def dim_names(self) -> dict[int, str]:
        return {n: d for d, n in self.sizes.items() if d != BATCH}


def _dim(node_dim: str | int, d: Derivation) -> str:
    return d.graph.labels.int_dim(node_dim) if isinstance(node_dim, int) else node_dim


def _shape(node: Node, d: Derivation, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[_dim(x, d)] for x in node.dims)


def _fill(expr: sp.Expr, node: Node, shape: tuple[int, ...], values: dict) -> np.ndarray:
    out = np.empty(shape)
    for idx in itertools.product(*map(range, shape)):
        env = {lab: i + 1 for lab, i in zip(node.labels, idx, strict=True)}
        out[idx] = float(_evaluate(expr, env, values))
    return out


def random_sizes(d: Derivation, rng: np.random.Generator) -> dict[str, int]:
    """Distinct sizes for the named dimensions (declared sizes are ignored: any size works)."""
    dims = [x for x in d.graph.labels.sizes if x != BATCH]
    if len(dims) <= len(SIZES):
        chosen = rng.choice(SIZES, size=len(dims), replace=False)
    else:
        chosen = rng.integers(2, 8, size=len(dims))
    sizes = {x: int(n) for x, n in zip(dims, chosen, strict=True)}
    for x, v in d.graph.labels.sizes.items():  # fixed integer dims (e.g. a literal 1)
        if x != BATCH and not isinstance(v, sp.Symbol):
            sizes[x] = int(v)
    sizes[BATCH] = 1
    return sizes


def make_trial(d: Derivation, rng: np.random.Generator, batch: int = 1) -> Trial:
    """A random trial of ``batch`` examples (parameters shared; seed 1 for each example)."""
    g = d.graph
    sizes = random_sizes(d, rng)
    sizes[BATCH] = batch
    env0 = {**size_substitution(g, sizes)}
    env0.update({sp.Symbol(c, real=True): sp.Float(v) for c, v in g.constants.items()})
    values: dict[str, np.ndarray] = {}
    for node in g.nodes:
        shape = _shape(node, d, sizes)
        if node.kind == "param":
            values[node.name] = rng.normal(0.0, 0.7, shape)
        elif node.expr is None:
            values[node.name] = random_input(g.input_kinds[node.name], shape, rng)
        elif node.nograd:  # a stability shift (max of softmax) that cancels
            values[node.name] = np.zeros(shape)
        else:
            values[node.name] = _fill(written_out(node.expr).xreplace(env0), node, shape, values)
    for name, adj in d.adjoints.items():
        expr = written_out(seeded(d, adj.expr)).xreplace(env0)
        values[adjoint_name(name)] = _fill(expr, adj.node, _shape(adj.node, d, sizes), values)
    return Trial(sizes, values)


def env0(d: Derivation, trial: Trial) -> dict:
    g = d.graph
    out = dict(size_substitution(g, trial.sizes))
    out.update({sp.Symbol(c, real=True): sp.Float(v) for c, v in g.constants.items()})
    return out


def evaluate_on(d: Derivation, trial: Trial, expr: sp.Expr, node: Node) -> np.ndarray:
    """An index expression over ``node``'s labels at this trial, as the answer sees it."""
    e = written_out(seeded(d, expr)).xreplace(env0(d, trial))
    value = _fill(e, node, _shape(node, d, trial.sizes), trial.values)
    return Trial(trial.sizes, {"_": value}).per_example("_", node)


def adjoints_with(d: Derivation, trial: Trial, replace: dict[str, str]) -> dict[str, np.ndarray]:
    """Every named adjoint recomputed with ``g_z`` taken as ``g_h`` for ``replace[z] = h``.

    This is the derivation with a local-derivative factor left out (σ′ missing).
    """
    values = dict(trial.values)
    e0 = env0(d, trial)
    for name, adj in d.adjoints.items():
        if name in replace:
            values[adjoint_name(name)] = values[adjoint_name(replace[name])]
            continue
        expr = written_out(seeded(d, adj.expr)).xreplace(e0)
        values[adjoint_name(name)] = _fill(expr, adj.node, _shape(adj.node, d, trial.sizes), values)
    return values
