"""Rewrite rules: each a named object with a guard, testable alone.

A rule looks at one adjoint expression (with the graph, the canonicaliser, the value whose
adjoint it is and the adjoints derived so far) and proposes :class:`Candidate` rewrites,
each the step it would record.  :func:`derive.autodiff.rewrite.rewrite` keeps the best.

* :class:`Fold`: replace an argument of a pointwise value by its value solved from that
  value's definition, when linear (``e → p s`` for ``p = e / s``);
* :class:`Cancel`: cancel common factors (only outside sums);
* :class:`Unfold`: write an internal pointwise value out inside a sum;
* :class:`Inline`: substitute a named adjoint derived earlier (``g_p`` into ``g_f``),
  never into or out of a parameter gradient.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.autodiff.adjoint import Adjoint, adjoint_atom, adjoint_name, staged
from derive.autodiff.canon import Canon, size
from derive.autodiff.steps import AdjointUsed, Definition, Fact, StepKind
from derive.graph.labels import definition_at, instantiate, occurrences
from derive.graph.nodes import Graph, Node, atom_name, split_sum
from derive.lang.naming import gradient_of
from derive.ops.functions import written_out


@dataclass(frozen=True)
class Candidate:
    """One possible rewrite of an adjoint: the step it would record and the size it saves
    elsewhere (an adjoint no longer computed)."""

    kind: StepKind
    expr: sp.Expr
    facts: tuple[Fact, ...] = ()
    subject: str | None = None
    saved: int = 0


@dataclass(frozen=True)
class RuleContext:
    """What a rule may look at besides the expression."""

    graph: Graph
    canon: Canon
    node: Node  # the value whose adjoint is rewritten
    done: dict[str, Adjoint]  # adjoints derived so far, by value name


class Fold:
    name = "fold"

    def guard(self, ctx: RuleContext, expr: sp.Expr) -> bool:
        return True

    def candidates(self, ctx: RuleContext, expr: sp.Expr) -> Iterator[Candidate]:
        present = {atom_name(a) for a in expr.atoms(Indexed, Symbol)}
        for y in ctx.graph.nodes:
            if y.kind != "pointwise" or y.expr is None:
                continue
            for a in y.args:
                if a.name in present:
                    cand = fold(ctx.graph, y, a, expr)
                    if cand is not None:
                        out, used = ctx.canon.canonical(cand)
                        facts = (Definition(y.name, y.atom, y.expr), *used)
                        yield Candidate(StepKind.FOLD, out, facts, a.name)


class Cancel:
    name = "cancel"

    def guard(self, ctx: RuleContext, expr: sp.Expr) -> bool:
        return not expr.has(Sum)

    def candidates(self, ctx: RuleContext, expr: sp.Expr) -> Iterator[Candidate]:
        out, used = ctx.canon.canonical(sp.cancel(expr))
        yield Candidate(StepKind.CANCEL, out, used)


class Unfold:
    name = "unfold"

    def guard(self, ctx: RuleContext, expr: sp.Expr) -> bool:
        return expr.has(Sum)

    def candidates(self, ctx: RuleContext, expr: sp.Expr) -> Iterator[Candidate]:
        by_name = {n.name: n for n in ctx.graph.nodes}
        for total in expr.atoms(Sum):
            inside = {atom_name(a) for a in total.atoms(Indexed, Symbol)}
            for name in sorted(n for n in inside if n):
                n = by_name.get(name)
                if n is not None and not n.user and n.kind == "pointwise":
                    written = expr.xreplace({total: unfold(ctx.graph, n, total)})
                    out, used = ctx.canon.canonical(written)
                    facts = (Definition(n.name, n.atom, n.expr), *used)
                    yield Candidate(StepKind.UNFOLD, out, facts, name)


class Inline:
    """Each comes with the size it saves elsewhere: inlining ``g_p`` into ``g_f`` when only
    ``g_f`` reads it means ``g_p`` is never computed.  Parameter gradients (sums over the
    batch) never inline: that would move per-example work inside the batch sum."""

    name = "inline"

    def guard(self, ctx: RuleContext, expr: sp.Expr) -> bool:
        return ctx.node.kind != "param"

    def candidates(self, ctx: RuleContext, expr: sp.Expr) -> Iterator[Candidate]:
        for target_name in {atom_name(a) for a in expr.atoms(Indexed, Symbol)}:
            adj = ctx.done.get(gradient_of(target_name))
            if adj is None:
                continue
            target = adj.node
            if target.kind == "param" or adj.expr.has(Sum):
                continue  # matmul-like adjoints stay named: g_h1 = g_f @ W2
            inlined = inline_adjoint(ctx.graph, adj, expr)
            saved = size(adj.expr) if readers(ctx.graph, target) == {ctx.node.name} else 0
            fact = AdjointUsed(target.name, adjoint_atom(target), adj.expr)
            out, used = ctx.canon.canonical(inlined)
            yield Candidate(StepKind.INLINING, out, (fact, *used), target.name, saved)
            if not inlined.has(Sum):
                out, used = ctx.canon.canonical(sp.cancel(inlined))
                yield Candidate(StepKind.INLINING_CANCEL, out, (fact, *used), target.name, saved)


RULES = (Fold(), Cancel(), Unfold(), Inline())
"""Every rule, in the order their candidates are tried (the first of equals wins)."""


def candidates(ctx: RuleContext, expr: sp.Expr) -> Iterator[Candidate]:
    """Every one-step rewrite of ``expr`` worth trying, rule by rule."""
    for rule in RULES:
        if rule.guard(ctx, expr):
            yield from rule.candidates(ctx, expr)


def readers(graph: Graph, node: Node) -> set[str]:
    """Named values whose adjoints read ``node``'s adjoint: its arguments, through unnamed ones."""
    out, todo = set(), list(node.args)
    while todo:
        a = todo.pop()
        if a.nograd or (a.kind == "input" and graph.input_kinds.get(a.name) != "real"):
            continue
        if a.user or a.kind in ("input", "param") or staged(graph, a, graph.on_loss_path()):
            out.add(a.name)
        else:
            todo.extend(a.args)
    return out


