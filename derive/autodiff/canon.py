"""The canonical form of index expressions, with the facts it used.

``Sum`` is only a container here: it is never ``doit()``-ed (SymPy 1.14 fails on
batch norm that way).  The canonical form is derive's own: numerator-only
distribution, sum linearity, independent factors pulled out, ``Σ 1 = n``, bound
labels renamed canonically, and lookups in two tables kept as data:

* constraints the spec declares (``Σ_k t[b, k] = 1`` for one-hot targets);
* definitions of reductions (``Σ_b z[b, c] = m μ[c]``, ``Σ_k e[b, k] = s[b]``).

No ``simplify()``, no ``solve()``.  The rewriting on top of this form lives in
:mod:`derive.autodiff.rewrite`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy import Add, Indexed, Mul, Pow, S, Sum, Symbol

from derive.autodiff.steps import Reason, TableEntry
from derive.graph.labels import bound_labels
from derive.graph.nodes import Graph, atom_name, split_sum

MAX_TERMS = 64
"""Largest product distribute() multiplies out."""


def distribute(e: sp.Expr) -> sp.Expr:
    """Expand products over sums in numerators only (``sp.expand`` would expand denominators)."""
    if e.is_Atom or isinstance(e, Indexed | Sum):
        return e
    if isinstance(e, Add):
        return Add(*[distribute(a) for a in e.args])
    if isinstance(e, Mul):
        m = Mul(*[distribute(a) for a in e.args])
        if not isinstance(m, Mul):
            return m if m == e else distribute(m)
        count = 1
        for f in m.args:
            count *= len(f.args) if isinstance(f, Add) else 1
        if count > MAX_TERMS:  # (1 - h²)(1 - g²)... of a deep chain: keep it factored
            return m
        terms = [S.One]
        for f in m.args:
            if isinstance(f, Add):
                terms = [t * a for t in terms for a in f.args]
            else:
                terms = [t * f for t in terms]
        return Add(*terms)
    if (
        isinstance(e, Pow)
        and e.exp.is_Integer
        and e.exp > 1
        and isinstance(e.base, Add)
        and len(e.base.args) ** int(e.exp) <= MAX_TERMS
    ):
        base_terms = Add.make_args(distribute(e.base))
        terms = [S.One]
        for _ in range(int(e.exp)):
            terms = [t * a for t in terms for a in base_terms]
        return Add(*terms)
    return e


def merge_sums(e: sp.Expr, tidy=sp.factor_terms) -> sp.Expr:
    """``Σ_j a + Σ_j b`` → ``Σ_j (a + b)`` with the body factored, recursively.

    Sums over the same limits (after canonical relabelling) become one, as written by hand:
    ``Σ x yhat - Σ x y`` → ``Σ x (yhat - y)``.  ``tidy`` rewrites each merged body
    (``factor_terms`` for code; ``factor`` for display, where cost matters less).
    """
    if e.is_Atom or isinstance(e, Indexed):
        return e
    if isinstance(e, Sum):
        return Sum(merge_sums(tidy(e.function), tidy), *e.limits)
    args = [merge_sums(a, tidy) for a in e.args]
    if not isinstance(e, Add):
        return e.func(*args)
    groups: dict[tuple, list[sp.Expr]] = {}
    rest = []
    for term in args:
        coeff, sums = term.as_independent(Sum, as_Add=False)
        if isinstance(sums, Sum) and not coeff.has(Indexed):  # moving b[i] inside costs a loop
            groups.setdefault(sums.limits, []).append(coeff * sums.function)
        else:
            rest.append(term)
    merged = [
        Sum(tidy(Add(*bodies)), *limits) if len(bodies) > 1 else Sum(bodies[0], *limits)
        for limits, bodies in groups.items()
    ]
    return Add(*rest, *merged)


def size(e: sp.Expr) -> int:
    return int(sp.count_ops(e, visual=False)) + len(e.atoms(Indexed))


@dataclass
class Tables:
    """Identities usable by the canonicaliser: ``Σ_j body = value`` (see :class:`TableEntry`)."""

    entries: list[TableEntry] = field(default_factory=list)

    def lookup(self, body: sp.Expr, j: Symbol) -> tuple[sp.Expr, TableEntry] | None:
        """``Σ_j body`` from the first entry that matches it up to labels, and that entry."""
        for entry in self.entries:
            sigma = _unify(entry.body, entry.label, entry.free, body, j)
            if sigma is not None:
                return entry.value.xreplace(sigma), entry
        return None


def _unify(pattern: sp.Expr, pj: Symbol, free: tuple, body: sp.Expr, j: Symbol) -> dict | None:
    """Label substitution making ``pattern`` (bound ``pj``) equal ``body`` (bound ``j``)."""
    pat_atoms = sorted(pattern.atoms(Indexed), key=str)
    body_atoms = sorted(body.atoms(Indexed), key=str)
    if not pat_atoms or len(pat_atoms) != len(body_atoms):
        return None
    sigma: dict = {pj: j}
    for pa in pat_atoms:
        match = [ba for ba in body_atoms if ba.base == pa.base]
        if len(match) != 1:
            return None
        for pl, bl in zip(pa.indices, match[0].indices, strict=True):
            if sigma.setdefault(pl, bl) != bl:
                return None
    if pattern.xreplace(sigma) != body:
        return None
    return {f: sigma[f] for f in free if f in sigma}


class Canon:
    """Canonical form of index expressions for one graph (labels, sizes, tables)."""

    def __init__(self, graph: Graph, tables: Tables) -> None:
        self.g, self.tables = graph, tables

    def size_of(self, label: Symbol) -> sp.Expr:
        return self.g.labels.size(self.g.labels.dim_of(label))

    def __call__(self, e: sp.Expr) -> sp.Expr:
        return self.canonical(e)[0]

    def canonical(self, e: sp.Expr) -> tuple[sp.Expr, tuple[TableEntry, ...]]:
        """The canonical form of ``e`` and the table entries it used, in order of first use."""
        used: list[TableEntry] = []
        out = distribute(self._walk(e, used))
        return out, tuple(dict.fromkeys(used))

    def _walk(self, e: sp.Expr, used: list[TableEntry]) -> sp.Expr:
        if e.is_Atom or isinstance(e, Indexed):
            return e
        if isinstance(e, Sum):
            body = self._walk(e.function, used)
            for lim in reversed(e.limits):
                body = self.sum(body, lim[0], used)
            return body
        return e.func(*[self._walk(a, used) for a in e.args])

    def sum(self, body: sp.Expr, j: Symbol, used: list[TableEntry]) -> sp.Expr:
        """``Σ_j body``: linearity, pull-out, ``Σ 1 = n``, table lookup, canonical label."""
        n = self.size_of(j)
        groups: dict[sp.Expr, list[sp.Expr]] = {}
        out = S.Zero
        for term in Add.make_args(distribute(body)):
            ind, dep = term.as_independent(j, as_Add=False)
            if dep == 1:
                out += ind * n
            else:
                groups.setdefault(dep, []).append(ind)
        for dep, inds in groups.items():
            out += Add(*inds) * self._single(dep, j, n, used)
        return out

    def _single(self, dep: sp.Expr, j: Symbol, n: sp.Expr, used: list[TableEntry]) -> sp.Expr:
        found = self.tables.lookup(dep, j)
        if found is not None:
            used.append(found[1])
            return self._walk(found[0], used)
        nj = self.bound_label(j, dep)
        return Sum(dep.xreplace({j: nj}), (nj, 1, n))

    def bound_label(self, j: Symbol, body: sp.Expr) -> Symbol:
        """The first bound label of ``j``'s dim not used in ``body`` (other than ``j``)."""
        used = {s for s in body.free_symbols | bound_labels(body) if s != j}
        return self.g.labels.fresh_bound(self.g.labels.dim_of(j), used)


