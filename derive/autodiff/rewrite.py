"""Greedy, size-guarded rewriting of one named adjoint, every accepted step recorded.

From the canonical form (see :mod:`derive.autodiff.canon`) each round tries every
candidate: fold a value into the named value computed from it (``e → p s``), unfold an
internal value inside a sum, cancel common factors, inline a named adjoint.  The best
candidate that lowers ``(size, internal values referenced)`` is kept; the result is
finally collected into one fraction (:func:`compact`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.autodiff.adjoint import Adjoint, adjoint_atom, adjoint_name, staged
from derive.autodiff.canon import Canon, internal_atoms, merge_sums, size
from derive.autodiff.steps import AdjointUsed, Definition, Fact, Step, StepKind
from derive.graph.labels import definition_at, instantiate, occurrences
from derive.graph.nodes import Graph, Node, atom_name, split_sum
from derive.lang.naming import gradient_of
from derive.ops.functions import written_out


def key(e: sp.Expr, graph: Graph) -> tuple[int, int]:
    """What rewriting minimises: size, then internal values referenced."""
    return size(e), internal_atoms(e, graph)


@dataclass(frozen=True)
class Candidate:
    """One possible rewrite of an adjoint: the step it would record and the size it saves
    elsewhere (an adjoint no longer computed)."""

    kind: StepKind
    expr: sp.Expr
    facts: tuple[Fact, ...] = ()
    subject: str | None = None
    saved: int = 0


def rewrite(
    graph: Graph, canon: Canon, node: Node, raw: sp.Expr, done: dict, local: list[Step]
) -> Adjoint:
    """Greedy size-guarded rewriting of one named adjoint, each accepted step recorded."""
    steps = [*dict.fromkeys(local), Step(StepKind.CHAIN_RULE, node.name, adjoint_atom(node), raw)]
    expr, used = canon.canonical(raw)
    if expr != raw:
        steps.append(Step(StepKind.EXPANSION, node.name, raw, expr, used))
    for _ in range(40):
        best: tuple[tuple[int, int], Candidate] | None = None
        here = key(expr, graph)
        for cand in candidates(graph, canon, node, expr, done):
            k = key(cand.expr, graph)
            k = (k[0] - cand.saved, k[1])
            if k < here and (best is None or k < best[0]):
                best = (k, cand)
        if best is None:
            break
        c = best[1]
        steps.append(Step(c.kind, node.name, expr, c.expr, c.facts, c.subject))
        expr = c.expr
    final = compact(expr)
    if final != expr:
        steps.append(Step(StepKind.COMPACT, node.name, expr, final))
    expr = final
    read = {gradient_of(atom_name(a)) for a in expr.atoms(Indexed, Symbol)}
    uses = sorted(read & {n.name for n in graph.nodes})
    return Adjoint(node, expr, raw, steps, uses)


def compact(e: sp.Expr) -> sp.Expr:
    """One fraction with common factors pulled out, as written on slides (if not larger)."""
    e = merge_sums(e)
    plain = sp.factor_terms(e)
    together = sp.factor_terms(sp.together(e))
    best = together if size(together) <= size(plain) else plain
    return fold_piecewise(best) if best.has(sp.Piecewise) else best


def fold_piecewise(e: sp.Expr) -> sp.Expr:
    """``g Piecewise((1, c), (a, True))`` → ``Piecewise((g, c), (a g, True))``, not across sums.

    The folded form is emitted as ``np.where(c, g, a * g)``, which keeps ``g``'s dtype.
    """
    if isinstance(e, Sum):
        return Sum(fold_piecewise(e.function), *e.limits)
    if not e.has(Sum):
        return sp.piecewise_fold(e)
    if e.is_Atom or isinstance(e, Indexed):
        return e
    return e.func(*[fold_piecewise(a) for a in e.args])


def candidates(graph: Graph, canon: Canon, node: Node, expr: sp.Expr, done: dict):
    """Every one-step rewrite of ``expr`` worth trying: folds, unfolds, inlined adjoints.

    Each comes with the size it saves elsewhere: inlining ``g_p`` into ``g_f`` when only
    ``g_f`` reads it means ``g_p`` is never computed.  Parameter gradients (sums over the
    batch) never inline: that would move per-example work inside the batch sum.
    """
    by_name = {n.name: n for n in graph.nodes}
    present = {atom_name(a) for a in expr.atoms(Indexed, Symbol)}
    for y in graph.nodes:
        if y.kind != "pointwise" or y.expr is None:
            continue
        for a in y.args:
            if a.name in present:
                cand = fold(graph, y, a, expr)
                if cand is not None:
                    out, used = canon.canonical(cand)
                    facts = (Definition(y.name, y.atom, y.expr), *used)
                    yield Candidate(StepKind.FOLD, out, facts, a.name)
    if not expr.has(Sum):
        out, used = canon.canonical(sp.cancel(expr))
        yield Candidate(StepKind.CANCEL, out, used)
    for total in expr.atoms(Sum):
        inside = {atom_name(a) for a in total.atoms(Indexed, Symbol)}
        for name in sorted(n for n in inside if n):
            n = by_name.get(name)
            if n is not None and not n.user and n.kind == "pointwise":
                out, used = canon.canonical(expr.xreplace({total: unfold(graph, n, total)}))
                facts = (Definition(n.name, n.atom, n.expr), *used)
                yield Candidate(StepKind.UNFOLD, out, facts, name)
    for target_name in present:
        adj = done.get(gradient_of(target_name))
        if adj is None:
            continue
        target = adj.node
        if target.kind == "param" or node.kind == "param" or adj.expr.has(Sum):
            continue  # matmul-like adjoints stay named: g_h1 = g_f @ W2
        inlined = inline_adjoint(graph, adj, expr)
        saved = size(adj.expr) if readers(graph, target) == {node.name} else 0
        fact = AdjointUsed(target.name, adjoint_atom(target), adj.expr)
        out, used = canon.canonical(inlined)
        yield Candidate(StepKind.INLINING, out, (fact, *used), target.name, saved)
        if not inlined.has(Sum):
            out, used = canon.canonical(sp.cancel(inlined))
            yield Candidate(StepKind.INLINING_CANCEL, out, (fact, *used), target.name, saved)


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
