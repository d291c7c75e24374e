"""Reverse mode over the graph, one rule for every node, and the rewriting loop.

For a node ``Y[I] = c Σ_J body(..., A[K], ...)`` the contribution to ``A``'s adjoint is::

    ∂L/∂A[K] += c Σ_{(I ∪ J) \\ K} ∂L/∂Y[I] · ∂body/∂A[K]

with ``∂body/∂A[K]`` from ``sympy.diff``.  For a matmul this is the swap rule
(``G_W = G_zᵀ x``); for a pointwise node it is the local derivative times the
upstream adjoint, summed over broadcast axes.  Local derivatives are written in
the node's own output when that form exists (``h (1 - h)``): see
:func:`derive.ops.output_form`.

Adjoints of user-named values stay named atoms (``g_h1[b, i]``); adjoints of
internal values (inside softmax, batch norm, ...) are inlined.  Each named
adjoint is then rewritten by :func:`rewrite`, every step recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.graph import Graph, Node, atom_name, entry, split_sum
from derive.ops import H, Z, local_output_form, written_out
from derive.simplify import (
    Canon,
    Step,
    bound_labels,
    definition_at,
    freshen,
    instantiate,
    internal_atoms,
    merge_sums,
    occurrences,
    size,
    tables_for,
)


def adjoint_name(name: str) -> str:
    return f"g_{name}"


def adjoint_atom(node: Node) -> sp.Expr:
    return entry(adjoint_name(node.name), node.labels)


@dataclass
class Adjoint:
    """The derived adjoint ``∂L/∂node`` of one named value or parameter."""

    node: Node
    expr: sp.Expr
    raw: sp.Expr
    steps: list[Step] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)  # named adjoints this one reads


@dataclass
class Derivation:
    """Every named adjoint of a graph, in the order code computes them."""

    graph: Graph
    adjoints: dict[str, Adjoint]
    local_steps: dict[str, list[Step]]  # local derivatives met on the way to each value

    @property
    def unused_params(self) -> list[str]:
        """Parameters the loss does not depend on (their gradient is zero)."""
        return [name for name in self.graph.params if name not in self.adjoints]

    def needed(self) -> list[str]:
        """Named adjoints the parameter gradients depend on, in computation order."""
        need = set(self.graph.params)
        for name in reversed(list(self.adjoints)):
            if name in need:
                need.update(self.adjoints[name].uses)
        return [n for n in self.adjoints if n in need]


def derive(graph: Graph) -> Derivation:
    """Differentiate ``graph``'s loss with respect to every named value and parameter."""
    path = graph.on_loss_path()
    contrib: dict[str, list[sp.Expr]] = {n.name: [] for n in graph.nodes}
    adjoint_expr: dict[str, sp.Expr] = {graph.loss.name: adjoint_atom(graph.loss)}
    pending: dict[str, list[Step]] = {n.name: [] for n in graph.nodes}  # local steps
    canon = Canon(graph, tables_for(graph))
    adjoints: dict[str, Adjoint] = {}
    for node in reversed(graph.nodes):
        if node.name not in path or node.nograd or _constant_input(graph, node):
            continue
        named = node is graph.loss
        if node is not graph.loss:
            raw = sp.Add(*contrib[node.name])
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
                pending[arg.name] += ([] if named else pending[node.name]) + steps
    return Derivation(graph, adjoints, {k: v for k, v in pending.items() if v})


def _constant_input(graph: Graph, node: Node) -> bool:
    """Targets and labels (one-hot, probability, binary inputs) get no adjoint."""
    return node.kind == "input" and graph.input_kinds.get(node.name, "real") != "real"


def staged(graph: Graph, node: Node, path: set[str]) -> bool:
    """Whether an unnamed value's adjoint is computed once and named (``g_z_h1``).

    True for values outside op definitions whose adjoint reaches two or more
    arguments (the pre-activation ``W x + b`` feeds both ``W`` and ``b``).
    """
    if node.user or node.expr is None:
        return False
    if node.meta.get("stage"):
        return True
    if node.meta.get("macro"):
        return False
    fan_out = [a for a in node.args if a.name in path and not a.nograd]
    return len(fan_out) >= 2 and node.kind == "pointwise"


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
            nb = _fresh_bound(graph, lab, used)
            used.add(nb)
            mapping[lab] = nb
            new_limits.append((nb, 1, graph.labels.size(graph.labels.dim_of(lab))))
        term = term.xreplace(mapping)
        terms.append(Sum(term, *new_limits) if new_limits else term)
    return terms, steps


def _fresh_bound(graph: Graph, lab: Symbol, used: set) -> Symbol:
    dim = graph.labels.dim_of(lab)
    k = 1
    while (cand := graph.labels.bound(dim, k)) in used:
        k += 1
    return cand


