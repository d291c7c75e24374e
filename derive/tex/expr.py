"""``derive tex --expr``: a scalar expression, as in quizzes, derived through named intermediates.

The expression is parsed by derive's own safe parser (never ``sympify``).  Every activation's
argument that is not a plain name becomes ``z`` (``z_2``, ...) and every activation ``a``
(``a_2``, ...), as a lecture writes "let ``z = w_1 x_1 + w_2 x_2``, let ``a = σ(z)``"; the
result is named ``f``.  Every name is a scalar.  The engine derives this staged graph like
any spec; the document shows the forward definitions, each gradient on the way to the
``--wrt`` variables, then the result: the chain rule through the intermediates, the
gradient in them, written out in the inputs, and with the ``--given`` values substituted.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace

import sympy as sp

from derive.autodiff.adjoint import Derivation
from derive.autodiff.reverse import derive
from derive.errors import SpecError
from derive.graph.builder import Builder
from derive.graph.labels import inline_nodes
from derive.graph.nodes import atom_name
from derive.lang import expr as P
from derive.show import full_adjoint
from derive.tex.document import Block, Display, Document, Options, Row, Walker
from derive.tex.order import backprop_order
from derive.tex.printer import break_lines

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "exp")
_ITEM = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$")


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def parse_given(text: str | None, free: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in _names(text):
        m = _ITEM.match(item)
        if m is None:
            raise SpecError(f"--given: cannot read '{item}'", hint="write NAME=VALUE, e.g. y=1")
        if m[1] not in free:
            raise SpecError(
                f"--given: '{m[1]}' is not in the expression", hint=f"names: {', '.join(free)}"
            )
        try:
            value = float(m[2])
        except ValueError:
            raise SpecError(f"--given: the value of '{m[1]}' is not a number: '{m[2]}'") from None
        if not math.isfinite(value):
            raise SpecError(f"--given: the value of '{m[1]}' must be finite")
        out[m[1]] = value
    return out


def staged(tree: P.Expr, taken: set[str]) -> tuple[list[tuple[str, P.Expr]], P.Expr]:
    """``(name, definition)`` for each intermediate, innermost first, and the rest."""
    lets: list[tuple[str, P.Expr]] = []
    seen: dict[str, str] = {}

    def fresh(stem: str) -> str:
        k = 1
        while (name := stem if k == 1 else f"{stem}{k}") in taken:
            k += 1
        taken.add(name)
        return name

    def name_of(e: P.Expr, stem: str) -> P.Expr:
        key = P.unparse(e)
        if key not in seen:
            seen[key] = fresh(stem)
            lets.append((seen[key], e))
        return P.Name(seen[key], e.col)

    def visit(e: P.Expr) -> P.Expr:
        if isinstance(e, P.BinOp):
            return P.BinOp(e.op, visit(e.left), visit(e.right), e.col)
        if isinstance(e, P.Neg):
            return P.Neg(visit(e.operand), e.col)
        if isinstance(e, P.Call):
            args = tuple(visit(a) for a in e.args)
            if e.func in ACTIVATIONS and args and not isinstance(args[0], P.Name | P.Num):
                args = (name_of(args[0], "z"), *args[1:])
            call = P.Call(e.func, args, e.kwargs, e.col)
            return name_of(call, "a") if e.func in ACTIVATIONS else call
        return e

    return lets, visit(tree)


def expr_derivation(text: str, wrt: str | None, given: str | None) -> tuple[Derivation, list, dict]:
    """The staged scalar graph of ``text``, derived; the ``--wrt`` names; the givens."""
    try:
        tree = P.parse_expression(text)
    except P.ExprSyntaxError as err:
        hint = "write e.g. --expr 'x*y + tanh(x)'"
        raise SpecError(f"--expr does not parse: {err}", hint=hint) from None
    free = list(dict.fromkeys(n.id for n in P.names_in(tree)))
    if not free:
        raise SpecError("--expr has no variable to differentiate in")
    targets = _names(wrt) or free
    unknown = [t for t in targets if t not in free]
    if unknown:
        raise SpecError(
            f"--wrt: {', '.join(unknown)} not in the expression", hint=f"names: {', '.join(free)}"
        )
    values = parse_given(given, free)
    lets, rest = staged(tree, set(free))
    out = "f" if "f" not in free else "ell"
    b = Builder("expression", {}, taken=[*free, out])
    env = {n: b.param(n, []) for n in free}
    for name, definition in lets:
        env[name] = b.let(name, b.from_ast(definition, env))
    b.let(out, b.from_ast(rest, env))
    return derive(b.loss(out, reduction="sum", per_example=False)), targets, values


def expr_document(text: str, wrt: str | None, given: str | None, opt: Options) -> Document:
    d, targets, values = expr_derivation(text, wrt, given)
    need = set(targets)
    for name in reversed(backprop_order(d)):
        if name in need:
            need.update(_read(d, name))
    walker = Walker(d, replace(opt, notation="index"))
    names = [n for n in backprop_order(d) if n in need]
    blocks = [walker.block(n) for n in names]
    blocks += [result_block(walker, d, t, values) for t in targets]
    doc = Document(
        "expression",
        f"The derivative of {text}",
        d.graph.loss.name,
        "sum",
        walker.forward(),
        blocks,
    )
    doc.extra["given"] = values
    doc.extra["derivation"] = d
    return doc


def result_block(w: Walker, d: Derivation, target: str, values: dict[str, float]) -> Block:
    """``∂f/∂w``: the chain through the intermediates, in them, in the inputs, given values."""
    node = d.adjoints[target].node
    full = full_adjoint(d, target)
    rows = []
    chain = _chain(d, target)
    if chain:
        parts = "".join(
            rf"\frac{{\partial {w.tex(a.atom)}}}{{\partial {w.tex(b.atom)}}}"
            for a, b in itertools.pairwise(chain)
        )
        rows.append(Row("chain", target, full, parts, "chain rule"))
    rows.append(Row("result", target, full, break_lines(w.tex(full)), "the steps above"))
    inputs = {n.name: n.expr for n in d.graph.nodes if n.expr is not None and n is not d.graph.loss}
    written = inline_nodes(full, d.graph, inputs)
    if written != full:
        rows.append(Row("result", target, written, break_lines(w.tex(written)), "definitions"))
    if values:
        subs = {n.atom: sp.Float(v) if v != int(v) else sp.Integer(int(v)) for n in
                d.graph.params.values() if (v := values.get(n.name)) is not None}  # fmt: skip
        at = sp.simplify(written.xreplace(subs))
        given = ", ".join(f"{w.tex(sp.Symbol(k))} = {v:g}" for k, v in values.items())
        rows.append(Row("given", target, at, break_lines(w.tex(at)), f"${given}$"))
    lhs_expr = _atom(node)
    disp = Display(w.tex(lhs_expr), rows, boxed=True, lhs_expr=lhs_expr)
    return Block(target, rf"\text{{Result: }} {w.title(target)}", "", [disp])


def _read(d: Derivation, name: str) -> set[str]:
    """Named adjoints any of ``name``'s displayed steps reads (``g_a`` before it is inlined)."""
    out = set()
    for step in d.adjoints[name].steps:
        for a in step.after.atoms(sp.Symbol, sp.Indexed):
            n = atom_name(a) or ""
            if n.startswith("g_") and n[2:] in d.adjoints:
                out.add(n[2:])
    return out


def _chain(d: Derivation, target: str) -> list:
    """The named values from the output down to ``target`` when they form a single path."""
    from derive.tex.example import shown_nodes, sources

    named = shown_nodes(d)
    readers = {n.name: [m for m in named if m.expr is not None and n in sources(m)] for n in named}
    node = next(n for n in named if n.name == target)
    back = [node]
    while node is not d.graph.loss:
        if len(readers[node.name]) != 1:
            return []
        node = readers[node.name][0]
        back.append(node)
    return list(reversed(back)) if len(back) >= 3 else []


def _atom(node):
    from derive.autodiff.adjoint import adjoint_atom

    return adjoint_atom(node)