def fold(graph: Graph, y: Node, a: Node, expr: sp.Expr) -> sp.Expr | None:
    """Replace ``a`` by its value solved from ``y``'s definition (``e = p s``), if linear."""
    _, body, limits = split_sum(y.expr)
    if limits:
        return None
    occ = occurrences(body, a)
    if len(set(occ)) != 1 or not isinstance(occ[0], Indexed):
        return None
    pattern = occ[0].indices
    if set(pattern) != set(y.labels) or len(set(pattern)) != len(pattern):
        return None
    x = sp.Dummy("x")
    b = body.xreplace({occ[0]: x})
    slope = sp.diff(b, x)
    if slope.has(x) or slope == 0:
        return None
    solved = (y.atom - b.xreplace({x: 0})) / slope
    if not all(_positive(graph, d) for d in sp.Mul.make_args(sp.fraction(sp.together(solved))[1])):
        return None  # never divide by a value that can be zero (s = h/z for swish)
    subs = {}
    for o in occurrences(expr, a):
        labels = dict(zip(pattern, o.indices, strict=True))
        subs[o] = solved.xreplace(labels)
    return expr.xreplace(subs)


def _positive(graph: Graph, factor: sp.Expr) -> bool:
    """Whether a denominator factor is provably positive (from its node's definition)."""
    if factor.is_number:
        return bool(factor.is_positive)
    base = factor.base if isinstance(factor, sp.Pow) else factor
    name = atom_name(base)
    node = next((n for n in graph.nodes if n.name == name), None)
    if node is None or node.expr is None or node.kind != "pointwise":
        return False
    body = written_out(node.expr)
    body = body.xreplace({a: sp.Dummy(real=True) for a in body.atoms(Indexed)})
    return bool(body.is_positive)


def unfold(graph: Graph, n: Node, expr: sp.Expr) -> sp.Expr:
    subs = {o: definition_at(n, o.indices, graph) for o in occurrences(expr, n)}
    return expr.xreplace(subs)


def inline_adjoint(graph: Graph, adj: Adjoint, expr: sp.Expr) -> sp.Expr:
    name = adjoint_name(adj.node.name)
    subs = {}
    for o in expr.atoms(Indexed, Symbol):
        if atom_name(o) == name:
            idx = o.indices if isinstance(o, Indexed) else ()
            subs[o] = instantiate(adj.expr, adj.node.labels, idx, graph)
    return expr.xreplace(subs)
