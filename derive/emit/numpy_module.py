"""Emission: a derivation in, a NumPy module out (through ``templates/numpy_module.py.j2``).

The template holds the module's shape; every expression reaches it already
printed by :class:`derive.emit.printers.NumPyIndexPrinter`.  Forward values are
printed in stable forms (:func:`stable_log`), values the backward pass reads
are cached, and internal values used once are inlined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, Symbol

from derive.autodiff.adjoint import Derivation, adjoint_atom, adjoint_name
from derive.emit.inplace import accumulate
from derive.emit.lines import Line
from derive.emit.printers import NumPyIndexPrinter, unwrapped
from derive.emit.running import state_shapes, switch_lines
from derive.emit.seed import split_seed
from derive.emit.shared import share_differences
from derive.emit.templating import py_literal, render_template
from derive.graph.dropout import MASK_ROLE
from derive.graph.labels import definition_at, inline_nodes
from derive.graph.nodes import BATCH, Graph, Node, atom_name
from derive.lang.naming import API, MODULE_NAMES
from derive.ops.functions import sigmoid, softplus
from derive.ops.table import BUILTIN_OPS


@dataclass
class Module:
    """Everything the template needs, already printed."""

    graph: Graph
    forward: list[Line] = field(default_factory=list)
    backward: list[Line] = field(default_factory=list)
    seeded: list[Line] = field(default_factory=list)  # the lines reading g_loss, as given
    unit_seed: list[Line] = field(default_factory=list)  # the same with the default weight
    cache: list[str] = field(default_factory=list)
    helpers: set[str] = field(default_factory=set)  # ops whose NumPy helper the code calls
    sizes_forward: list[Line] = field(default_factory=list)
    sizes_backward: list[Line] = field(default_factory=list)
    forward_reads: list[str] = field(default_factory=list)
    backward_reads: list[str] = field(default_factory=list)
    cache_reads: list[str] = field(default_factory=list)
    dropout: dict[str, tuple[str | None, float]] = field(default_factory=dict)
    batchnorm: dict[str, tuple] = field(default_factory=dict)  # input -> running stats' dims

    @property
    def helper_sources(self) -> list[str]:
        """Source of each module-level helper the code calls, in the op table's order."""
        return [
            op.numpy_helper
            for op in BUILTIN_OPS.values()
            if op.name in self.helpers and op.numpy_helper
        ]


def stable_log(arg: sp.Expr, graph: Graph) -> sp.Expr | None:
    """``log(arg)`` without forming ``arg`` when its definition allows (log-sum-exp style).

    Rules: ``log(u/v) = log u - log v``, ``log(exp(w)) = w``,
    ``log(σ(w)) = -softplus(-w)``, ``log(1 - σ(w)) = -softplus(w)``.
    """
    by_name = {n.name: n for n in graph.nodes}
    node = by_name.get(atom_name(arg) or "")
    if node is None or node.kind != "pointwise" or node.expr is None:
        if isinstance(arg, sp.Add) and len(arg.args) == 2 and 1 in arg.args:
            other = arg - 1
            inner = by_name.get(atom_name(-other) or "")
            if inner is not None and isinstance(inner.expr, sigmoid):
                w = definition_at(inner, (-other).indices, graph).args[0]
                return -softplus(w)
        return None
    body = definition_at(node, arg.indices if isinstance(arg, Indexed) else (), graph)
    if isinstance(body, sp.exp):
        return body.args[0]
    if isinstance(body, sigmoid):
        return -softplus(-body.args[0])
    num, den = sp.fraction(body)
    if den != 1:
        parts = [stable_log(num, graph), stable_log(den, graph)]
        return (parts[0] if parts[0] is not None else sp.log(num)) - (
            parts[1] if parts[1] is not None else sp.log(den)
        )
    return None


def stabilize(expr: sp.Expr, graph: Graph) -> sp.Expr:
    """Apply :func:`stable_log` to every log in ``expr`` where it fires."""
    subs = {}
    for lg in expr.atoms(sp.log):
        s = stable_log(lg.args[0], graph)
        if s is not None:
            subs[lg] = s
    return expr.xreplace(subs) if subs else expr


