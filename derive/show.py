"""Presenting a derivation: every named value's forward expression, adjoint and steps.

Expressions are printed per example in the spec's own names by
:class:`derive.emit.printers.SpecPrinter`: elementwise ones without indices (``p - t``),
ones with sums in index notation.  The loss seed ``g_L`` is 1 here (the adjoint of
one example's loss); the emitted code scales it by the batch reduction.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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


MAX_FULL_SIZE = 4000
"""Largest staged-and-substituted adjoint (in SymPy operations) that ``full_adjoint`` tidies;
fully substituted adjoints grow exponentially with depth, so bigger ones are not attempted."""


class _OverBudget(Exception):
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`_OverBudget` inside the block after ``seconds`` (main thread, POSIX)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _OverBudget

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def full_adjoint(
    d: Derivation,
    name: str,
    memo: dict[str, sp.Expr | None] | None = None,
    deadline: float | None = None,
) -> sp.Expr | None:
    """The adjoint with every named adjoint it reads substituted in (for display).

    None when it cannot be had in time: past ``deadline`` (a ``time.monotonic()`` value),
    above ``MAX_FULL_SIZE`` operations, or when an adjoint it reads was not had.
    """
    memo = {} if memo is None else memo
    if name in memo:
        return memo[name]
    memo[name] = None
    adj = d.adjoints[name]
    expr = adj.expr
    subs = {}
    for a in expr.atoms(Indexed, Symbol):
        target = gradient_of(atom_name(a))
        if target in d.adjoints:
            inner = full_adjoint(d, target, memo, deadline)
            if inner is None:
                return None
            node = d.adjoints[target].node
            idx = a.indices if isinstance(a, Indexed) else ()
            subs[a] = instantiate(inner, node.labels, idx, d.graph)
    direct = seeded(d, expr.xreplace(subs))
    left = math.inf if deadline is None else deadline - time.monotonic()
    if left <= 0 or size(direct) > MAX_FULL_SIZE:
        return None
    canon = Canon(d.graph, tables_for(d.graph))
    try:
        with _time_limit(left) if math.isfinite(left) else nullcontext():
            full = canon(direct)
            forms = [direct, full, merge_sums(full), merge_sums(full, tidy=sp.factor)]
            memo[name] = min((sp.factor_terms(f) for f in forms), key=size)
    except _OverBudget:
        return None
    return memo[name]


def forward_expr(d: Derivation, node: Node) -> sp.Expr:
    """The node's definition with unnamed intermediate values written out."""
    if node.expr is None:
        return node.atom
    unnamed = {n.name: n.expr for n in d.graph.nodes if not (n.user or n.nograd or n.expr is None)}
    with sp.evaluate(False):  # SymPy's automatic evaluation of tanh(tanh(...)) is exponential
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


def _names(e: sp.Expr) -> set[str]:
    return {atom_name(a) for a in e.atoms(Indexed, Symbol)} - {None}


def visible_steps(d: Derivation, name: str, parsable: bool = True) -> list[dict[str, str]]:
    """The recorded steps of ``name``'s adjoint as a reader follows them.

    Values a built-in op makes inside itself (softmax's ``e``, ``s``, ``c``, batch norm's
    centred input) are not the user's: a run of steps whose results are written in them is
    shown as one line naming the op (a dict with ``rule`` and ``note`` only), unless the
    final staged form itself uses them (``xhat``, ``std``). Steps that change nothing on
    screen are left out.
    """
    g = d.graph
    adj = d.adjoints[name]
    final = _names(adj.expr)
    hidden = {n.name for n in g.nodes if not n.user and n.expr is not None} - final
    hidden |= {adjoint_name(n) for n in hidden}
    macro = {n.name: n.meta.get("macro") for n in g.nodes}
    out: list[dict[str, str]] = []
    run: list[str] = []
    for st, js in shown_steps(d, name, parsable):
        local = st.kind is StepKind.LOCAL_DERIVATIVE
        inside = (_names(st.after) | (_names(st.before) if local else set())) & hidden
        if inside:
            for n in sorted(inside):
                op = macro.get(gradient_of(n) or n)
                if op and op not in run:
                    run.append(op)
            continue
        if run:
            out.append(_through(run))
            run = []
        js["rule"] = " ".join(
            w
            for w in js["rule"].split(" ")
            if w not in hidden and w.removeprefix("∂L/∂") not in hidden
        )
        out.append(js)
    if run:
        out.append(_through(run))
    return out


def _through(ops: list[str]) -> dict[str, str]:
    """A run of steps in values a built-in op computes inside it, as one line (no formula)."""
    what = " and ".join(ops) or "a built-in op"
    return {
        "kind": "through",
        "rule": f"chain rule through the values {what} computes inside",
        "note": "",
    }


