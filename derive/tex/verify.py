"""Every displayed equality, checked at random points.

The graph is instantiated at tiny concrete sizes with random leaves (inputs drawn by
their kind, so a one-hot target really sums to 1) by the project's concrete evaluator
(:mod:`derive.check`); every named adjoint is then evaluated from its derived expression,
the loss seed being 1 (one example's loss).  For each display ``lhs = r_0 = r_1 = ...``
each consecutive pair is compared at every entry, in index notation through the same
evaluator and, for rows in matrix notation, through the NumPy value of the translation.
Points are drawn at ordinary (σ = 0.7) and large (σ = 4) magnitudes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy import Indexed, Symbol

from derive.autodiff.adjoint import Derivation, adjoint_name
from derive.graph.nodes import BATCH, Graph
from derive.ops.functions import written_out
from derive.show import seeded
from derive.tex.document import Display, Document
from derive.verify.evaluate import _evaluate, _evaluate_node, size_substitution, tiny_sizes
from derive.verify.module import random_input


@dataclass
class Mismatch:
    """Two consecutive displayed expressions that differ somewhere."""

    node: str
    left: str
    right: str
    error: float

    def __str__(self) -> str:
        return f"{self.node}: {self.left} = {self.right} fails (relative error {self.error:.2e})"


class Point:
    """Every node's value and every named adjoint's value at one random point."""

    def __init__(
        self,
        d: Derivation,
        rng: np.random.Generator,
        scale: float,
        sizes: dict[str, int] | None = None,
        given: dict[str, float] | None = None,
    ) -> None:
        g = d.graph
        self.g = g
        self.sizes = sizes or tiny_sizes(g)
        given = given or {}
        self.env0 = {
            **{k: sp.Integer(v) for k, v in size_substitution(g, self.sizes).items()},
            **{Symbol(c, real=True): sp.Float(v) for c, v in g.constants.items()},
        }
        self.values: dict[str, np.ndarray] = {}
        for node in g.nodes:
            shape = tuple(self.sizes[_dim(g, dim)] for dim in node.dims)
            if node.expr is None:
                kind = g.input_kinds.get(node.name, "real") if node.kind == "input" else "real"
                if node.name in given:
                    raw = np.full(shape, given[node.name])
                elif kind != "real":
                    raw = random_input(kind, shape, rng)
                else:
                    raw = rng.normal(0, scale, shape)
                arr = np.empty(shape, dtype=object)
                for idx in itertools.product(*map(range, shape)):
                    arr[idx] = sp.Float(float(np.asarray(raw)[idx]))
                self.values[node.name] = arr
            elif node.nograd:
                self.values[node.name] = np.full(shape, sp.S.Zero, dtype=object)
            else:
                self.values[node.name] = _evaluate_node(node, self.values, shape, self.env0)
        loss = g.loss
        self.values[adjoint_name(loss.name)] = np.full(
            tuple(self.sizes[_dim(g, x)] for x in loss.dims), sp.S.One, dtype=object
        )
        for name, adj in d.adjoints.items():
            node = adj.node
            shape = tuple(self.sizes[_dim(g, dim)] for dim in node.dims)
            self.values[adjoint_name(name)] = self.entries(adj.expr, node.labels, shape)
        for name, step in d.internal.items():  # unnamed values' adjoints, in backprop order
            node = step.before
            key = adjoint_name(name)
            if key in self.values:
                continue
            n = next(x for x in g.nodes if x.name == name)
            shape = tuple(self.sizes[_dim(g, dim)] for dim in n.dims)
            self.values[key] = self.entries(step.after, n.labels, shape)

    def entries(self, e: sp.Expr, labels: tuple, shape: tuple) -> np.ndarray:
        arr = np.empty(shape, dtype=object)
        body = written_out(e).xreplace(self.env0)
        for idx in itertools.product(*map(range, shape)):
            env = {lab: i + 1 for lab, i in zip(labels, idx, strict=True)}
            arr[idx] = _evaluate(body, env, self.values)
        return arr

    def at(self, e: sp.Expr, env: dict) -> float:
        """``e`` at concrete labels (``Derivative`` carried out first)."""
        if e.has(sp.Derivative):
            e = e.doit()
        v = _evaluate(written_out(e).xreplace(self.env0), env, self.values)
        return float(sp.re(sp.N(v)))

    def label_size(self, label: Symbol) -> int:
        dim = self.g.labels.dim_of(label)
        return self.sizes[dim]

    def numeric(self) -> dict:
        """Float arrays for the matrix translations' NumPy values."""
        vals = {k: np.asarray(v, dtype=float) for k, v in self.values.items()}
        return {
            "values": vals,
            "ex": {},
            "batch_size": self.sizes[BATCH],
            "scalar": lambda e, ex: self.at(e, {lab: k + 1 for lab, k in ex.items()}),
        }


def _dim(g: Graph, d: str | int) -> str:
    return g.labels.int_dim(d) if isinstance(d, int) else d


def free_labels(e: sp.Expr) -> list[Symbol]:
    bound = {lim[0] for s in e.atoms(sp.Sum) for lim in s.limits}
    free = {i for a in e.atoms(Indexed) for i in a.indices if isinstance(i, Symbol)}
    return sorted(free - bound, key=lambda s: s.name)


def check_display(p: Point, disp: Display, node: str, tol: float = 1e-8) -> list[Mismatch]:
    """Each consecutive pair of ``disp``'s expressions, at every entry."""
    exprs = [(disp.lhs, disp.lhs_expr, None)] if disp.lhs_expr is not None else []
    exprs += [(r.latex, r.expr, r.matrix) for r in disp.rows]
    labels = sorted({lab for _, e, _ in exprs for lab in free_labels(e)}, key=lambda s: s.name)
    ranges = [range(1, p.label_size(lab) + 1) for lab in labels]
    numeric = p.numeric() if any(m is not None for _, _, m in exprs) else None
    out = []
    for combo in itertools.product(*ranges):
        env = dict(zip(labels, combo, strict=True))
        vals = [_value(p, e, m, env, numeric) for _, e, m in exprs]
        for k in range(1, len(vals)):
            a, b = vals[k - 1], vals[k]
            err = abs(a - b) / (1.0 + abs(a))
            if not err <= tol:
                out.append(Mismatch(node, exprs[k - 1][0], exprs[k][0], err))
        if out:
            break
    return out


def _value(p: Point, e: sp.Expr, m, env: dict, numeric: dict | None) -> float:
    if m is None:
        return p.at(e, env)
    ex = {lab: v - 1 for lab, v in env.items() if lab.name == p.g.labels.letter.get(BATCH)}
    arr = np.asarray(m.fn({**numeric, "ex": ex}), dtype=float)
    idx = tuple(env[a] - 1 for a in m.axes)
    return float(arr[idx]) if idx else float(arr)


def check_document(
    d: Derivation,
    doc: Document,
    seed: int = 0,
    scales: tuple = (0.7, 4.0),
    given: dict[str, float] | None = None,
) -> list[Mismatch]:
    """Every display of ``doc``, at one random point per scale (``given`` values fixed)."""
    out: list[Mismatch] = []
    rng = np.random.default_rng(seed)
    for scale in scales:
        p = Point(d, rng, scale, given=given)
        for block in doc.blocks:
            for disp in block.displays:
                out += check_display(p, disp, block.node)
    return out


def seeded_expr(d: Derivation, e: sp.Expr) -> sp.Expr:
    return seeded(d, e)
