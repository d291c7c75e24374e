"""Index labels: the free and bound labels of every dim, and helpers that rename them.

A node ``Y`` with dims ``(batch, m)`` has free labels ``(b, i)``; a ``Sum`` binds labels
such as ``i_1``.  :func:`instantiate` writes an expression at other labels without
capturing a bound one; :func:`occurrences` finds a node's entries in an expression;
:func:`inline_nodes` substitutes node definitions into an expression.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import sympy as sp
from sympy import Indexed, Sum, Symbol

if TYPE_CHECKING:
    from derive.graph.nodes import Graph, Node


class Labels:
    """Index labels for every dim: free ones (``i``, ``i2``) and bound ones (``i_1``, ``i_2``).

    Labels avoid every name the spec uses, so printed expressions stay unambiguous.
    """

    POOL = "bijknqrsuvwacefghp"

    def __init__(self, dims: dict[str, sp.Expr], taken: set[str]) -> None:
        self.sizes = dict(dims)
        self.letter: dict[str, str] = {}
        free_letters = [c for c in self.POOL if c not in taken]
        extra = (f"i{n}" for n in itertools.count(1))
        for dim in dims:
            if free_letters:
                self.letter[dim] = free_letters.pop(0)
            else:
                self.letter[dim] = next(e for e in extra if e not in taken)
        self.by_symbol: dict[Symbol, str] = {}

    def _sym(self, name: str, dim: str) -> Symbol:
        s = Symbol(name, integer=True)
        self.by_symbol[s] = dim
        return s

    def free(self, dim: str, occurrence: int = 0) -> Symbol:
        suffix = "" if occurrence == 0 else str(occurrence + 1)
        return self._sym(self.letter[dim] + suffix, dim)

    def bound(self, dim: str, n: int) -> Symbol:
        return self._sym(f"{self.letter[dim]}_{n}", dim)

    def fresh_bound(self, dim: str, used: set) -> Symbol:
        """The first bound label of ``dim`` (``i_1``, ``i_2``, ...) not in ``used``."""
        for k in itertools.count(1):
            cand = self.bound(dim, k)
            if cand not in used:
                return cand
        raise AssertionError  # pragma: no cover

    def dim_of(self, label: Symbol) -> str:
        return self.by_symbol[label]

    def size(self, dim: str | int) -> sp.Expr:
        return sp.Integer(dim) if isinstance(dim, int) else self.sizes[dim]

    def for_dims(self, dims: tuple[str | int, ...]) -> tuple[Symbol, ...]:
        """Own labels of a node with these dims (a repeated dim gets ``i``, ``i2``, ...)."""
        seen: dict[str, int] = {}
        out = []
        for d in dims:
            key = self.int_dim(d) if isinstance(d, int) else d
            out.append(self.free(key, seen.get(key, 0)))
            seen[key] = seen.get(key, 0) + 1
        return tuple(out)

    def int_dim(self, n: int) -> str:
        """Integer sizes in shapes act as anonymous dims named ``_n``."""
        key = f"_{n}"
        if key not in self.sizes:
            self.sizes[key] = sp.Integer(n)
            self.letter[key] = self._next_letter()
        return key

    def _next_letter(self) -> str:
        used = set(self.letter.values())
        for n in itertools.count(1):
            cand = f"a{n}"
            if cand not in used:
                return cand
        raise AssertionError  # pragma: no cover


def bound_labels(e: sp.Expr) -> set:
    """Labels bound by some ``Sum`` inside ``e``."""
    return {lim[0] for s in e.atoms(Sum) for lim in s.limits}


def freshen(e: sp.Expr, graph: Graph, avoid: set) -> sp.Expr:
    """Rename every bound label in ``e`` to one not in ``avoid`` (nor used in ``e``)."""
    used = set(avoid) | e.free_symbols | bound_labels(e)
    subs = {}
    for s in e.atoms(Sum):
        for lim in s.limits:
            j = lim[0]
            if j in subs or j not in avoid:
                continue
            cand = graph.labels.fresh_bound(graph.labels.dim_of(j), used)
            subs[j] = cand
            used.add(cand)
    return _renamebound_labels(e, subs) if subs else e


def _renamebound_labels(e: sp.Expr, subs: dict) -> sp.Expr:
    if e.is_Atom or isinstance(e, Indexed):
        return e
    if isinstance(e, Sum):
        inner = _renamebound_labels(e.function, subs)
        limits = []
        for lim in e.limits:
            j = lim[0]
            if j in subs:
                inner = inner.xreplace({j: subs[j]})
                j = subs[j]
            limits.append((j, *lim[1:]))
        return Sum(inner, *limits)
    return e.func(*[_renamebound_labels(a, subs) for a in e.args])


def instantiate(e: sp.Expr, own: tuple, new: tuple, graph: Graph) -> sp.Expr:
    """``e`` (free labels ``own``) at labels ``new``, bound labels renamed to avoid capture."""
    e = freshen(e, graph, set(new) | set(own))
    return e.xreplace(dict(zip(own, new, strict=True)))


def occurrences(e: sp.Expr, node: Node) -> list[sp.Expr]:
    """Atoms of ``node`` in ``e`` (Indexed entries, or the Symbol of a scalar node)."""
    if not node.labels:
        return [a for a in e.atoms(Symbol) if a.name == node.name and a.is_real]
    return [a for a in e.atoms(Indexed) if a.base.label.name == node.name]


def definition_at(node: Node, labels: tuple, graph: Graph) -> sp.Expr:
    """The defining expression of ``node`` at the given labels."""
    return instantiate(node.expr, node.labels, labels, graph)


def inline_nodes(expr: sp.Expr, graph: Graph, inline: dict[str, sp.Expr]) -> sp.Expr:
    """Write the values named in ``inline`` (name -> definition) into ``expr``, repeatedly."""
    for _ in range(len(graph.nodes)):
        subs = {}
        for n in graph.nodes:
            if n.name in inline:
                for o in occurrences(expr, n):
                    idx = o.indices if isinstance(o, Indexed) else ()
                    subs[o] = instantiate(inline[n.name], n.labels, idx, graph)
        if not subs:
            return expr
        expr = expr.xreplace(subs)
    return expr
