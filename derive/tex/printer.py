"""LaTeX for derive's index expressions, in the notation of a lecture.

:class:`TexPrinter` prints one entry of an index expression: ``W1[j, i]`` as
``W^{(1)}_{ji}``, a bound label ``n_1`` as ``n`` (``n'`` when ``n`` is also free), the
batch label only where examples interact (``Σ_b δ_{bj} x_{bi}``), an adjoint atom
``g_h1[b, j]`` as ``∂L/∂h_j`` (``δ^{(1)}_j`` for a pre-activation), sums without
bounds (``Σ_n``), and every op by its spelling in :data:`OP_LATEX`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp
from sympy import Indexed, Symbol
from sympy.printing.latex import LatexPrinter

from derive.ops.functions import ElementwiseOp
from derive.ops.table import BUILTIN_OPS, DERIVED_FUNCTIONS
from derive.tex.names import Names

OP_LATEX = {
    op.name: op.latex
    for op in (*BUILTIN_OPS.values(), *DERIVED_FUNCTIONS.values())
    if op.latex is not None
}
"""Op name -> its LaTeX spelling, from the op table (ops SymPy already prints well are absent)."""

_BOUND = re.compile(r"^(?P<letter>[A-Za-z]+\d*)_(?P<n>\d+)$")


@dataclass
class Context:
    """What the printer must know about the graph: names, adjoints, batch label, loss."""

    names: Names
    nodes: set[str]
    loss: str = "L"
    order: dict[str, int] = field(default_factory=dict)  # node -> position in the spec
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # sigmoid_z1 -> (op, z1)
    rank: dict[str, int] = field(default_factory=dict)  # atom name -> place among factors
    text_order: dict[str, int] = field(default_factory=dict)  # name -> place in the spec's text
    batch: str = "b"
    deltas: dict[str, str] = field(default_factory=dict)  # node -> symbol of its adjoint

    def symbol(self, name: str, sub: str = "", bold: bool = False, capital: bool = False) -> str:
        """A value's symbol with its index subscript; ``σ(z_j)`` for an op's unnamed output."""
        if name in self.aliases:
            op, arg = self.aliases[name]
            inner = attach(self.names.symbol(arg, bold=bold, capital=capital), sub)
            return rf"{OP_LATEX[op]}\left({inner}\right)"
        return attach(self.names.symbol(name, bold=bold, capital=capital), sub)

    def adjoint_of(self, name: str) -> str | None:
        """``h1`` for the atom name ``g_h1`` when ``h1`` is a node."""
        if name.startswith("g_") and name[2:] in self.nodes:
            return name[2:]
        return None

    def partial(self, name: str, entry: str = "") -> str:
        """``∂L/∂name`` (an entry of it when ``entry`` holds the index subscript)."""
        if name in self.deltas:
            return self.deltas[name] + (f"_{{{entry}}}" if entry else "")
        loss = self.names.symbol(self.loss)
        return rf"\frac{{\partial {loss}}}{{\partial {self.symbol(name, entry)}}}"


def attach(symbol: str, sub: str) -> str:
    """``symbol_{sub}``, braced so an existing subscript does not clash."""
    if not sub:
        return f"{{{symbol}}}" if "^" in symbol else symbol
    if "_" in symbol.replace(r"\_", ""):
        return f"{{{{{symbol}}}_{{{sub}}}}}"
    if "^" in symbol:
        return f"{{{symbol}_{{{sub}}}}}"
    return f"{symbol}_{{{sub}}}"


def free_label_names(expr: sp.Expr, batch: str, per_example: bool = True) -> dict[Symbol, str]:
    """Display names of the free labels in ``expr`` (``j2`` is ``j_2``).

    The free batch label is dropped (``""``) when no example is summed over: the
    expression is then one example's.
    """
    bound = {lim[0] for s in expr.atoms(sp.Sum) for lim in s.limits}
    free = {i for a in expr.atoms(Indexed) for i in a.indices if isinstance(i, Symbol)}
    free = (free | {s for s in expr.free_symbols if s.is_integer}) - bound
    coupled = any(_letter(b) == batch for b in bound)
    out: dict[Symbol, str] = {}
    for s in free:
        if s.name == batch and per_example and not coupled:
            out[s] = ""
        else:
            m = re.fullmatch(r"([A-Za-z]+)(\d+)", s.name)
            out[s] = f"{m[1]}_{{{m[2]}}}" if m else s.name
    return out


def _letter(s: Symbol) -> str:
    m = _BOUND.match(s.name)
    return m["letter"] if m else s.name


class TexPrinter(LatexPrinter):
    """One entry of an index expression as LaTeX (see the module docstring)."""

    printmethod = "_derive_tex"

    def __init__(self, ctx: Context, per_example: bool = True) -> None:
        super().__init__({"mul_symbol": None, "fold_short_frac": False, "long_frac_ratio": 2})
        self.ctx, self.per_example = ctx, per_example
        self.labels: dict[Symbol, str] = {}

    def doprint(self, expr: sp.Expr) -> str:
        self.labels = free_label_names(expr, self.ctx.batch, self.per_example)
        return super().doprint(expr)

    def _bind(self, label: Symbol) -> str:
        """A name for a bound label: its letter, primed until no label in scope has it."""
        name = _letter(label)
        taken = set(self.labels.values())
        while name in taken:
            name += "'"
        return name

    def _subscript(self, indices: tuple) -> str:
        parts = [self.labels.get(i, self._print(i)) if isinstance(i, Symbol) else self._print(i)
                 for i in indices]  # fmt: skip
        parts = [p for p in parts if p]
        plain = all(len(p.rstrip("'")) == 1 for p in parts)
        return ("" if plain else ",").join(parts)

    def _print_Indexed(self, e: Indexed) -> str:
        name = e.base.label.name
        sub = self._subscript(e.indices)
        target = self.ctx.adjoint_of(name)
        if target is not None:
            return self.ctx.partial(target, sub)
        return self.ctx.symbol(name, sub)

    def _print_Symbol(self, e: Symbol, style: str = "plain") -> str:
        if e in self.labels:
            return self.labels[e] or e.name
        target = self.ctx.adjoint_of(e.name)
        if target is not None:
            return self.ctx.partial(target)
        return self.ctx.symbol(e.name)

    def _as_ordered_terms(self, expr: sp.Expr, order: str | None = None) -> list:
        """Terms as the spec writes them: ``x + y``, ``f_n - c``, subtracted terms last."""
        return sorted(expr.args, key=self._term_key)

    def _term_key(self, t: sp.Expr) -> tuple:
        atoms = [a for a in t.atoms(Indexed, Symbol) if not getattr(a, "is_integer", False)]
        names = [a.base.label.name if isinstance(a, Indexed) else a.name for a in atoms]
        first = min((self.ctx.order.get(n.removeprefix("g_"), 99) for n in names), default=99)
        return (t.could_extract_minus_sign(), not t.is_number, first, sp.default_sort_key(t))

    def _print_Mul(self, expr: sp.Mul) -> str:
        """Factors as lectures order them: ``2 ∂L/∂h h (1 - h)``, ``q z``, ``W x``; quotients and
        rational coefficients as SymPy writes them."""
        coeff, rest = expr.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        if not coeff.is_Integer or any(
            isinstance(f, sp.Pow) and f.exp.is_negative for f in factors
        ):
            return super()._print_Mul(expr)
        ordered = sorted(factors, key=self._factor_key)
        parts = []
        for k, f in enumerate(ordered):
            tex = self._print(f)
            if self._needs_mul_brackets(f, first=k == 0, last=k == len(ordered) - 1):
                tex = rf"\left({tex}\right)"
            parts.append(tex)
        lead = {1: "", -1: "- "}.get(int(coeff), f"{int(coeff)} ")
        return lead + " ".join(parts)

    def _factor_key(self, f: sp.Expr) -> tuple:
        """Numbers and sizes, adjoints, named values, parameters, inputs, internal values,
        then sums and differences."""
        if f.is_Add or isinstance(f, sp.Sum) or (isinstance(f, sp.Pow) and f.base.is_Add):
            return (9, 0, sp.default_sort_key(f))
        atoms = [a for a in f.atoms(Indexed, Symbol) if not getattr(a, "is_integer", False)]
        if not atoms:
            return (0, 0, sp.default_sort_key(f))
        names = [a.base.label.name if isinstance(a, Indexed) else a.name for a in atoms]
        if self.ctx.text_order:  # a forward equation: as the spec writes it
            at = min(self.ctx.text_order.get(n, 99) for n in names)
            return (1, at, sp.default_sort_key(f))
        rank = min(self.ctx.rank.get(n, 5) for n in names)
        first = min(self.ctx.order.get(n.removeprefix("g_"), 99) for n in names)
        return (rank, first, sp.default_sort_key(f))

    def _print_Float(self, e: sp.Float) -> str:
        text = f"{float(e):.4g}"
        if "e" in text:
            mant, exp = text.split("e")
            return rf"{mant} \cdot 10^{{{int(exp)}}}"
        return text

    def _print_Sum(self, e: sp.Sum) -> str:
        outer = dict(self.labels)
        names = []
        for lim in e.limits:
            self.labels[lim[0]] = self._bind(lim[0])
            names.append(self.labels[lim[0]])
        function, sign = e.function, ""
        if function.could_extract_minus_sign() and not isinstance(function, sp.Add):
            function, sign = -function, "-"
        body = self._print(function)
        self.labels = outer
        if isinstance(function, sp.Add):
            body = rf"\left({body}\right)"
        return rf"{sign}\sum_{{{''.join(names)}}} {body}"

    def _call(self, name: str, e: sp.Function) -> str:
        return rf"{OP_LATEX[name]}\left({self._print(e.args[0])}\right)"

    def _print_Function(self, e: sp.Function, exp: str | None = None) -> str:
        """An op of derive's own without a method here: its spelling from the op table."""
        if isinstance(e, ElementwiseOp) and type(e).__name__ in OP_LATEX:
            return self._call(type(e).__name__, e)
        return super()._print_Function(e, exp)

    def _print_sigmoid(self, e: sp.Function) -> str:
        return self._call("sigmoid", e)

    def _print_tanh(self, e: sp.Function, exp: str | None = None) -> str:
        inner = self._call("tanh", e)
        return (
            inner
            if exp is None
            else rf"{OP_LATEX['tanh']}^{{{exp}}}\left({self._print(e.args[0])}\right)"
        )

    def _print_softplus(self, e: sp.Function) -> str:
        return self._call("softplus", e)

    def _print_relu(self, e: sp.Function) -> str:
        return self._call("relu", e)

    def _print_leaky_relu(self, e: sp.Function) -> str:
        z, slope = self._print(e.args[0]), self._print(e.args[1])
        return rf"{OP_LATEX['leaky_relu']}_{{{slope}}}\left({z}\right)"

    def _print_sign(self, e: sp.Function) -> str:
        return self._call("sign", e)

    def _print_Piecewise(self, e: sp.Piecewise) -> str:
        (val, cond), *rest = e.args
        if len(rest) == 1 and rest[0][0] == 0 and rest[0][1] == sp.true:
            mask = rf"\mathbb{{1}}\left[{self._print(cond)}\right]"
            return mask if val == 1 else rf"{self.parenthesize(val, 50)}\, {mask}"
        return super()._print_Piecewise(e)