def local_derivative(y: Node, body: sp.Expr, occ: sp.Expr) -> tuple[sp.Expr, Step | None]:
    """``∂body/∂occ``, written in ``y``'s own value where that is possible.

    For an elementwise op the output form comes from :func:`local_output_form`
    (fitted and proved); otherwise any copy of the body inside the derivative is
    replaced by the node's value (``exp' = h``, ``tanh' = 1 - h²``).
    """
    x = _X
    # every other entry a real symbol too: Abs(w - x) then differentiates to sign(w - x)
    others = {o: sp.Dummy(real=True) for o in body.atoms(Indexed) if o != occ}
    b = body.xreplace(others).xreplace({occ: x})
    zform = _diff(b)
    d = zform
    if y.kind == "pointwise" and b != x:
        form = None
        if isinstance(b, sp.Function) and b.args and b.args[0].has(x):
            form = local_output_form(b.func(Z, *b.args[1:]))
        if form is not None:
            d = form.xreplace({H: y.atom}) * sp.diff(b.args[0], x)
        elif isinstance(b, sp.Pow):
            d = zform.subs(b, y.atom)  # algebraic: (u)^(-1/2) -> 1/h for h = u^(1/2)
        else:
            d = zform.xreplace({b: y.atom})
    d = sp.factor_terms(sp.piecewise_fold(d))
    step = None
    if d.has(y.atom) and d != zform:
        step = Step(f"local derivative of {y.name} in its output", zform, d)
    return _restore(d, x, occ, others), _restore_step(step, x, occ, others)


_X = sp.Symbol("_x", real=True)  # spec names never start with "_"


@lru_cache(maxsize=4096)
def _diff(body: sp.Expr) -> sp.Expr:
    """``∂body/∂_x``, cached: every layer of a deep net asks for the same sigmoid'."""
    return sp.diff(body, _X)


def _restore_step(step: Step | None, x: sp.Dummy, occ: sp.Expr, others: dict) -> Step | None:
    if step is None:
        return None
    return Step(
        step.rule, _restore(step.before, x, occ, others), _restore(step.after, x, occ, others)
    )


def _restore(d: sp.Expr, x: sp.Dummy, occ: sp.Expr, others: dict) -> sp.Expr:
    return d.xreplace({x: occ}).xreplace({v: k for k, v in others.items()})


# ----- rewriting ---------------------------------------------------------------------------
def key(e: sp.Expr, graph: Graph) -> tuple[int, int]:
    """What rewriting minimises: size, then internal values referenced."""
    return size(e), internal_atoms(e, graph)


def rewrite(
    graph: Graph, canon: Canon, node: Node, raw: sp.Expr, done: dict, local: list[Step]
) -> Adjoint:
    """Greedy size-guarded rewriting of one named adjoint, each accepted step recorded."""
    steps = [*dict.fromkeys(local), Step("chain rule", adjoint_atom(node), raw)]
    canon.fired.clear()
    expr = canon(raw)
    if expr != raw:
        why = "; ".join(dict.fromkeys(canon.fired)) if canon.fired else ""
        steps.append(Step("expand and collect sums", raw, expr, why))
    for _ in range(40):
        best = None
        here = key(expr, graph)
        for rule, cand, saved in candidates(graph, canon, node, expr, done):
            notes = "; ".join(dict.fromkeys(canon.fired))
            k = key(cand, graph)
            k = (k[0] - saved, k[1])
            if k < here and (best is None or k < best[2]):
                best = (rule, cand, k, notes)
        if best is None:
            break
        steps.append(Step(best[0], expr, best[1], best[3]))
        expr = best[1]
    final = compact(expr)
    if final != expr:
        steps.append(Step("collect into one fraction", expr, final))
    expr = final
    uses = sorted(
        {
            atom_name(a)[2:]
            for a in expr.atoms(Indexed, Symbol)
            if (atom_name(a) or "").startswith("g_")
        }
        & {n.name for n in graph.nodes}
    )
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
                    canon.fired.clear()
                    yield f"fold {a.name} into {y.name}", canon(cand), 0
    if not expr.has(Sum):
        canon.fired.clear()
        yield "cancel common factors", canon(sp.cancel(expr)), 0
    for total in expr.atoms(Sum):
        inside = {atom_name(a) for a in total.atoms(Indexed, Symbol)}
        for name in sorted(n for n in inside if n):
            n = by_name.get(name)
            if n is not None and not n.user and n.kind == "pointwise":
                canon.fired.clear()
                cand = canon(expr.xreplace({total: unfold(graph, n, total)}))
                yield f"unfold {name} inside a sum", cand, 0
    for name in present:
        if name and name.startswith("g_") and name[2:] in done:
            adj = done[name[2:]]
            target = adj.node
            if target.kind == "param" or node.kind == "param" or adj.expr.has(Sum):
                continue  # matmul-like adjoints stay named: g_h1 = g_f @ W2
            canon.fired.clear()
            inlined = inline_adjoint(graph, adj, expr)
            saved = size(adj.expr) if readers(graph, target) == {node.name} else 0
            yield f"inline ∂L/∂{target.name}", canon(inlined), saved
            if not inlined.has(Sum):
                yield f"inline ∂L/∂{target.name} and cancel", canon(sp.cancel(inlined)), saved


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
