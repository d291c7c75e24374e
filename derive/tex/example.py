"""The worked numeric example and the computational graph, as on a lecture's slides.

``--at x=-2,y=5,z=-4`` evaluates one example (batch of 1) at that point with the project's
concrete evaluator: every named value's forward value, then every gradient in backprop
order, each from its derived expression (``∂f/∂x = ∂f/∂q = -4``).  ``--graph`` draws the
graph in TikZ: an op in a circle per named value, forward values above the edges and
gradients below.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derive.autodiff.adjoint import Derivation, adjoint_name
from derive.errors import SpecError
from derive.graph.nodes import BATCH, Node
from derive.show import forward_expr, seeded
from derive.tex.document import Document
from derive.tex.names import Names
from derive.tex.order import backprop_order, context
from derive.tex.printer import TexPrinter

_ITEM = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$")


def parse_point(d: Derivation, text: str, spec: str | None = None) -> dict[str, float]:
    """``x=-2,y=5,z=-4`` -> ``{"x": -2.0, ...}``: every leaf named once, each value a number."""
    g = d.graph
    leaves = {**g.inputs, **g.params}
    point: dict[str, float] = {}
    for item in text.split(","):
        m = _ITEM.match(item)
        if m is None:
            raise SpecError(f"--at: cannot read '{item.strip()}'", file=spec,
                            hint="write NAME=VALUE pairs, e.g. --at x=-2,y=5")  # fmt: skip
        name, raw = m[1], m[2]
        if name not in leaves:
            raise SpecError(f"--at: '{name}' is not an input or parameter of {g.name}", file=spec,
                            hint=f"the names are: {', '.join(leaves)}")  # fmt: skip
        try:
            value = float(raw)
        except ValueError:
            raise SpecError(f"--at: the value of '{name}' is not a number: '{raw}'", file=spec,
                            hint="write a decimal number such as -2 or 0.5") from None  # fmt: skip
        if not math.isfinite(value):
            raise SpecError(f"--at: the value of '{name}' must be finite", file=spec)
        if name in point:
            raise SpecError(f"--at: '{name}' is given twice", file=spec)
        point[name] = value
    missing = [n for n in leaves if n not in point]
    if missing:
        raise SpecError(f"--at: no value for {', '.join(missing)}", file=spec,
                        hint="give every input and parameter a value")  # fmt: skip
    return point


@dataclass
class Example:
    point: str
    point_math: str
    rows: list[str]
    graph: str = ""
    values: dict[str, float] = field(default_factory=dict)
    grads: dict[str, float] = field(default_factory=dict)


def _num(v: float) -> str:
    text = f"{v:.4g}"
    return text if "e" not in text else f"{float(text):.3e}"


def worked_example(
    d: Derivation, doc: Document, point: dict[str, float] | None, graph: bool, names: Names
) -> Example:
    from derive.tex.verify import Point

    ctx = context(d, names)
    p = TexPrinter(ctx)
    values: dict[str, float] = {}
    grads: dict[str, float] = {}
    rows: list[str] = []
    if point is not None:
        sizes = {dim: 1 for dim in d.graph.labels.sizes}
        sizes[BATCH] = 1
        at = Point(d, np.random.default_rng(0), 1.0, sizes=sizes, given=point)
        for node in d.graph.nodes:
            if node.user and node.expr is not None:
                v = _scalar(at.values[node.name])
                values[node.name] = v
                rows.append(
                    f"{p.doprint(node.atom)} &= {p.doprint(forward_expr(d, node))} = {_num(v)}"
                )
        for name in backprop_order(d):
            adj = d.adjoints[name]
            v = _scalar(at.values[adjoint_name(name)])
            grads[name] = v
            lhs = p.doprint(seeded(d, _atom(adj.node)))
            rows.append(f"{lhs} &= {p.doprint(seeded(d, adj.expr))} = {_num(v)}")
        values.update(point)
    text = ", ".join(f"{k} = {_num(v)}" for k, v in (point or {}).items())
    math_text = ", ".join(
        f"{p.doprint(sp.Symbol(k))} = {_num(v)}" for k, v in (point or {}).items()
    )
    tikz = draw(d, p, values, grads) if graph else ""
    return Example(text or "a symbolic point", math_text, rows, tikz, values, grads)


def _atom(node: Node) -> sp.Expr:
    from derive.autodiff.adjoint import adjoint_atom

    return adjoint_atom(node)


def _scalar(arr: np.ndarray) -> float:
    flat = np.asarray(arr, dtype=float).reshape(-1)
    return float(flat[0])


# ----- the graph ------------------------------------------------------------------------------
def shown_nodes(d: Derivation) -> list[Node]:
    """Leaves on the loss path and named values (unnamed intermediates are folded in)."""
    path = d.graph.on_loss_path()
    return [n for n in d.graph.nodes if n.name in path and (n.user or n.expr is None)]


def sources(node: Node) -> list[Node]:
    """The named values and leaves ``node`` is computed from (through unnamed ones)."""
    out, todo = [], list(node.args)
    while todo:
        a = todo.pop(0)
        if a.user or a.expr is None:
            if a not in out:
                out.append(a)
        elif not a.nograd:
            todo.extend(a.args)
    return out


def op_symbol(node: Node) -> str:
    """What the circle shows: the op the spec called (``σ``, ``softmax``) or the arithmetic."""
    e = node.expr
    call = re.match(r"^\s*(-?)\s*([A-Za-z_]\w*)\(", node.meta.get("text", ""))
    if call and call[2] in ("sum", "mean"):
        return call[1] + (r"\Sigma" if call[2] == "sum" else r"\mathrm{mean}")
    if call:
        from derive.tex.printer import OP_LATEX

        return call[1] + OP_LATEX.get(call[2], rf"\mathrm{{{call[2]}}}".replace("_", r"\_"))
    if node.op:
        from derive.tex.printer import OP_LATEX

        return OP_LATEX.get(node.op, rf"\mathrm{{{node.op}}}")
    if isinstance(e, sp.Add):
        return "+"
    if isinstance(e, sp.Mul):
        return r"\times"
    if isinstance(e, sp.Sum):
        return r"\Sigma"
    return r"\cdot"


def draw(d: Derivation, p: TexPrinter, values: dict, grads: dict) -> str:
    """TikZ: leaves on the left, one circle per named value, values above edges, gradients below."""
    nodes = shown_nodes(d)
    depth: dict[str, int] = {}
    for n in nodes:
        srcs = sources(n) if n.expr is not None else []
        depth[n.name] = 1 + max((depth[s.name] for s in srcs if s.name in depth), default=-1)
    ys = _heights(nodes)
    lines = [r"\begin{tikzpicture}[x=2.8cm,y=1.8cm,>=stealth,"
             r"op/.style={circle,draw,minimum size=7mm,inner sep=1pt},"
             r"leaf/.style={inner sep=2pt}]"]  # fmt: skip
    for n in nodes:
        style, label = ("leaf", _symbol(p, n)) if n.expr is None else ("op", op_symbol(n))
        lines.append(
            rf"\node[{style}] ({_id(n)}) at ({depth[n.name]},{ys[n.name]:.2f}) {{${label}$}};"
        )
    for n in nodes:
        if n.expr is None:
            continue
        for s in sources(n):
            if s.name in depth:
                lines.append(_edge(_id(s), _id(n), s, p, values, grads))
    loss = d.graph.loss
    last = max(depth.values()) + 1
    lines.append(rf"\coordinate (out) at ({last - 0.1},{ys[loss.name]:.2f});")
    lines.append(_edge(_id(loss), "out", loss, p, values, {**grads, loss.name: 1.0}, arrow=True))
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def _heights(nodes: list[Node]) -> dict[str, float]:
    """Leaves stacked in the order they are first used; a value level with its sources."""
    ys: dict[str, float] = {}
    leaves = [n for n in nodes if n.expr is None]
    order = {}
    for n in nodes:
        for s in sources(n) if n.expr is not None else []:
            order.setdefault(s.name, len(order))
    leaves.sort(key=lambda n: order.get(n.name, len(order)))
    for k, n in enumerate(leaves):
        ys[n.name] = -float(k)
    for n in nodes:
        if n.expr is not None:
            srcs = [ys[s.name] for s in sources(n) if s.name in ys]
            ys[n.name] = sum(srcs) / len(srcs) if srcs else 0.0
    return ys


def _symbol(p: TexPrinter, n: Node) -> str:
    """A value's symbol in matrix notation: bold when it is a vector or matrix."""
    array = any(lab.name != p.ctx.batch for lab in n.labels)
    return p.ctx.symbol(n.name, bold=array)


def _edge(a: str, b: str, src: Node, p: TexPrinter, values: dict, grads: dict, arrow=True) -> str:
    name = _symbol(p, src)
    above = f"${name} = {_num(values[src.name])}$" if src.name in values else f"${name}$"
    below = rf"\color{{red!70!black}}${_num(grads[src.name])}$" if src.name in grads else ""
    above = rf"\color{{green!40!black}}{above}" if src.name in values else above
    parts = [rf"\draw[->] ({a}) -- ({b}) node[pos=0.35,above,sloped,font=\scriptsize] {{{above}}}"]
    if below:
        parts.append(rf"node[pos=0.35,below,sloped,font=\scriptsize] {{{below}}}")
    return " ".join(parts) + ";"


def _id(n: Node) -> str:
    return "n-" + re.sub(r"[^A-Za-z0-9]", "-", n.name)
