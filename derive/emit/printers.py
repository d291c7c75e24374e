"""SymPy printers: index expressions to NumPy source, and to the spec's own notation.

:class:`NumPyIndexPrinter` prints an index expression over a target label order,
aligning every entry to it by NumPy broadcasting (``s[:, None]``, ``W.T``); a sum
becomes a matmul when its labels allow (``g_z1.T @ x``), else an einsum or ``.sum``.
:class:`SpecPrinter` prints per-example expressions in the spec's own names.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from functools import lru_cache

import sympy as sp
from sympy import Indexed, Symbol
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from derive.emit.contractions import align, einsum, matmul, stacked_matmul, tensordot
from derive.emit.layout import operands
from derive.ops.functions import OP_OF_FUNCTION, written_out
from derive.ops.table import DERIVED_FUNCTIONS

_SIMPLE = re.compile(r"-?[A-Za-z_][A-Za-z0-9_.]*|-?\d+(\.\d+)?(e-?\d+)?")


class NumPyIndexPrinter(StrPrinter):
    """Prints an index expression as NumPy code for an array with axes ``target``."""

    printmethod = "_derive_numpy"  # bypass Indexed._sympystr

    def __init__(self, target: Sequence[sp.Expr]) -> None:
        super().__init__({"order": "none"})
        self.target = list(target)
        self.helpers: set[str] = set()  # ops whose module-level helper the code calls

    def _as_ordered_terms(self, expr: sp.Expr, order: str | None = None) -> list:
        """Sums (matmuls) first, subtracted terms last, as people write ``x @ W + b``."""
        return sorted(
            expr.args,
            key=lambda t: (t.could_extract_minus_sign(), not t.has(sp.Sum), sp.default_sort_key(t)),
        )

    def _print(self, expr: sp.Basic, **kwargs: object) -> str:
        # a number written with functions (log(2), exp(1), sigmoid(0)) becomes a Python
        # float: NumPy's float64 scalars would promote float32 arrays
        if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Rational:
            return repr(float(written_out(expr).evalf()))
        return super()._print(expr, **kwargs)

    def _print_Mul(self, expr: sp.Mul) -> str:
        """``a * b / (c * d)``, spaced as ``ruff format`` writes it."""
        prec = PRECEDENCE["Mul"]
        coeff, _ = expr.as_coeff_Mul()
        sign = ""
        if coeff.is_number and coeff < 0:
            expr, sign = -expr, "-"
        numer: list[sp.Expr] = []
        denom: list[sp.Expr] = []
        for f in expr.as_ordered_factors():
            if f.is_Rational and f.q != 1:
                if f.p != 1:
                    numer.append(sp.Integer(f.p))
                denom.append(sp.Integer(f.q))
            elif f.is_Pow and f.exp.is_Rational and f.exp.is_negative:
                denom.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp, evaluate=False))
            else:
                numer.append(f)
        grouped = self._small_first(numer, denom) or self._scalars_first(numer, denom)
        if grouped is not None:
            return sign + grouped
        top = " * ".join(self.parenthesize(f, prec, strict=False) for f in numer) or "1"
        if not denom:
            return sign + top
        bottom = " * ".join(self.parenthesize(f, prec, strict=False) for f in denom)
        if len(denom) > 1:
            bottom = f"({bottom})"
        return f"{sign}{top} / {bottom}"

    def _small_first(self, numer: list[sp.Expr], denom: list[sp.Expr]) -> str | None:
        """``big * (gamma / (m * std))``: factors on fewer axes combined before the full array.

        NumPy evaluates left to right, so ``X * gamma / (m * std)`` makes two passes over
        ``X``'s (m, n) entries; grouping the (n,) factors makes one.
        """
        if len(self.target) < 2:
            return None
        full = set(self.target)

        def small(f: sp.Expr) -> bool:
            return not (f.free_symbols & full) >= full

        big = [f for f in numer if not small(f)]
        few = [f for f in numer if small(f)]
        if len(few) + len(denom) < 2 or not big or any(not small(f) for f in denom):
            return None
        if not any(f.has(Indexed) for f in denom):
            return None  # only a division by an array (batch norm's std) is worth moving
        prec = PRECEDENCE["Mul"]
        left = " * ".join(self.parenthesize(f, prec, strict=False) for f in big)
        if not few:
            bottom = " * ".join(self.parenthesize(f, prec, strict=False) for f in denom)
            return f"{left} / ({bottom})"
        inner = self._print(sp.Mul(*few) / sp.Mul(*denom))
        return f"{left} * ({inner})"

    def _scalars_first(self, numer: list[sp.Expr], denom: list[sp.Expr]) -> str | None:
        """``2 / m * (f - y)``, not ``2 * (f - y) / m``: the scalars meet before the array.

        NumPy evaluates left to right: the second spelling makes two passes over the array.
        """
        if not self.target or not denom or any(f.has(Indexed) for f in denom):
            return None
        scalars = [f for f in numer if not f.has(Indexed)]
        arrays = [f for f in numer if f.has(Indexed)]
        if not scalars or not arrays:
            return None
        prec = PRECEDENCE["Mul"]
        top = " * ".join(self.parenthesize(f, prec, strict=False) for f in scalars)
        bottom = " * ".join(self.parenthesize(f, prec, strict=False) for f in denom)
        rest = " * ".join(self.parenthesize(f, prec, strict=False) for f in arrays)
        return f"{top} / {bottom if len(denom) == 1 else f'({bottom})'} * {rest}"

    def _print_Indexed(self, e: Indexed) -> str:
        return align(e.base.label.name, list(e.indices), self.target)

    def _print_Symbol(self, e: Symbol) -> str:
        return e.name

    def _print_Float(self, e: sp.Float) -> str:
        return repr(float(e))

    def _print_Function(self, e: sp.Function) -> str:
        """An op's call as its record spells it in NumPy (see :mod:`derive.ops.table`)."""
        name = type(e).__name__
        op = OP_OF_FUNCTION.get(name) or DERIVED_FUNCTIONS.get(name)
        if op is None or op.numpy is None:
            raise NotImplementedError(f"no NumPy form for {name}")
        fields = {}
        for arg_name, arg in zip((*op.args, *op.kwargs), e.args, strict=False):
            fields[arg_name] = unwrapped(self._print(arg))  # np.tanh(x @ W.T), not ((...))
            fields[f"{arg_name}_factor"] = self.parenthesize(arg, PRECEDENCE["Mul"])
        if op.helper_name:
            self.helpers.add(op.name)
        return op.numpy.format(**fields)

    def _print_Pow(self, e: sp.Pow, rational: bool = False) -> str:
        base, exp = e.args
        if exp == sp.Rational(1, 2):
            if not base.has(Indexed):  # sqrt(d) of sizes and constants: a Python float
                b = self.parenthesize(base, PRECEDENCE["Pow"], strict=True)
                return f"{b}**0.5" if _SIMPLE.fullmatch(b) else f"{b} ** 0.5"
            return f"np.sqrt({self._print(base)})"
        if exp == -sp.Rational(1, 2):
            return f"1 / np.sqrt({self._print(base)})"
        if exp.is_Rational and exp.is_negative:
            inverse = base if exp == -1 else sp.Pow(base, -exp, evaluate=False)
            return f"1 / {self.parenthesize(inverse, PRECEDENCE['Mul'], strict=False)}"
        b = self.parenthesize(base, PRECEDENCE["Pow"], strict=True)
        x = self.parenthesize(exp, PRECEDENCE["Pow"], strict=False)
        # as ruff format writes it: x**2 hugs simple operands, (a - b) ** 2 does not
        return f"{b}**{x}" if _SIMPLE.fullmatch(b) and _SIMPLE.fullmatch(x) else f"{b} ** {x}"

    def _print_Rational(self, e: sp.Rational) -> str:
        return str(e.p) if e.q == 1 else f"{e.p} / {e.q}"

    def _print_Piecewise(self, e: sp.Piecewise) -> str:
        (val, cond), *rest = e.args
        other = rest[0][0] if len(rest) == 1 else sp.Piecewise(*rest)
        if cond == sp.true:
            return self._print(val)
        if other == 0:  # a mask: multiplying by a bool array keeps the dtype
            return f"{self.parenthesize(val, 50)} * ({self._print(cond)})"
        return f"np.where({self._print(cond)}, {self._print(val)}, {self._print(other)})"

    def _print_Relational(self, e: sp.core.relational.Relational) -> str:
        return f"{self.parenthesize(e.lhs, 60)} {e.rel_op} {self.parenthesize(e.rhs, 60)}"

    def _print_Heaviside(self, e: sp.Heaviside) -> str:
        return f"({self._print(e.args[0])} > 0)"

    def _print_Sum(self, e: sp.Sum) -> str:
        """A sum inside a pointwise expression: matmul, einsum or ``.sum``, then aligned."""
        free = [lab for lab in self.target if lab in e.free_symbols]
        code = _operand(self.reduction(e, free))
        return align(code, free, self.target) if free else code

    def _split_sum(self, body: sp.Expr, limits: tuple, free: list) -> str | None:
        """``Σ_b f_i g_bi = f_i Σ_b g_bi`` and ``Σ_b (a_bi c_bj + d_bi e_bj) = Σ a c + Σ d e``.

        A factor free of the summed labels leaves the sum, and a sum of products becomes one
        contraction (a GEMM) per product, instead of a broadcast array with the summed axis
        (an (h, d, m) array for tied weights) reduced afterwards.
        """
        js = [lim[0] for lim in limits]
        outer, inner = body.as_independent(*js, as_Add=False)
        if outer != 1 and inner.has(Indexed):
            return f"{self._aligned(outer, free)} * {self._aligned(sp.Sum(inner, *limits), free)}"
        sums = [f for f in sp.Mul.make_args(body) if isinstance(f, sp.Add)]
        if isinstance(body, sp.Mul) and len(sums) == 1 and len(sums[0].args) <= 4:
            spread = sp.expand_mul(body)  # Σ (g_in + g_ni) z_nd: one product per term
            if isinstance(spread, sp.Add) and any(_pairs(t) for t in spread.args):
                body = spread
        if not isinstance(body, sp.Add) or not any(_pairs(t) for t in body.args):
            return None
        parts = []
        for k, term in enumerate(sorted(body.args, key=lambda t: t.could_extract_minus_sign())):
            sign = " - " if term.could_extract_minus_sign() else " + "
            term = -term if sign == " - " else term
            code = self._aligned(sp.Sum(term, *limits), free)
            if k == 0:
                parts.append(code if sign == " + " else f"-{code}")
            else:
                parts.append(f"{sign.strip()} {code}")
        return " ".join(parts)

    def _aligned(self, e: sp.Expr, free: list) -> str:
        """``e`` printed as an array on the axes ``free`` (a factor of a product)."""
        if isinstance(e, sp.Sum):
            own = [lab for lab in free if lab in e.free_symbols]
            code = _operand(self.reduction(e, own))
            return align(code, own, free) if own else code
        sub = NumPyIndexPrinter(free)
        text = sub.parenthesize(e, PRECEDENCE["Mul"], strict=False)
        self.helpers |= sub.helpers
        return text

    def reduction(self, e: sp.Sum, free: list, how: str = "sum") -> str:
        """Code for ``Σ_j body`` as an array with axes ``free`` (in that order)."""
        body, limits = e.function, e.limits
        if not body.has(Indexed):  # Σ_k c over k = 1..n is n c
            return self._print(sp.Mul(body, *[hi - lo + 1 for _, lo, hi in limits]))
        js = [lim[0] for lim in limits]
        coeff, rest = body.as_independent(*js, *free, as_Add=False)
        if how == "sum":
            split = self._split_sum(rest, limits, free)
            if split is not None:
                return split if coeff == 1 else f"{self.parenthesize(coeff, 50)} * ({split})"
        factors = []
        for f in sp.Mul.make_args(rest):  # a square is a product: Σ z² is an einsum
            square = f.is_Pow and f.exp == 2 and isinstance(f.base, Indexed)
            factors += [f.base, f.base] if square else [f]
        pre = "" if coeff == 1 else f"{self.parenthesize(coeff, 50)} * "
        products = how == "sum" and all(isinstance(f, Indexed) for f in factors)
        if products and len(factors) >= 3:
            factors = _entrywise_groups(factors)
        if products and len(js) == 1 and len(factors) == 2:
            mm = matmul(factors[0], factors[1], js[0], free)
            mm = mm or stacked_matmul(factors[0], factors[1], js[0], free)
            if mm is not None:
                return pre + mm
            return pre + einsum(factors, free)
        if products and len(js) > 1 and len(factors) == 2:  # Σ_ij W_ij² is one dot product
            return pre + (tensordot(factors[0], factors[1], js, free) or einsum(factors, free))
        if len(factors) == 1 and isinstance(factors[0], Indexed) and len(js) == 1:
            a = factors[0]
            rest_labels = [lab for lab in a.indices if lab not in js]
            axis = list(a.indices).index(js[0])
            inner = f"{a.base.label.name}.{how}(axis={axis})"
            if how == "argmax":
                inner = f"np.argmax({a.base.label.name}, axis={axis})"
            return pre + align(inner, rest_labels, free) if free else pre + inner
        sub = NumPyIndexPrinter([*free, *js])
        text = sub.doprint(rest)
        self.helpers |= sub.helpers
        axes = tuple(range(-len(js), 0))
        axis = axes[0] if len(axes) == 1 else axes
        # the method skips np.sum's Python-level dispatch: a microsecond on small arrays
        operand = text if text.isidentifier() else f"({text})"
        return f"{pre}{operand}.{how}(axis={axis})"


