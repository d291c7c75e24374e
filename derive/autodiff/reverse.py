"""Reverse mode over the graph: one rule for every node.

For a node ``Y[I] = c Σ_J body(..., A[K], ...)`` the contribution to ``A``'s adjoint is::

    ∂L/∂A[K] += c Σ_{(I ∪ J) \\ K} ∂L/∂Y[I] · ∂body/∂A[K]

with ``∂body/∂A[K]`` from ``sympy.diff``.  For a matmul this is the swap rule
(``G_W = G_zᵀ x``); for a pointwise node it is the local derivative times the
upstream adjoint, summed over broadcast axes.  Local derivatives are written in
the node's own output when that form exists (``h (1 - h)``): see
:func:`derive.ops.functions.output_form`.

Adjoints of user-named values stay named atoms (``g_h1[b, i]``); adjoints of
internal values (inside softmax, batch norm, ...) are inlined.  Each named
adjoint is then rewritten by :func:`derive.autodiff.rewrite.rewrite`, every step recorded.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import sympy as sp
from sympy import Indexed, Sum

from derive.autodiff.adjoint import Adjoint, Derivation, adjoint_atom, constant_input, staged
from derive.autodiff.canon import Canon, tables_for
from derive.autodiff.rewrite import rewrite
from derive.autodiff.steps import Definition, Fact, OutputForm, Step, StepKind
from derive.graph.labels import bound_labels, freshen, occurrences
from derive.graph.nodes import Graph, Node, split_sum
from derive.ops.functions import H, Z, local_output_form


def derive(graph: Graph) -> Derivation:
    """Differentiate ``graph``'s loss with respect to every named value and parameter."""
    path = graph.on_loss_path()
    contrib: dict[str, list[sp.Expr]] = {n.name: [] for n in graph.nodes}
    adjoint_expr: dict[str, sp.Expr] = {graph.loss.name: adjoint_atom(graph.loss)}
    pending: dict[str, list[Step]] = {n.name: [] for n in graph.nodes}  # local steps
    # the same contributions with every consumer's adjoint an atom (∂L/∂x̂, not its value)
    through: dict[str, list[sp.Expr]] = {n.name: [] for n in graph.nodes}
    internal: dict[str, Step] = {}
    canon = Canon(graph, tables_for(graph))
    adjoints: dict[str, Adjoint] = {}
    for node in reversed(graph.nodes):
        if node.name not in path or node.nograd or constant_input(graph, node):
            continue
        named = node is graph.loss
        if node is not graph.loss:
            raw = sp.Add(*contrib[node.name])
            inside = not (node.user or staged(graph, node, path))
            if inside or sp.Add(*through[node.name]) != raw:
                internal[node.name] = Step(
                    StepKind.STAGED_CHAIN_RULE,
                    node.name,
                    adjoint_atom(node),
                    sp.Add(*through[node.name]),
                )
            if node.user or staged(graph, node, path):
                adjoints[node.name] = rewrite(graph, canon, node, raw, adjoints, pending[node.name])
                adjoint_expr[node.name] = adjoint_atom(node)
                named = True
            else:
                adjoint_expr[node.name] = canon(raw)
        if node.expr is None:
            continue
        for arg in node.args:
            if arg.name in path and not arg.nograd:
                terms, steps = backprop(graph, node, arg, adjoint_expr[node.name])
                contrib[arg.name].extend(terms)
                atom = adjoint_atom(node)
                same = adjoint_expr[node.name] == atom
                through[arg.name].extend(terms if same else backprop(graph, node, arg, atom)[0])
                pending[arg.name] += ([] if named else pending[node.name]) + steps
    return Derivation(graph, adjoints, {k: v for k, v in pending.items() if v}, internal)


