"""The order backprop runs, and the LaTeX printer's view of the graph.

:func:`backprop_order` lists the named adjoints as backprop computes them (values first,
each parameter as soon as the adjoints it reads are known); :func:`context` gives the
printer its names, ranks and the ``δ`` of every pre-activation (``δ^{(1)}`` for ``W1``).
"""

from __future__ import annotations

import re
from dataclasses import replace

from derive.autodiff.adjoint import Derivation
from derive.graph.nodes import BATCH, Node
from derive.tex.names import Names
from derive.tex.printer import OP_LATEX, Context


def context(d: Derivation, names: Names) -> Context:
    """The printer's view of the graph; pre-activations get ``δ`` (``δ^{(1)}`` for ``W1``)."""
    g = d.graph
    ctx = Context(
        names, {n.name for n in g.nodes}, loss=g.loss.name, batch=g.labels.letter.get(BATCH, "b")
    )
    ctx.order = {n.name: k for k, n in enumerate(g.nodes)}
    kinds = {"param": 2, "input": 4}
    for n in g.nodes:
        ctx.rank[n.name] = kinds.get(n.kind, 3 if n.user else 5)
        ctx.rank["g_" + n.name] = 1
    for n in g.nodes:
        if n.meta.get("macro") == "batchnorm" and re.fullmatch(r"var\d*", n.name):
            ctx.names = replace(ctx.names, overrides={n.name: r"\sigma^{2}", **ctx.names.overrides})
        if (
            not n.user
            and n.op in OP_LATEX
            and len(n.args) == 1
            and n.name == f"{n.op}_{n.args[0].name}"
        ):
            ctx.aliases[n.name] = (n.op, n.args[0].name)
    consumers = g.consumers()
    for node in g.nodes:
        if node.name in d.adjoints and _preactivation(node, consumers):
            layer = _layer(node)
            ctx.deltas[node.name] = r"\delta" + (f"^{{({layer})}}" if layer else "")
    if len(set(ctx.deltas.values())) != len(ctx.deltas):
        ctx.deltas = {}  # ambiguous: keep ∂L/∂z
    return ctx


def _preactivation(node: Node, consumers: dict) -> bool:
    """An affine layer's output (``W x + b``) that feeds an activation."""
    users = consumers[node.name]
    affine = any(
        a.kind == "contraction" and any(w.kind == "param" for w in a.args)
        for a in [node, *_through_internal(node)]
        if a is node or not a.user
    )
    return affine and len(users) == 1 and users[0].op in ("sigmoid", "tanh", "relu", "leaky_relu")


def _through_internal(node: Node) -> list[Node]:
    out, todo = [], list(node.args)
    while todo:
        a = todo.pop()
        out.append(a)
        if not a.user and a.kind not in ("input", "param"):
            todo.extend(a.args)
    return out


def _layer(node: Node) -> str:
    for a in _through_internal(node):
        m = re.search(r"(\d+)$", a.name)
        if a.kind == "param" and m:
            return m[1]
    return ""


def backprop_order(d: Derivation) -> list[str]:
    """Values in the order backprop computes them; a parameter right after what it reads."""
    done = {d.graph.loss.name}
    order: list[str] = []
    rest = [n for n in d.adjoints if d.adjoints[n].node.kind != "param"]
    params = [n for n in d.adjoints if d.adjoints[n].node.kind == "param"]
    for name in rest:
        order.append(name)
        done.add(name)
        for p in list(params):
            if set(d.adjoints[p].uses) <= done:
                order.append(p)
                params.remove(p)
    return order + params