def _operand(code: str) -> str:
    """A reduction's code as an operand: parenthesized when it has top-level operators
    (``x @ W`` binds as tightly as ``*``) or a leading minus."""
    return f"({code})" if operands(code) is not None or code.startswith("-") else code


def _entrywise_groups(factors: list[Indexed]) -> list[Indexed]:
    """Factors multiplied entry by entry first, so that two operands are left for one GEMM.

    ``Σ_b a_bj c_bj x_bi`` is ``(a * c).T @ x``; a factor on fewer axes joins one that has
    them all (``Σ_b s_b x_bi y_bj`` is ``(s[:, None] * x).T @ y``).  Unchanged when no two
    operands come out.
    """
    groups: list[tuple[tuple, list[str]]] = []
    for f in sorted(factors, key=lambda f: -len(f.indices)):
        labels = tuple(f.indices)
        home = next((g for g in groups if set(labels) <= set(g[0])), None)
        text = align(f.base.label.name, list(labels), list(home[0])) if home else None
        if home is None:
            groups.append((labels, [f.base.label.name]))
        else:
            home[1].append(text)
    if len(groups) != 2 or len(factors) < 3:
        return factors
    out = []
    for labels, names in groups:
        name = names[0] if len(names) == 1 else "(" + " * ".join(names) + ")"
        out.append(Indexed(sp.IndexedBase(sp.Symbol(name)), *labels))
    return out