def print_expr(expr: sp.Expr, labels: tuple, mod: Module) -> str:
    """NumPy code for ``expr`` as an array with axes ``labels``; records helpers it needs."""
    p = NumPyIndexPrinter(labels)
    text = p.doprint(expr)
    mod.helpers |= p.helpers
    return unwrapped(text)


def full_shape(code: str, expr: sp.Expr, node: Node, graph: Graph) -> str:
    """``code`` broadcast to the node's whole shape when ``expr`` is constant along an axis.

    ``mean(f)`` has the adjoint ``g_L/k`` for every entry of ``f``: without this the
    array would have shape ``(m, 1)`` instead of ``(m, k)``.
    """
    missing = [lab for lab in node.labels if lab not in expr.free_symbols]
    if not missing:
        return code
    sizes = [graph.batch_size.name if d == BATCH else str(d) for d in node.dims]
    shape = "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"
    if not expr.atoms(Indexed, Symbol) - set(graph.labels.sizes.values()):
        # a constant (z = 0 * x) takes the dtype of the data, not NumPy's int or float64
        leaf = next(iter(graph.inputs or graph.params))
        return f"np.full({shape}, {code}, dtype={leaf}.dtype)"
    return f"np.broadcast_to({code}, {shape}).copy()"


def shape_text(node: Node, graph: Graph) -> str:
    dims = [graph.batch_size.name if d == BATCH else str(d) for d in node.dims]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def build_module(d: Derivation) -> Module:
    graph = d.graph
    mod = Module(graph)
    needed = d.needed()
    back_exprs = [d.adjoints[n].expr for n in needed]
    read = {atom_name(a) for e in back_exprs for a in e.atoms(Indexed, Symbol)} - {None}
    stable = {n.name: stabilize(n.expr, graph) for n in graph.nodes if n.expr is not None}
    live = live_nodes(graph, stable, read)
    consumers = graph.consumers()
    uses = {n.name: 0 for n in graph.nodes}
    for name, e in stable.items():
        if name in live:
            for a in e.atoms(Indexed, Symbol):
                if atom_name(a) in uses and atom_name(a) != name:
                    uses[atom_name(a)] += 1
    inline = {
        n.name
        for n in graph.nodes
        if not n.user
        and n.kind in ("pointwise", "contraction")
        and n.name not in read
        and uses[n.name] == 1
        and all(c.kind == "pointwise" for c in consumers[n.name])
    }
    fwd = {
        n.name: inline_nodes(stable[n.name], graph, {k: stable[k] for k in inline})
        for n in graph.nodes
        if n.expr is not None and n.name not in inline and n.name in live
    }
    order, exprs = shared_sums(d, needed)
    back = {name: (exprs[name], d.adjoints[name].node) for name in order}
    taken = {n.name for n in graph.nodes} | {adjoint_name(n.name) for n in graph.nodes}
    taken |= (
        set(MODULE_NAMES) | set(graph.constants) | {str(s) for s in graph.labels.sizes.values()}
    )
    extra = share_differences(graph, fwd, back, taken)
    by_name = {n.name: n for n in graph.nodes}

    def printer(e: sp.Expr, labels: tuple) -> str:
        return print_expr(e, labels, mod)

    for name, expr in fwd.items():
        for new in extra.get(name, []):
            code = print_expr(new.expr, new.labels, mod)
            mod.forward.append(Line(new.name, code, "", shape_text(new, graph)))
        n = by_name[name]
        if n.kind in ("max", "argmax"):
            p = NumPyIndexPrinter(n.labels)
            code = p.reduction(n.expr, list(n.labels), how=n.kind)
        else:
            shape = shape_text(n, graph)
            accumulated = accumulate(expr, n, shape, printer, frozenset(graph.inputs))
            if accumulated:
                mod.forward += accumulated
                continue
            code = full_shape(print_expr(expr, n.labels, mod), expr, n, graph)
        mod.forward.append(Line(n.name, code, "", shape_text(n, graph)))
    mod.cache = [n.name for n in graph.nodes if n.expr is not None and (n.user or n.name in read)]
    mod.cache += [new.name for news in extra.values() for new in news]
    for name in order:
        adj = d.adjoints[name]
        node = adj.node
        target = adjoint_name(name)
        expr = back[name][0]
        math = f"{target}{_idx(node)} = {adj.expr}"
        if expr.has(sp.Piecewise):
            expr = hoist_sums(expr, target, node, graph, mod)
        code = full_shape(print_expr(expr, node.labels, mod), expr, node, graph)
        mod.backward.append(Line(target, code, math, shape_text(node, graph), expr, node))
    split_seed(mod, d, lambda e, n: full_shape(print_expr(e, n.labels, mod), e, n, graph))
    for name in graph.params:
        if name not in d.adjoints:
            why = f"{name} does not affect the loss {graph.loss.name}"
            mod.backward.append(Line(adjoint_name(name), f"np.zeros_like({name})", why))
    mod.sizes_forward = size_lines(graph, [ln.code for ln in mod.forward])
    back_codes = [ln.code for ln in mod.backward + mod.unit_seed + mod.seeded]
    mod.sizes_backward = size_lines(graph, back_codes, tuple(mod.cache))
    fwd_words = _words([ln.code for ln in mod.forward + mod.sizes_forward])
    back_lines = mod.backward + mod.unit_seed + mod.seeded + mod.sizes_backward
    back_words = _words([ln.code for ln in back_lines])
    leaves = [*graph.params, *graph.inputs]
    mod.forward_reads = [n for n in leaves if n in fwd_words]
    mod.backward_reads = [n for n in leaves if n in back_words]
    mod.cache_reads = [n for n in mod.cache if n in back_words]
    mod.dropout = {
        n: (node.meta.get("of"), node.meta["drop"])
        for n, node in graph.inputs.items()
        if node.meta.get("role") == MASK_ROLE
    }
    mod.batchnorm = state_shapes(graph)
    if mod.batchnorm:
        mod.forward = switch_lines(mod.forward, graph)
    return mod