def backprop(graph: Graph, y: Node, a: Node, g_y: sp.Expr) -> tuple[list[sp.Expr], list[Step]]:
    """Contributions of ``y``'s adjoint ``g_y`` to its argument ``a`` (the one rule)."""
    coeff, body, limits = split_sum(y.expr)
    bound = [lim[0] for lim in limits]
    terms, steps = [], []
    for occ in sorted(set(occurrences(body, a)), key=str):
        local, step = local_derivative(y, body, occ)
        if step:
            steps.append(step)
        idx = occ.indices if isinstance(occ, Indexed) else ()
        g = freshen(g_y, graph, set(y.labels) | set(bound) | set(a.labels))
        term = coeff * g * local
        rest = [lab for lab in (*y.labels, *bound) if lab not in idx]
        # labels summed over get fresh bound names; occurrence labels become a's own
        used = set(a.labels) | term.free_symbols | bound_labels(term)  # no capture, no shadowing
        mapping = dict(zip(idx, a.labels, strict=True))
        new_limits = []
        for lab in rest:
            nb = graph.labels.fresh_bound(graph.labels.dim_of(lab), used)
            used.add(nb)
            mapping[lab] = nb
            new_limits.append((nb, 1, graph.labels.size(graph.labels.dim_of(lab))))
        term = term.xreplace(mapping)
        terms.append(Sum(term, *new_limits) if new_limits else term)
    return terms, steps


def local_derivative(y: Node, body: sp.Expr, occ: sp.Expr) -> tuple[sp.Expr, Step | None]:
    """``∂body/∂occ``, written in ``y``'s own value where that is possible.

    For an elementwise op the output form comes from :func:`local_output_form`
    (fitted and proved); otherwise any copy of the body inside the derivative is
    replaced by the node's value (``exp' = h``, ``tanh' = 1 - h²``).
    """
    x = _X
    # every other entry a real symbol too: Abs(w - x) then differentiates to sign(w - x)
    # (the same placeholders every time, so that _diff's cache serves every layer)
    rest = sorted((o for o in body.atoms(Indexed) if o != occ), key=str)
    others = {o: _placeholder(k) for k, o in enumerate(rest)}
    b = body.xreplace(others).xreplace({occ: x})
    zform = _diff(b)
    d = zform
    facts: tuple[Fact, ...] = (Definition(y.name, y.atom, y.expr),)
    if y.kind == "pointwise" and b != x:
        form = None
        if isinstance(b, sp.Function) and b.args and b.args[0].has(x):
            form = local_output_form(b.func(Z, *b.args[1:]))
        if form is not None:
            facts += (OutputForm(b.func.__name__, form),)
            d = form.xreplace({H: y.atom}) * sp.diff(b.args[0], x)
        elif isinstance(b, sp.Pow):
            d = zform.subs(b, y.atom)  # algebraic: (u)^(-1/2) -> 1/h for h = u^(1/2)
        else:
            d = zform.xreplace({b: y.atom})
    d = sp.factor_terms(sp.piecewise_fold(d))
    step = None
    if d.has(y.atom) and d != zform:
        step = Step(StepKind.LOCAL_DERIVATIVE, y.name, zform, d, facts)
    return _restore(d, x, occ, others), _restore_step(step, x, occ, others)


_X = sp.Symbol("_x", real=True)  # spec names never start with "_"


@lru_cache(maxsize=4096)
def _diff(body: sp.Expr) -> sp.Expr:
    """``∂body/∂_x``, cached: every layer of a deep net asks for the same sigmoid'."""
    return sp.diff(body, _X)


def _restore_step(step: Step | None, x: sp.Dummy, occ: sp.Expr, others: dict) -> Step | None:
    if step is None:
        return None
    return replace(
        step,
        before=_restore(step.before, x, occ, others),
        after=_restore(step.after, x, occ, others),
    )


def _restore(d: sp.Expr, x: sp.Dummy, occ: sp.Expr, others: dict) -> sp.Expr:
    return d.xreplace({x: occ, **{v: k for k, v in others.items()}})


@lru_cache(maxsize=64)
def _placeholder(k: int) -> sp.Symbol:
    """A real symbol standing for the k-th other entry of a body (never a spec name)."""
    return sp.Symbol(f"_o{k}", real=True)