def _pairs(term: sp.Expr) -> bool:
    """Whether ``term`` multiplies arrays into a larger one (``g_bi h_bj``: a GEMM's worth),
    not entry by entry (``t_bk log p_bk``, which a row-wise sum handles as it stands)."""
    arrays = [set(f.indices) for f in sp.Mul.make_args(term) if isinstance(f, Indexed)]
    union = set().union(*arrays) if arrays else set()
    return len(arrays) >= 2 and all(labels < union for labels in arrays)


@lru_cache(maxsize=1024)
def _taken_by_sympy(name: str) -> bool:
    """Whether ``sympify(name)`` would mean something other than a symbol (gamma, E, S).

    Decided from the namespaces ``sympify`` resolves names in, without parsing anything.
    """
    return name in vars(sp) or name in dir(builtins)


def _factor_rank(f: sp.Expr) -> int:
    """Where a factor goes in a product as lectures write it (see ``SpecPrinter._print_Mul``)."""
    if f.is_Number or (isinstance(f, Symbol) and f.is_integer):  # numbers and sizes (m, k)
        return 0
    base = f.base if isinstance(f, sp.Pow) else f
    if isinstance(base, Indexed | Symbol):
        name = base.base.label.name if isinstance(base, Indexed) else base.name
        return 1 if name.startswith("g_") else 2
    if isinstance(base, sp.Function):
        return 3
    return 4