def shared_sums(d: Derivation, needed: list[str]) -> tuple[list[str], dict[str, sp.Expr]]:
    """Order and expressions of the backward lines, every batch sum computed once.

    A parameter gradient that is a sum an earlier adjoint also needs (``Σ_b g_y`` is both
    ``g_beta`` and a term of batch norm's ``g_z``) moves up to just before its first
    reader, which then reads it by name.
    """
    order = list(needed)
    exprs = {n: d.adjoints[n].expr for n in needed}
    sums = {n: e.atoms(sp.Sum) for n, e in exprs.items()}
    for name in [n for n in needed if n in d.graph.params]:
        total = exprs[name]
        if not isinstance(total, sp.Sum):
            continue
        at = order.index(name)
        readers = [q for q in order[:at] if total in sums[q]]
        if not readers:
            continue
        first = order.index(readers[0])
        if any(order.index(u) >= first for u in d.adjoints[name].uses if u in order):
            continue
        atom = adjoint_atom(d.adjoints[name].node)
        for q in readers:
            exprs[q] = exprs[q].xreplace({total: atom})
        order.remove(name)
        order.insert(first, name)
    return order, exprs


def _words(codes: list[str]) -> set[str]:
    """The names the code reads; string literals (einsum subscripts such as "ab,ab->b") are
    not names."""
    text = re.sub(r'"[^"]*"', '""', " ".join(codes))
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))


def hoist_sums(expr: sp.Expr, target: str, node: Node, graph: Graph, mod: Module) -> sp.Expr:
    """Compute the sums in ``expr`` first, so ``np.where`` picks between arrays, not products.

    ``np.where(z >= 0, up, 0.1 * up)`` keeps the dtype of ``up``; multiplying by
    ``np.where(z >= 0, 1, 0.1)`` would promote float32 to float64.
    """
    subs = {}
    for k, total in enumerate(sorted(expr.atoms(sp.Sum), key=str)):
        name = f"{target}_in" if k == 0 else f"{target}_in{k + 1}"
        labels = tuple(lab for lab in node.labels if lab in total.free_symbols)
        code = print_expr(total, labels, mod)
        mod.backward.append(Line(name, code, "", "", total))  # no node: a part of one
        subs[total] = sp.Indexed(sp.IndexedBase(name), *labels) if labels else sp.Symbol(name)
    return sp.piecewise_fold(expr.xreplace(subs))


