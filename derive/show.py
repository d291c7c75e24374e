"""Presenting a derivation: every named value's forward expression, adjoint and steps.

Expressions are printed per example in the spec's own names by
:class:`derive.emit.printers.SpecPrinter`: elementwise ones without indices (``p - t``),
ones with sums in index notation.  The loss seed ``g_L`` is 1 here (the adjoint of
one example's loss); the emitted code scales it by the batch reduction.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy import Indexed, Sum, Symbol

from derive.autodiff.adjoint import Derivation, adjoint_atom, adjoint_name
from derive.autodiff.canon import Canon, merge_sums, size, tables_for
from derive.autodiff.steps import Step, StepKind
from derive.emit.printers import SpecPrinter
from derive.graph.dropout import MASK_ROLE, mask_expectation
from derive.graph.labels import inline_nodes, instantiate
from derive.graph.nodes import Node, atom_name
from derive.lang.naming import gradient_of


def spec_str(e: sp.Expr, parsable: bool = False) -> str:
    """Plain names when nothing needs an index (``p - t``), else index notation.

    With ``parsable`` the text rebuilds the expression under plain ``sympy.sympify``.
    """
    plain = not e.has(Sum) and _consistent(e)
    return SpecPrinter(plain, parsable).doprint(e)


def _consistent(e: sp.Expr) -> bool:
    """True when every entry is indexed by the same labels or a suffix-free broadcast."""
    idx = {a.indices for a in e.atoms(Indexed)}
    return len(idx) <= 1


def seeded(d: Derivation, e: sp.Expr) -> sp.Expr:
    """``e`` with the loss seed set to 1 (one example's loss)."""
    loss = d.graph.loss
    seed = adjoint_atom(loss)
    subs = {a: sp.S.One for a in e.atoms(Indexed, Symbol) if atom_name(a) == atom_name(seed)}
    return e.xreplace(subs)


def full_adjoint(d: Derivation, name: str, memo: dict[str, sp.Expr] | None = None) -> sp.Expr:
    """The adjoint with every named adjoint it reads substituted in (for display)."""
    memo = {} if memo is None else memo
    if name in memo:
        return memo[name]
    adj = d.adjoints[name]
    expr = adj.expr
    subs = {}
    for a in expr.atoms(Indexed, Symbol):
        target = gradient_of(atom_name(a))
        if target in d.adjoints:
            node = d.adjoints[target].node
            idx = a.indices if isinstance(a, Indexed) else ()
            subs[a] = instantiate(full_adjoint(d, target, memo), node.labels, idx, d.graph)
    canon = Canon(d.graph, tables_for(d.graph))
    direct = seeded(d, expr.xreplace(subs))
    full = canon(direct)
    forms = [direct, full, merge_sums(full), merge_sums(full, tidy=sp.factor)]
    memo[name] = min((sp.factor_terms(f) for f in forms), key=size)
    return memo[name]


def forward_expr(d: Derivation, node: Node) -> sp.Expr:
    """The node's definition with unnamed intermediate values written out."""
    if node.expr is None:
        return node.atom
    unnamed = {n.name: n.expr for n in d.graph.nodes if not (n.user or n.nograd or n.expr is None)}
    return inline_nodes(node.expr, d.graph, unnamed)


def step_json(d: Derivation, s: Step, parsable: bool = True) -> dict[str, str]:
    """A step as strings: ``kind`` (the :class:`StepKind` name in lower case), ``rule``
    (its title), ``before``, ``after`` (one example's) and ``note`` (table entries used)."""
    return {
        "kind": s.kind.name.lower(),
        "rule": s.title,
        "before": spec_str(seeded(d, s.before), parsable),
        "after": spec_str(seeded(d, s.after), parsable),
        "note": s.note,
    }


def shown_steps(d: Derivation, name: str, parsable: bool = True) -> list[tuple[Step, dict]]:
    """The steps of ``name``'s adjoint that change something on screen, with their strings."""
    out = []
    for s in d.adjoints[name].steps:
        j = step_json(d, s, parsable)
        if j["before"] != j["after"] or j["note"]:
            out.append((s, j))
    return out


def show_json(d: Derivation, parsable: bool = True) -> dict[str, Any]:
    """Every named value: ``forward``, ``adjoint`` (one example's), ``staged`` and ``steps``.

    Strings parse with plain ``sympy.sympify`` unless ``parsable`` is False (then they
    use the ``W2[n_1, j]`` notation of ``derive show``).
    """
    graph = d.graph
    nodes: dict[str, Any] = {}
    memo: dict[str, sp.Expr] = {}
    for node in graph.nodes:
        if not node.user:
            continue
        entry: dict[str, Any] = {"kind": node.kind if node.kind in ("input", "param") else "value"}
        entry["forward"] = spec_str(forward_expr(d, node), parsable)
        if "text" in node.meta:
            entry["equation"] = node.meta["text"]
        if node is graph.loss:
            entry["adjoint"] = "1"
        elif node.name in d.adjoints:
            adj = d.adjoints[node.name]
            entry["adjoint"] = spec_str(full_adjoint(d, node.name, memo), parsable)
            entry["staged"] = spec_str(seeded(d, adj.expr), parsable)
            entry["steps"] = [j for _, j in shown_steps(d, node.name, parsable)]
        if node.meta.get("role") == MASK_ROLE:
            entry["dropout"] = dropout_fact(graph, node)
        nodes[node.name] = entry
    return {
        "name": graph.name,
        "loss": graph.loss.name,
        "reduction": graph.reduction,
        "batch_size": graph.batch_size.name,
        "nodes": nodes,
    }


def show_text(d: Derivation) -> str:
    data = show_json(d, parsable=False)
    lines = [f"{data['name']}: adjoints of the per-example loss {data['loss']}", ""]
    rank = {"value": 0, "param": 1, "input": 2}
    ordered = sorted(data["nodes"].items(), key=lambda kv: rank[kv[1]["kind"]])
    for name, e in ordered:
        if "dropout" in e:
            f = e["dropout"]
            lines.append(f"{name}: dropout mask of {f['of']} (drop p = {f['drop']})")
            lines.append(
                f"  E[{name}] = {f['outcomes']} = {f['expectation']}, so {f['consequence']}"
            )
            lines.append("")
        if e["kind"] == "input" and "adjoint" not in e:
            continue
        lines.append(f"{name} = {e.get('equation', e['forward'])}")
        if "adjoint" in e:
            lines.append(f"  dL/d{name} = {e['adjoint']}")
        if e.get("staged") and e["staged"] != e["adjoint"]:
            lines.append(f"    staged: {adjoint_name(name)} = {e['staged']}")
        for step, s in shown_steps(d, name, parsable=False) if "steps" in e else []:
            note = f"   [{s['note']}]" if s["note"] else ""
            if step.kind is StepKind.LOCAL_DERIVATIVE:
                lines.append(f"    {s['rule']}: {s['before']} = {s['after']}")
            else:
                lines.append(f"    {s['rule']}: {s['after']}{note}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def dropout_fact(graph, node) -> dict[str, Any]:
    """E[mask] over its two outcomes, worked out by SymPy, and what it gives: E[h'] = h."""
    p = sp.Symbol("p", positive=True)
    outcomes, value = mask_expectation(p)
    user = next((c.name for c in graph.consumers()[node.name] if c.user), None)
    of = node.meta.get("of") or "h"
    return {
        "of": of,
        "drop": node.meta["drop"],
        "outcomes": sp.sstr(outcomes, order="none").replace("*", "·"),
        "expectation": str(value),
        "consequence": f"E[{user or of + chr(39)}] = {of}" if value == 1 else "E[h'] != h",
    }
