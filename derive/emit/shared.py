"""Differences both passes compute, computed once: ``f - y`` of a squared error.

``L = Σ_k (f - y)²`` in the forward pass and ``g_f = 2 (f - y) g_L`` in the backward
pass read the same difference.  Written in one nested line the spec names no value for
it, so it is named here (``f_minus_y``), computed once in the forward pass and cached,
as a staged spec (``r = f - y``) would have it.
"""

from __future__ import annotations

import sympy as sp
from sympy import Indexed

from derive.graph.nodes import Graph, Node, atom_name

MAX_NAME = 30


def difference_name(term: sp.Add, values: set[str]) -> str | None:
    """``f_minus_y`` for ``f - y``: sums and differences of named values, else None."""
    plus, minus = [], []
    for t in sp.Add.make_args(term):
        if isinstance(t, Indexed) and atom_name(t) in values:
            plus.append(atom_name(t))
        elif isinstance(-t, Indexed) and atom_name(-t) in values:
            minus.append(atom_name(-t))
        else:
            return None
    if not plus or len(plus) + len(minus) < 2:
        return None
    name = "_plus_".join(sorted(plus)) + "".join(f"_minus_{n}" for n in sorted(minus))
    # a cache line reads it twice: long operand names would make that line too long
    return name if len(name) <= MAX_NAME else None


def relabeled(other: sp.Add, term: sp.Add) -> dict | None:
    """The labels of ``other`` for each label of ``term`` when they differ only in labels."""
    ours = {atom_name(a): a for a in term.atoms(Indexed)}
    theirs = {atom_name(a): a for a in other.atoms(Indexed)}
    if set(ours) != set(theirs) or len(ours) != len(term.atoms(Indexed)):
        return None
    mapping: dict = {}
    for name, a in ours.items():
        b = theirs[name]
        for i, j in zip(a.indices, b.indices, strict=True):
            if mapping.setdefault(i, j) != j:
                return None
    forth = {i: sp.Dummy() for i in mapping}
    back = {forth[i]: j for i, j in mapping.items()}
    if term.xreplace(forth).xreplace(back) != other:
        return None
    return mapping


def share_differences(
    graph: Graph,
    forward: dict[str, sp.Expr],
    backward: dict[str, tuple[sp.Expr, Node]],
    taken: set[str],
) -> dict[str, list[Node]]:
    """Name every difference of values that both passes compute; rewrite both to read it.

    ``forward`` maps a computed value to its expression (in order), ``backward`` an adjoint
    to its expression and node; both are updated in place.  Returns the new values' nodes,
    keyed by the forward value they must come before.
    """
    values = {n.name for n in graph.nodes}
    found: dict[str, list[Node]] = {}
    for name in list(backward):
        for term in list(sp.preorder_traversal(backward[name][0])):
            expr, node = backward[name]
            if not isinstance(term, sp.Add) or term.has(sp.Sum) or not expr.has(term):
                continue
            label = difference_name(term, values)
            if label is None or label in taken:
                continue
            indices = {i for a in term.atoms(Indexed) for i in a.indices}
            if not indices <= set(node.labels):
                continue
            labels = tuple(lab for lab in node.labels if lab in indices)
            dims = tuple(node.dims[node.labels.index(lab)] for lab in labels)
            new = Node(label, "pointwise", dims, labels, term)
            first = None
            for v, e in forward.items():
                subs = {}
                for other in sp.preorder_traversal(e):
                    renamed = relabeled(other, term) if isinstance(other, sp.Add) else None
                    if renamed is not None:
                        subs[other] = Indexed(new.base, *(renamed[lab] for lab in labels))
                if subs:
                    forward[v] = e.xreplace(subs)
                    first = first or v
            if first is None:
                continue
            atom = Indexed(new.base, *labels) if labels else sp.Symbol(label)
            for a, (e, n) in backward.items():
                backward[a] = (e.xreplace({term: atom}), n)
            taken.add(label)
            found.setdefault(first, []).append(new)
    return found