# ----- long rows ------------------------------------------------------------------------------
LINE_WIDTH = 46
"""About how many symbols fit on one line of a slide; longer rows are broken at + and -."""
BREAK = r" \\ &\qquad "

_CMD_WIDTH = re.compile(r"\\(left|right|Bigl|Bigr|mathbf|boldsymbol|mathrm|hat|operatorname|,)")


def visible_width(tex: str) -> float:
    """A rough width of typeset ``tex`` in symbols (a fraction counts both of its parts)."""
    s = _CMD_WIDTH.sub("", tex)
    s = re.sub(r"\\[A-Za-z]+", "x", s)
    s = re.sub(r"[{}^_ ]", "", s)
    return len(s) * 0.8


def break_lines(tex: str, width: float = LINE_WIDTH) -> str:
    """``tex`` broken at its loosest ``+``/``-`` into aligned lines of at most ``width``.

    When the top level has no such sign, the widest ``\\left( ... \\right)`` group is
    written with ``\\Bigl( ... \\Bigr)`` so that it may be broken inside.
    """
    if visible_width(tex) <= width:
        return tex
    cuts = _cuts(tex, 0)
    if not cuts:
        group = _widest_group(tex)
        if group is None:
            return tex
        start, end = group
        tex = tex[:start] + r"\Bigl(" + tex[start + 6 : end] + r"\Bigr)" + tex[end + 7 :]
        cuts = _cuts(tex, 0)
        if not cuts:
            return tex
    pieces, last = [], 0
    for c in cuts:
        pieces.append(tex[last:c])
        last = c
    pieces.append(tex[last:])
    lines, current = [], ""
    for piece in pieces:
        if current and visible_width(current + piece) > width:
            lines.append(current)
            current = piece.lstrip()
        else:
            current += piece
    lines.append(current)
    return BREAK.join(lines)


def _cuts(tex: str, level: int) -> list[int]:
    """Positions of `` + `` and `` - `` outside every group (``\\Bigl(`` opens none)."""
    out, depth, k = [], 0, 0
    while k < len(tex):
        if tex.startswith(r"\left", k) or tex[k] == "{":
            depth += 1
        elif tex.startswith(r"\right", k) or tex[k] == "}":
            depth -= 1
        elif depth == level and k > 0 and tex[k - 1 : k + 2] in (" + ", " - "):
            out.append(k - 1)
        k += 1
    return out


def _widest_group(tex: str) -> tuple[int, int] | None:
    """``(start, end)`` of the widest top-level ``\\left( ... \\right)`` pair."""
    best, depth, open_at = None, 0, None
    k = 0
    while k < len(tex):
        if tex.startswith(r"\left(", k) and depth == 0:
            open_at = k
        if tex.startswith(r"\left", k) or tex[k] == "{":
            depth += 1
        elif tex.startswith(r"\right", k) or tex[k] == "}":
            depth -= 1
            if depth == 0 and open_at is not None and tex.startswith(r"\right)", k):
                if best is None or k - open_at > best[1] - best[0]:
                    best = (open_at, k)
                open_at = None
        k += 1
    return best
