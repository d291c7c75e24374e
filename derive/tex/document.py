"""The document: a derivation's recorded steps, walked in the order backprop runs.

For every named adjoint ``∂L/∂v`` (values first, each parameter as soon as the
adjoints it reads are known) a :class:`Block` holds

* the local derivatives met on the way, each from the op's definition through
  ``sympy.diff`` to its form in the op's output (``e^{-z}/(1+e^{-z})^2 = h(1-h)``);
* the chain of equalities the engine went through: the chain rule, then every
  accepted rewrite, each :class:`Row` naming the fact it used;
* the values the rows mention that the spec does not name (``e``, ``s`` inside softmax).

Every row keeps the SymPy expression it displays (an entry of an index expression,
one example's loss: the loss seed is 1), so that consecutive rows can be compared
numerically (:mod:`derive.tex.verify`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed

from derive.autodiff.adjoint import Derivation
from derive.autodiff.steps import StepKind
from derive.graph.nodes import Node, atom_name, split_sum
from derive.ops.functions import written_out
from derive.show import forward_expr, seeded
from derive.tex.facts import combined_facts, fact_tex
from derive.tex.matrix import Translator
from derive.tex.names import Names
from derive.tex.order import backprop_order, context
from derive.tex.printer import Context, TexPrinter, break_lines


@dataclass
class Options:
    """What the user chose: detail, notation, names."""

    steps: str = "full"  # "full" | "brief"
    notation: str = "matrix"  # "matrix" | "index"
    names: Names = field(default_factory=Names)
    node: str | None = None


@dataclass
class Row:
    """One displayed expression: ``= latex`` reached from the row above by ``fact``."""

    kind: str
    node: str
    expr: sp.Expr
    latex: str
    fact: str = ""
    matrix: object = None  # the derive.tex.matrix.M this row displays, in matrix notation


@dataclass
class Display:
    """A chain of equalities ``lhs = rows[0] = rows[1] = ...``."""

    lhs: str
    rows: list[Row]
    boxed: bool = False
    lhs_expr: sp.Expr | None = None  # the SymPy form of the left-hand side, when it has one
    notation: str = "index"


@dataclass
class Block:
    """Everything shown for one node's adjoint."""

    node: str
    title: str
    equation: str  # the node's forward equation, as LaTeX
    displays: list[Display]
    where: list[str] = field(default_factory=list)
    param: bool = False


@dataclass
class Document:
    name: str
    description: str
    loss: str
    reduction: str
    forward: list[tuple[str, str]]
    blocks: list[Block]
    extra: dict = field(default_factory=dict)
    batch_size: str = "m"  # the batch size's symbol, as LaTeX