def _argument_of(node: Node, consumers: dict) -> str:
    """``the argument of relu in h = relu(x @ W1 + b1)``: the op that reads ``node`` and the
    first named value's equation it sits in."""
    users = consumers[node.name]
    op = users[0].op if users and users[0].op else "an op"
    todo, seen = list(users), set()
    while todo:
        n = todo.pop(0)
        if n.user and "text" in n.meta:
            return f"the argument of {op} in {n.name} = {n.meta['text']}"
        if n.name not in seen:
            seen.add(n.name)
            todo.extend(consumers[n.name])
    return f"the argument of {op}"


def unnamed_arguments(d: Derivation) -> set[str]:
    """Unnamed op arguments (``z_h`` of ``relu(x @ W1 + b1)``) whose adjoint a shown one
    reads: ``g_W1 = Σ g_z_h x`` is explained only if ``g_z_h`` is shown too."""
    graph = d.graph
    staged = {
        n.name: n
        for n in graph.nodes
        if not n.user and n.meta.get("preactivation") and n.name in d.adjoints
    }
    todo = [n.name for n in graph.nodes if n.user and n.name in d.adjoints]
    found: set[str] = set()
    while todo:
        expr = d.adjoints[todo.pop()].expr
        for a in expr.atoms(Indexed, sp.Symbol):
            of = gradient_of(atom_name(a))
            if of in staged and of not in found:
                found.add(of)
                todo.append(of)
    return found


def show_json(
    d: Derivation, parsable: bool = True, *, full: bool = True, budget: float | None = 10.0
) -> dict[str, Any]:
    """Every named value: ``forward``, ``staged`` adjoint (one example's) and ``steps``.

    With ``full`` also ``adjoint``: the staged adjoint with every adjoint it reads written
    out. That form grows exponentially with depth; those not had within ``budget`` seconds
    (or too large to tidy) get an ``adjoint_note`` instead. Strings parse with plain
    ``sympy.sympify`` unless ``parsable`` is False (then they use the ``W2[n_1, j]``
    notation of ``derive show``).
    """
    graph = d.graph
    nodes: dict[str, Any] = {}
    memo: dict[str, sp.Expr | None] = {}
    deadline = None if budget is None else time.monotonic() + budget
    shown = {n.name for n in graph.nodes if n.user} | unnamed_arguments(d)
    consumers = graph.consumers()
    for node in graph.nodes:
        if node.name not in shown:
            continue
        entry: dict[str, Any] = {"kind": node.kind if node.kind in ("input", "param") else "value"}
        if not node.user:
            entry["unnamed"] = _argument_of(node, consumers)
        entry["forward"] = spec_str(forward_expr(d, node), parsable)
        if "text" in node.meta:
            entry["equation"] = node.meta["text"]
        if node is graph.loss:
            entry["adjoint"] = entry["staged"] = "1"
        elif node.name in d.adjoints and node.kind != "input":
            adj = d.adjoints[node.name]
            entry["staged"] = spec_str(seeded(d, adj.expr), parsable)
            if full:
                whole = full_adjoint(d, node.name, memo, deadline)
                if whole is None:
                    entry["adjoint_note"] = (
                        f"not written out: past the {budget:g} s budget or too large; "
                        "the staged form is exact"
                    )
                else:
                    entry["adjoint"] = spec_str(whole, parsable)
            entry["steps"] = visible_steps(d, node.name, parsable)
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


def show_text(d: Derivation, *, full: bool = False, budget: float | None = 10.0) -> str:
    """What ``derive show`` prints: per named value its staged adjoint and the steps taken.

    The loss (adjoint 1) and the inputs (not learned) are left out. With ``full`` each
    adjoint is also written out in the values of the forward pass, within ``budget``.
    """
    data = show_json(d, parsable=False, full=full, budget=budget)
    how = "written out, then staged" if full else "staged as the code computes them"
    lines = [f"{data['name']}: gradients of the per-example loss {data['loss']} ({how})", ""]
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
        if name == data["loss"] or e["kind"] == "input" or "staged" not in e:
            continue
        if e["kind"] == "param":
            lines.append(f"{name}: parameter")
        elif "unnamed" in e:
            lines.append(f"{name}: {e['unnamed']}")
        else:
            lines.append(f"{name} = {e.get('equation', e['forward'])}")
        if full:
            whole = e.get("adjoint", "(" + e.get("adjoint_note", "") + ")")
            lines.append(f"  dL/d{name} = {whole}")
            lines.append(f"    staged: {adjoint_name(name)} = {e['staged']}")
        else:
            lines.append(f"  dL/d{name} = {adjoint_name(name)} = {e['staged']}")
        for st in e.get("steps", []):
            note = f"   [{st['note']}]" if st["note"] else ""
            if "after" not in st:
                lines.append(f"    ({st['rule']})")
            elif st["kind"] == "local_derivative":
                lines.append(f"    {st['rule']}: {st['before']} = {st['after']}")
            else:
                lines.append(f"    {st['rule']}: {st['after']}{note}")
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
