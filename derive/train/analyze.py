"""``derive analyze``: the parameter count as a formula, and gradient flow at initialization.

Parameter count: every parameter contributes the product of its dims; parameters are grouped
by the first named value they flow into (``W1`` and ``b1`` both feed ``z1``), each group is
factored, and equal groups are counted once with a multiplicity, which gives the lectures'
forms: ``(d+1)m + (m+1)k`` for d -> m -> k, ``dm + 7m² + mk`` for eight bias-free layers.

Gradient flow: the generated module's ``loss_and_grad`` at its initial parameters on a
random batch (features N(0, 1), random targets of the declared kind); for each layer (a
group holding a matrix) the Frobenius norm of the gradient of its matrices, input first.
Products of per-layer Jacobians make these shrink geometrically for sigmoid units
(``sigma' <= 1/4``) and stay level for ReLU, residual skips or batch-normalized layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derive.graph.nodes import Graph


@dataclass(frozen=True)
class ParamGroup:
    node: str
    params: tuple[str, ...]
    count: sp.Expr  # sum of the parameters' sizes, factored


@dataclass(frozen=True)
class ParamCount:
    groups: tuple[ParamGroup, ...]
    terms: tuple[tuple[int, sp.Expr], ...]  # (multiplicity, factored group size), in order
    total: sp.Expr
    number: int | None
    dim_order: tuple[str, ...] = ()

    @property
    def formula(self) -> str:
        """``(d+1)m + (m+1)k``: symbols in the order the spec declares its dims."""
        return " + ".join(_term_text(c, e, self.dim_order) for c, e in self.terms)

    @property
    def latex(self) -> str:
        return " + ".join(_term_latex(c, e, self.dim_order) for c, e in self.terms)


def _dim_symbols(graph: Graph) -> dict[str, sp.Symbol]:
    return {d: sp.Symbol(d, positive=True, integer=True) for d in graph.dims}


def _size(graph: Graph, dims: tuple[str | int, ...]) -> sp.Expr:
    syms = _dim_symbols(graph)
    return sp.Mul(*[sp.Integer(d) if isinstance(d, int) else syms[d] for d in dims])


def _first_named(graph: Graph, name: str) -> str:
    """The first author-named computed value that parameter ``name`` flows into."""
    users = graph.consumers()
    frontier, seen = list(users[name]), set()
    while frontier:
        node = frontier.pop(0)
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.user:
            return node.name
        frontier.extend(users[node.name])
    return name


def parameter_count(graph: Graph) -> ParamCount:
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    grouped: dict[str, list[str]] = {}
    for name in graph.params:
        grouped.setdefault(_first_named(graph, name), []).append(name)
    groups = tuple(
        ParamGroup(node, tuple(ps), sp.factor(sum(_size(graph, graph.params[p].dims) for p in ps)))
        for node, ps in sorted(grouped.items(), key=lambda kv: order.get(kv[0], -1))
    )
    terms: list[list[Any]] = []
    for g in groups:
        for term in terms:
            if term[1] == g.count:
                term[0] += 1
                break
        else:
            terms.append([1, g.count])
    total = sp.expand(sum(g.count for g in groups))
    known = {s: graph.dims[n] for n, s in _dim_symbols(graph).items() if graph.dims[n] is not None}
    value = total.subs(known)
    number = int(value) if value.is_Integer else None
    terms_ = tuple((int(c), e) for c, e in terms)
    return ParamCount(groups, terms_, total, number, tuple(graph.dims))


def _factors(expr: sp.Expr, order: tuple[str, ...]) -> tuple[int, list[sp.Expr], list[sp.Expr]]:
    """(integer coefficient, sums, other factors in declaration order of their dims)."""
    coeff, rest = expr.as_coeff_Mul()
    factors = list(rest.args) if isinstance(rest, sp.Mul) else [rest]
    sums = [f for f in factors if isinstance(f, sp.Add)]

    def rank(f: sp.Expr) -> tuple[int, str]:
        name = str(f.base if isinstance(f, sp.Pow) else f)
        return (order.index(name) if name in order else len(order), name)

    others = sorted((f for f in factors if not isinstance(f, sp.Add) and f != 1), key=rank)
    return int(coeff), sums, others


def _term_text(mult: int, expr: sp.Expr, order: tuple[str, ...]) -> str:
    coeff, sums, others = _factors(expr, order)
    coeff *= mult
    out = "" if coeff == 1 else str(coeff)
    out += "".join("(" + str(s).replace(" ", "") + ")" for s in sums)
    for f in others:
        if isinstance(f, sp.Pow) and f.exp == 2:
            out += f"{f.base}²"
        else:
            out += str(f).replace("**", "^")
    return out or "1"


def _term_latex(mult: int, expr: sp.Expr, order: tuple[str, ...]) -> str:
    coeff, sums, others = _factors(expr, order)
    coeff *= mult
    parts = [] if coeff == 1 else [str(coeff)]
    parts += [rf"\left({sp.latex(s)}\right)" for s in sums]
    parts += [sp.latex(f) for f in others]
    return " ".join(parts) or "1"


# ---------------------------------------------------------------------------------------------
# gradient flow


@dataclass(frozen=True)
class LayerFlow:
    layer: int
    node: str
    params: tuple[str, ...]
    norm: float


def random_batch(module: Any, sizes: Mapping[str, int], size: int, seed: int) -> dict:
    """Features N(0, 1); targets of the declared kind (one-hot, 0/1, probabilities, N(0, 1))."""
    rng = np.random.default_rng(seed)
    batch = {}
    for name, (shape, kind) in module.INPUTS.items():
        if name in getattr(module, "DROPOUT", {}):
            continue  # the module draws its own dropout masks
        dims = tuple(d if isinstance(d, int) else sizes[d] for d in shape)
        if kind == "one_hot":
            k = dims[-1]
            batch[name] = np.eye(k)[rng.integers(0, k, (size, *dims[:-1]))]
        elif kind == "binary":
            batch[name] = rng.integers(0, 2, (size, *dims)).astype(np.float64)
        elif kind == "probability":
            e = np.exp(rng.standard_normal((size, *dims)))
            batch[name] = e / e.sum(axis=-1, keepdims=True)
        else:
            batch[name] = rng.standard_normal((size, *dims))
    return batch


def gradient_flow(
    module: Any, count: ParamCount, sizes: Mapping[str, int], seed: int = 0, batch: int = 64
) -> list[LayerFlow]:
    params = module.init_params(seed=seed, dims=dict(sizes))
    _loss, grads = module.loss_and_grad(params, random_batch(module, sizes, batch, seed))
    flows = []
    for group in count.groups:
        mats = [p for p in group.params if np.ndim(params[p]) >= 2]
        if mats:
            norm = float(np.sqrt(sum(np.sum(grads[p] ** 2) for p in mats)))
            flows.append(LayerFlow(len(flows) + 1, group.node, tuple(mats), norm))
    return flows


# ---------------------------------------------------------------------------------------------
# the command


@dataclass(frozen=True)
class SpecAnalysis:
    name: str
    count: ParamCount
    flow: list[LayerFlow]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameters": {
                "formula": self.count.formula,
                "latex": self.count.latex,
                "expanded": str(self.count.total),
                "count": self.count.number,
                "groups": [
                    {"node": g.node, "params": list(g.params), "count": str(g.count)}
                    for g in self.count.groups
                ],
            },
            "gradient_flow": [
                {"layer": f.layer, "node": f.node, "params": list(f.params), "norm": f.norm}
                for f in self.flow
            ],
        }


def analyze_spec(
    spec: str, dims: Mapping[str, int], seed: int = 0, batch: int = 64
) -> SpecAnalysis:
    from derive.pipeline import load_graph
    from derive.train.command import load_generated

    graph = load_graph(spec)
    count = parameter_count(graph)
    sizes = {k: v for k, v in graph.dims.items() if v is not None}
    sizes.update(dims)
    missing = sorted(set(graph.dims) - set(sizes))
    if missing:
        raise graph.error(
            f"no size for {', '.join(missing)}: gradient flow needs concrete sizes",
            hint=f"give them in the spec's [dims] or as --dim {missing[0]}=SIZE",
        )
    module = load_generated(spec)
    return SpecAnalysis(graph.name, count, gradient_flow(module, count, sizes, seed, batch))


def analysis_text(results: list[SpecAnalysis], seed: int, batch: int) -> str:
    lines = []
    for r in results:
        number = f" = {r.count.number:,}" if r.count.number is not None else ""
        lines.append(f"{r.name}: {r.count.formula}{number} parameters")
    lines.append("")
    lines.append(
        f"gradient flow at initialization (seed {seed}, random batch of {batch}): "
        "||dL/dW|| per layer, input first"
    )
    depth = max((len(r.flow) for r in results), default=0)
    if len(results) == 1:
        rows = [["layer", "value", "params", "||dL/dW||"]]
        rows += [
            [str(f.layer), f.node, " ".join(f.params), f"{f.norm:.3e}"] for f in results[0].flow
        ]
    else:
        rows = [["layer", *[r.name for r in results]]]
        for i in range(depth):
            rows.append(
                [str(i + 1)] + [f"{r.flow[i].norm:.3e}" if i < len(r.flow) else "" for r in results]
            )
    ratio = ["first/last"] + [
        f"{r.flow[0].norm / r.flow[-1].norm:.1e}" if r.flow and r.flow[-1].norm else "-"
        for r in results
    ]
    if len(results) == 1:
        ratio = [ratio[0], "", "", ratio[1]]
    rows.append(ratio)
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