def live_nodes(graph: Graph, stable: dict[str, sp.Expr], read: set) -> set[str]:
    """Values the module computes: every named value, what backward reads, and their inputs."""
    live = {n.name for n in graph.nodes if n.user} | set(read)
    for n in reversed(graph.nodes):
        if n.name in live and n.name in stable:
            live |= {atom_name(a) for a in stable[n.name].atoms(Indexed, Symbol)} - {None}
    return live


def _idx(node: Node) -> str:
    return f"[{', '.join(map(str, node.labels))}]" if node.labels else ""


def size_lines(graph: Graph, codes: list[str], cached: tuple[str, ...] = ()) -> list[Line]:
    """``m = len(x)`` for every size symbol the code uses, from an array it reads anyway.

    An array the code already reads (a leaf or a cached value) is preferred to one it
    would read only for its shape; the batch size is ``len`` of a batch-first array.
    """
    words = _words(codes)
    out = []
    leaves = [*graph.inputs.values(), *graph.params.values()]
    read = [n for n in graph.nodes if n.name in words and (n.expr is None or n.name in cached)]
    for dim, sym in graph.labels.sizes.items():
        if not isinstance(sym, Symbol) or sym.name not in words:
            continue
        for leaf in [*read, *leaves]:
            if dim in leaf.dims:
                axis = leaf.dims.index(dim)
                code = f"len({leaf.name})" if axis == 0 else f"{leaf.name}.shape[{axis}]"
                out.append(Line(sym.name, code))
                break
    return out


def render(d: Derivation, spec_path: str | None = None) -> str:
    """The generated module's source text (deterministic for a given spec)."""
    mod = build_module(d)
    graph = d.graph
    inits = {n: init_code(graph, n) for n in graph.params}
    ctx = {
        "graph": graph,
        "mod": mod,
        "spec_path": spec_path or graph.file or "<python>",
        "dims": {k: v for k, v in graph.dims.items()},
        "inputs": {
            n: (tuple(x for x in node.dims[1:]), graph.input_kinds[n])
            for n, node in graph.inputs.items()
        },
        "params": {n: tuple(node.dims) for n, node in graph.params.items()},
        "state_inits": {
            n: py_literal(tuple(_SizeRef(d) for d in dims)) for n, dims in mod.batchnorm.items()
        },
        "inits": inits,
        "uses_rng": any("rng" in c for c in inits.values()),
        "uses_glorot": any("glorot" in c for c in inits.values()),
        "param_dims": tuple(
            dict.fromkeys(d for n in graph.params.values() for d in n.dims if isinstance(d, str))
        ),
        "seed_dims": graph.loss.dims,
        "batch": graph.batch_size.name,
        "first_input": next(iter(graph.inputs)),
    }
    return render_template("numpy_module.py.j2", api=API, **ctx)


def init_code(graph: Graph, name: str) -> str:
    """How ``init_params`` fills one parameter: its spec ``init``, else by its role.

    A scale (batch norm's gamma) starts at ones, so the layer first passes x-hat through;
    a matrix gets Glorot, anything else (biases, shifts) zeros.
    """
    node = graph.params[name]
    init = graph.param_init.get(name)
    shape = py_literal(tuple(_SizeRef(d) for d in node.dims))
    if init is None and node.meta.get("role") == "scale":
        init = "ones"
    if init is None:
        init = "glorot" if len(node.dims) >= 2 else "zeros"
    if isinstance(init, int | float):
        return f"np.full({shape}, {float(init)!r}, dtype=dtype)"
    if init in ("zeros", "ones"):
        return f"np.{init}({shape}, dtype=dtype)"
    if init == "normal":
        return f"rng.normal(0.0, 1.0, {shape}).astype(dtype)"
    return f"_glorot(rng, {shape}, dtype)"


class _SizeRef:
    """A dim in an emitted shape: ``sizes["d"]`` for a named dim, the number otherwise."""

    def __init__(self, dim: str | int) -> None:
        self.dim = dim

    def __repr__(self) -> str:
        return f'sizes["{self.dim}"]' if isinstance(self.dim, str) else str(self.dim)