class SpecPrinter(StrPrinter):
    """Per-example expressions in the spec's own names.

    Elementwise expressions print without indices (``p - t``); anything with a sum keeps
    index notation, as ``W2[n_1, j]`` for reading or, with ``parsable``, as
    ``Indexed('W2', n_1, j)`` so that plain ``sympy.sympify`` rebuilds the expression.
    """

    printmethod = "_derive_spec"

    def __init__(self, plain: bool, parsable: bool = False) -> None:
        super().__init__({"order": "none"})
        self.plain, self.parsable = plain, parsable

    def _as_ordered_terms(self, expr: sp.Expr, order: str | None = None) -> list:
        """Added terms before subtracted ones: ``yhat - y``, ``p - t``."""
        key = lambda t: (t.could_extract_minus_sign(), sp.default_sort_key(t))  # noqa: E731
        return sorted(expr.args, key=key)

    def _print_Mul(self, expr: sp.Expr) -> str:
        """Factors in the order lectures write them: ``g_h1*h1*(1 - h1)``.

        The number first, then adjoints (``g_...``), then values and their powers, then
        function calls, then sums of terms.
        """
        factors = sorted(sp.Mul.make_args(expr), key=_factor_rank)  # stable: ties keep order
        return super()._print_Mul(sp.Mul(*factors, evaluate=False))

    def _print_Indexed(self, e: Indexed) -> str:
        name = e.base.label.name
        if self.plain:
            return self._name(name)
        indices = ", ".join(self._print(i) for i in e.indices)
        return f"Indexed('{name}', {indices})" if self.parsable else f"{name}[{indices}]"

    def _print_Symbol(self, e: Symbol) -> str:
        return self._name(e.name)

    def _name(self, name: str) -> str:
        """``gamma`` would parse as SymPy's gamma function: spell such names out."""
        return f"Symbol('{name}')" if self.parsable and _taken_by_sympy(name) else name

    def _print_Float(self, e: sp.Float) -> str:
        return repr(float(e))


def unwrapped(text: str) -> str:
    """``text`` without one pair of parentheses around all of it."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for ch in text[1:-1]:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return text
    return text[1:-1] if depth == 0 else text