def internal_atoms(e: sp.Expr, graph: Graph) -> int:
    internal = {n.name for n in graph.nodes if not n.user}
    return sum(1 for a in e.atoms(Indexed, Symbol) if atom_name(a) in internal)


def tables_for(graph: Graph) -> Tables:
    """Constraints from input kinds and definitions of every single-operand reduction."""
    t = Tables()
    for name, kind in graph.input_kinds.items():
        node = graph.inputs[name]
        if kind in ("one_hot", "probability") and len(node.labels) >= 2:
            dim = graph.labels.dim_of(node.labels[-1])
            j = graph.labels.bound(dim, 99)
            body = node.base[(*node.labels[:-1], j)]
            reason = Reason.ONE_HOT_TARGET if kind == "one_hot" else Reason.PROBABILITY_TARGET
            size = graph.labels.size(dim)
            t.entries.append(TableEntry(body, j, node.labels[:-1], S.One, size, name, reason))
    for node in graph.nodes:
        if node.kind != "contraction" or node.nograd:
            continue
        coeff, body, limits = split_sum(node.expr)
        if len(limits) != 1 or len(body.atoms(Indexed)) != 1:
            continue
        j, _, size = limits[0]
        value = node.atom / coeff
        t.entries.append(
            TableEntry(body, j, node.labels, value, size, node.name, Reason.DEFINITION)
        )
    return t