class Walker:
    """Builds the :class:`Document` of one derivation."""

    def __init__(self, d: Derivation, options: Options) -> None:
        self.d, self.opt = d, options
        self.ctx = context(d, options.names)
        self.printer = TexPrinter(self.ctx)
        batched = {n.name for n in d.graph.nodes if n.batched}
        self.matrix = Translator(self.ctx, batched, lambda e, env: env["scalar"](e, env["ex"]))
        self.by_name = {n.name: n for n in d.graph.nodes}

    def tex(self, e: sp.Expr) -> str:
        return self.printer.doprint(e)

    def row_tex(self, e: sp.Expr) -> str:
        """A displayed row: long ones broken into aligned lines."""
        return break_lines(self.tex(e))

    def document(self) -> Document:
        """A block per named value and parameter; adjoints the engine names for values the spec
        does not (``log(p)`` inside the loss) are shown in the next block, where they are used."""
        g = self.d.graph
        blocks, pending = [], []
        for name in backprop_order(self.d):
            node = self.d.adjoints[name].node
            if not (node.user or node.kind in ("param", "input")):
                pending.append(name)
                continue
            if self.opt.node is None or name == self.opt.node:
                block = self.block(name)
                before = [self.block(n) for n in pending]
                block.displays = [x for b in before for x in b.displays] + block.displays
                block.where = list(
                    dict.fromkeys([w for b in before for w in b.where] + block.where)
                )
                blocks.append(block)
            pending = []
        size = self.ctx.symbol(g.batch_size.name)
        return Document(
            g.name, g.description, g.loss.name, g.reduction, self.forward(), blocks, batch_size=size
        )

    def forward(self) -> list[tuple[str, str]]:
        """Each named value's equation, factors in the order the spec writes them."""
        out = []
        for node in self.d.graph.nodes:
            if node.user and node.expr is not None:
                rhs = forward_expr(self.d, node)
                text = node.meta.get("text", "")
                self.ctx.text_order = {m.group(): m.start() for m in re.finditer(r"\w+", text)}
                self.printer.per_example = not _coupled_expr(rhs, self.ctx.batch)
                out.append((self.tex(node.atom), self.tex(rhs)))
        self.ctx.text_order = {}
        self.printer.per_example = True
        return out

    def block(self, name: str) -> Block:
        """One node's displays; where examples interact (batch norm) every entry keeps its
        example index ``b``."""
        self.printer.per_example = not self._coupled(name)
        try:
            return self._block(name)
        finally:
            self.printer.per_example = True

    def _coupled(self, name: str) -> bool:
        batch = self.ctx.batch
        exprs = [s.after for s in self.d.adjoints[name].steps]
        exprs += [s.after for n, s in self.d.internal.items() if n == name]
        return any(
            lim[0].name.split("_")[0] == batch
            for e in exprs
            for total in e.atoms(sp.Sum)
            for lim in total.limits
        ) and any(lab.name == batch for lab in self.d.adjoints[name].node.labels)

    def _block(self, name: str) -> Block:
        adj = self.d.adjoints[name]
        node = adj.node
        displays = self.locals(node)
        rows: list[Row] = []
        for step in adj.steps:
            if step.kind is StepKind.LOCAL_DERIVATIVE:
                continue
            expr = seeded(self.d, step.after)
            if rows and expr == rows[-1].expr:
                continue
            kind = "chain" if step.kind is StepKind.CHAIN_RULE else "rewrite"
            fact = fact_tex(step, self.ctx.symbol, self.tex)
            rows.append(Row(kind, name, expr, self.row_tex(expr), fact))
        rows = _without_round_trips(rows)
        staged = self.staged(name)
        if staged:
            displays += staged
            first = self.d.internal[name].after
            facts = combined_facts(rows[1:])
            rows = [
                Row("chain", name, first, self.row_tex(first), "chain rule, staged"),
                Row(rows[-1].kind, name, rows[-1].expr, rows[-1].latex, facts),
            ]
        if self.opt.steps == "brief" and len(rows) > 2:
            rows = [
                rows[0],
                Row("rewrite", name, rows[-1].expr, rows[-1].latex, combined_facts(rows[1:])),
            ]
        atom = seeded(self.d, _adjoint(node))
        lhs = self.tex(atom)
        param = node.kind == "param"
        index = Display(lhs, rows, boxed=param, lhs_expr=atom)
        if self.opt.notation == "matrix":
            displays += self.in_matrix(node, index)
        else:
            displays.append(index)
        return Block(
            node=name,
            title=self.title(name),
            equation=self._equation(node) if node.expr is not None else "",
            displays=displays,
            where=self.where(displays),
            param=node.kind == "param",
        )

    def staged(self, name: str) -> list[Display]:
        """The adjoints of the unnamed values between ``name`` and the named ones that read it
        (batch norm's ``∂L/∂x̂, ∂L/∂σ², ∂L/∂μ``), each from the recorded staged chain rule."""
        if name not in self.d.internal:
            return []
        inside, todo = set(), [name]
        consumers = self.d.graph.consumers()
        while todo:
            for c in consumers[todo.pop()]:
                if c.name in self.d.internal and c.name not in inside and not c.user:
                    inside.add(c.name)
                    todo.append(c.name)
        if not any(self.by_name[n].meta.get("macro") for n in inside):
            return []  # only plumbing (a matmul's output): the chain rule says it all
        out = []
        for n, step in self.d.internal.items():
            if n in inside:
                expr = seeded(self.d, step.after)
                lhs = seeded(self.d, step.before)
                row = Row("staged", n, expr, self.row_tex(expr))
                out.append(Display(self.tex(lhs), [row], lhs_expr=lhs))
        return out

    def in_matrix(self, node: Node, index: Display) -> list[Display]:
        """The chain in matrix notation when every row translates; else index rows, then the
        result in matrix notation.  A parameter shows both, and the batch (row convention)."""
        target = node.labels
        rows = []
        for row in index.rows:
            m = self.matrix.translate(row.expr, target)
            tex = None if m is None else break_lines(m.tex)
            rows.append(None if m is None else Row("matrix", row.node, row.expr, tex, row.fact, m))
        array = any(not self.matrix._is_free_batch(lab) for lab in target)
        lhs = self.matrix._symbol(node.name, array, False, True)
        param = node.kind == "param"
        out = []
        if all(rows) and not param:
            out.append(Display(lhs, rows, index.boxed, index.lhs_expr, "matrix"))
            return out
        index.boxed = False
        out.append(index)
        final = rows[-1]
        if final is None:
            index.boxed = param
            return out
        final = Row("matrix", final.node, final.expr, final.latex, "matrix form", final.matrix)
        shown = [final]
        batch = self.matrix.translate(final.expr, target, batch_axis=True)
        if final.latex == index.rows[-1].latex:
            index.boxed = param
            return out
        if batch is not None and batch.tex != final.latex and batch.axes:
            shown.append(
                Row("matrix", final.node, final.expr, batch.tex, "rows are examples", batch)
            )
        out.append(Display(lhs, shown, param, index.lhs_expr, "matrix"))
        return out

    def title(self, name: str) -> str:
        plain = Context(self.ctx.names, self.ctx.nodes, loss=self.ctx.loss, batch=self.ctx.batch)
        plain.aliases = self.ctx.aliases
        if name in self.ctx.deltas:
            return f"{self.ctx.deltas[name]} = {plain.partial(name)}"
        return plain.partial(name)

    def definition(self, n: Node) -> str:
        """``n``'s defining equation (a ``max`` reduction written as one)."""
        if n.op == "max":
            _, body, limits = split_sum(n.expr)
            total = self.tex(sp.Sum(body, *limits))
            return f"{self.tex(n.atom)} = " + total.replace(r"\sum", r"\max", 1)
        return f"{self.tex(n.atom)} = {self.tex(n.expr)}"

    def _equation(self, node: Node) -> str:
        return f"{self.tex(node.atom)} = {self.tex(forward_expr(self.d, node))}"

    def locals(self, node: Node) -> list[Display]:
        """Each local derivative once: definition, ``sympy.diff``, the output form."""
        out, seen = [], set()
        for step in self.d.adjoints[node.name].steps:
            if step.kind is not StepKind.LOCAL_DERIVATIVE or (step.before, step.after) in seen:
                continue
            seen.add((step.before, step.after))
            y = self.by_name.get(step.node)
            arg = _argument(y, step.before, node.name) if y is not None else None
            if y is None or arg is None:
                continue
            body = written_out(y.expr)
            lhs_expr = sp.Derivative(body, arg)
            lhs = rf"\frac{{\partial {self.tex(y.atom)}}}{{\partial {self.tex(arg)}}}"
            rows = []
            if body != y.atom and isinstance(y.expr, sp.Function):
                rows.append(Row("definition", node.name, lhs_expr, self._diff_tex(body, arg)))
            rows.append(
                Row("local", node.name, step.before, self.tex(step.before), "differentiate")
            )
            named, value = self.tex(y.atom), self.tex(y.expr)
            # an unnamed op value prints as its call (σ(z)): its definition says nothing
            fact = f"${named} = {value}$" if named != value else "in the op's output"
            rows.append(Row("local", node.name, step.after, self.tex(step.after), fact))
            out.append(Display(lhs, rows, lhs_expr=lhs_expr))
        return out

    def _diff_tex(self, body: sp.Expr, arg: sp.Expr) -> str:
        return rf"\frac{{\partial}}{{\partial {self.tex(arg)}}} {self.tex(body)}"

    def where(self, displays: list[Display]) -> list[str]:
        """Definitions of the unnamed values the rows mention (``e_n = e^{f_n - c}``)."""
        out, seen = [], set()
        for disp in displays:
            for row in disp.rows:
                for a in sorted(row.expr.atoms(Indexed, sp.Symbol), key=str):
                    n = self.by_name.get(atom_name(a) or "")
                    if n is None or n.user or n.expr is None or n.name in seen:
                        continue
                    seen.add(n.name)
                    if self.tex(n.atom) != self.tex(n.expr):  # σ(z) = σ(z) says nothing
                        out.append(self.definition(n))
        return out


def _coupled_expr(e: sp.Expr, batch: str) -> bool:
    """Whether ``e`` sums over the examples (a batch statistic)."""
    return any(
        lim[0].name.split("_")[0] == batch for total in e.atoms(sp.Sum) for lim in total.limits
    )


def _without_round_trips(rows: list[Row]) -> list[Row]:
    """Drop detours that come back to an expression already shown (expand, then collect)."""
    out: list[Row] = []
    for row in rows:
        back = next((k for k, r in enumerate(out) if r.expr == row.expr), None)
        if back is not None:
            del out[back + 1 :]
            continue
        out.append(row)
    return out


def _adjoint(node: Node) -> sp.Expr:
    from derive.autodiff.adjoint import adjoint_atom

    return adjoint_atom(node)


def _argument(y: Node, before: sp.Expr, prefer: str) -> sp.Expr | None:
    """The entry of ``y``'s argument the local derivative is taken in (not a stopped one)."""
    names = {a.name for a in y.args if not a.nograd}
    found = [a for a in sorted(before.atoms(Indexed, sp.Symbol), key=str) if atom_name(a) in names]
    preferred = [a for a in found if atom_name(a) == prefer]
    return (preferred or found or [None])[0]
