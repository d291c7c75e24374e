"""Index expressions in matrix notation, as lectures write them, each one evaluable.

An entry ``e`` of an index expression whose free labels are ``T`` is translated into a
:class:`M`: its LaTeX (bold vectors and matrices, ``ᵀ``, ``⊙`` for elementwise products,
``⊘`` for elementwise quotients, outer products ``u vᵀ``) and a function computing it with
NumPy, so every translation is checked against the index form it came from.

* ``Σ_j A[.., j] B[j, ..]`` is a matrix product, transposes chosen by where ``j`` sits;
* a product of entries with the same labels is ``⊙``; two vectors with different labels
  make an outer product;
* a sum over the examples is kept as ``Σ_b`` over per-example terms (subscript ``b``), or,
  in the row convention, written with batch matrices (rows are examples): ``Δᵀ X``.

Anything else (indices that are expressions, sums of three factors, batch-coupled
expressions such as batch norm's) is not translated: it stays in index notation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy import Indexed, Symbol

from derive.tex.printer import Context, attach

ADD, MUL, POW, ATOM = 1, 2, 3, 4
TOP = r"\top"

Env = dict  # {"values": name -> array (batch axis first), "ex": label -> example index}


@dataclass(frozen=True)
class M:
    """A matrix expression: LaTeX, precedence, axes (labels, in order) and its value."""

    tex: str
    prec: int
    axes: tuple
    fn: Callable[[Env], np.ndarray]
    leaf: tuple | None = None  # (name, labels, batch kept) for a leaf, so it can be transposed
    flip: Callable[[], M] | None = None  # the transpose, written out (v uᵀ for u vᵀ)

    def wrap(self, prec: int) -> str:
        return self.tex if self.prec >= prec else rf"\left({self.tex}\right)"


class Translator:
    """Matrix notation for one graph (names, batch label, which nodes carry a batch axis)."""

    def __init__(self, ctx: Context, batched: set[str], scalar: Callable[[sp.Expr, Env], float]):
        self.ctx, self.batched, self.scalar = ctx, batched, scalar
        self.batch_axis = False  # True: bound batch labels are axes (row convention)

    def translate(self, e: sp.Expr, target: tuple, batch_axis: bool = False) -> M | None:
        """``e`` as a matrix expression with axes ``target`` (the batch label dropped)."""
        self.batch_axis = batch_axis
        self.examples: dict[Symbol, str] = {}
        bound = {lim[0] for s in e.atoms(sp.Sum) for lim in s.limits}
        free = {i for a in e.atoms(Indexed) for i in a.indices} - bound
        if any(self._is_batch(b) for b in bound) and any(self._is_free_batch(f) for f in free):
            return None  # examples interact (batch norm): index notation says it better
        target = tuple(t for t in target if not self._is_free_batch(t))
        try:
            m = self.tr(e)
            if set(m.axes) != set(target):
                return None
            return self.order(m, target)
        except _NotMatrix:
            return None

    # -- helpers ----------------------------------------------------------------------------
    def _is_free_batch(self, label: sp.Expr) -> bool:
        return isinstance(label, Symbol) and label.name == self.ctx.batch

    def _is_batch(self, label: sp.Expr) -> bool:
        return isinstance(label, Symbol) and label.name.split("_")[0] == self.ctx.batch

    def order(self, m: M, axes: tuple) -> M:
        if m.axes == axes:
            return m
        if m.flip is not None:
            return m.flip()
        if m.leaf is None or len(axes) != 2:
            raise _NotMatrix
        return M(_sup(m.tex, r"\top"), ATOM, axes, lambda env: m.fn(env).T, None)

    # -- the translation ---------------------------------------------------------------------
    def tr(self, e: sp.Expr) -> M:
        if isinstance(e, Indexed):
            return self.leaf(e)
        if e.is_Number or (isinstance(e, Symbol) and not e.is_integer) or _scalar_like(e):
            return self.scalar_m(e)
        if isinstance(e, sp.Add):
            return self.add(e)
        if isinstance(e, sp.Mul):
            return self.mul(e)
        if isinstance(e, sp.Pow) and e.exp.is_Number:
            return self.power(e)
        if isinstance(e, sp.Sum):
            return self.total(e)
        if isinstance(e, sp.Piecewise):
            return self.mask(e)
        if isinstance(e, sp.Function) and len(e.args) >= 1:
            return self.func(e)
        raise _NotMatrix

    def mask(self, e: sp.Piecewise) -> M:
        """``Piecewise((v, z > 0), (0, True))`` as ``v ⊙ 1[z > 0]``."""
        (val, cond), *rest = e.args
        if len(rest) != 1 or rest[0][0] != 0 or not isinstance(cond, sp.core.relational.Relational):
            raise _NotMatrix
        lhs, rhs = self.tr(cond.lhs), self.tr(cond.rhs)
        if not lhs.axes or rhs.axes:
            raise _NotMatrix
        op = {">": ">", ">=": r"\geq", "<": "<", "<=": r"\leq"}[cond.rel_op]
        ind = M(rf"\mathbb{{1}}\left[{lhs.tex} {op} {rhs.tex}\right]", ATOM, lhs.axes,
                lambda env: _compare(cond.rel_op, lhs.fn(env), rhs.fn(env)))  # fmt: skip
        v = self.tr(val)
        return (
            self._product([ind, v])
            if v.axes
            else M(
                f"{v.wrap(MUL)} {ind.tex}" if val != 1 else ind.tex,
                MUL,
                ind.axes,
                lambda env: v.fn(env) * ind.fn(env),
            )
        )

    def scalar_m(self, e: sp.Expr) -> M:
        tex = TexLike(self.ctx).doprint(e)
        prec = ADD if isinstance(e, sp.Add) else (MUL if isinstance(e, sp.Mul) else ATOM)
        return M(tex, prec, (), lambda env: np.asarray(self.scalar(e, env), dtype=float))

    def leaf(self, e: Indexed) -> M:
        name = e.base.label.name
        labels = []
        example = None
        for i in e.indices:
            if not isinstance(i, Symbol):
                raise _NotMatrix
            if self._is_free_batch(i):
                continue
            if self._is_batch(i) and not self.batch_axis:
                example = i
                continue
            labels.append(i)
        if len(labels) > 2:
            raise _NotMatrix
        keep_batch = any(self._is_batch(i) for i in labels)
        target = self.ctx.adjoint_of(name)
        sub = "" if example is None else self.examples.setdefault(example, self.ctx.batch)
        sym = self._symbol(target or name, bool(labels), keep_batch, target is not None, sub)
        batched = (target or name) in self.batched
        idx = e.indices

        def value(env: Env) -> np.ndarray:
            arr = np.asarray(env["values"][name], dtype=float)
            if batched and not keep_batch:
                arr = arr[env["ex"][idx[0]]]
            return arr

        return M(sym, ATOM, tuple(labels), value, (name, tuple(labels), keep_batch))

    def _symbol(self, name: str, array: bool, batch: bool, adjoint: bool, sub: str = "") -> str:
        names = self.ctx.names
        if adjoint and name in self.ctx.deltas:
            stem, _, layer = self.ctx.deltas[name].partition("^")
            stem = stem.replace(r"\delta", r"\Delta") if batch else stem
            sym = (rf"\boldsymbol{{{stem}}}" if array else stem) + (f"^{layer}" if layer else "")
            return attach(sym, sub)
        sym = self.ctx.symbol(name, sub, bold=array, capital=batch)
        if adjoint:
            return rf"\frac{{\partial {names.symbol(self.ctx.loss)}}}{{\partial {sym}}}"
        return sym

    def add(self, e: sp.Add) -> M:
        terms = _ordered_terms(e)
        parts = [self.tr(t) for t in terms]
        axes = max((p.axes for p in parts), key=len)
        if any(p.axes and set(p.axes) != set(axes) for p in parts):
            raise _NotMatrix
        fixed = [p if not p.axes else self.order(p, axes) for p in parts]
        tex = ""
        for k, (t, p) in enumerate(zip(terms, fixed, strict=True)):
            neg = k > 0 and t.could_extract_minus_sign()
            shown = self.tr(-t) if neg else p
            if neg and shown.axes:
                shown = self.order(shown, axes)
            piece = shown.wrap(MUL) if neg else shown.wrap(ADD)
            if axes and t.is_Number:
                piece = r"\mathbf{1}" if abs(t) == 1 else rf"{abs(t)}\,\mathbf{{1}}"
            tex += piece if k == 0 else (" - " if neg else " + ") + piece
        return M(tex, ADD, axes, lambda env: sum(p.fn(env) for p in fixed))

    def mul(self, e: sp.Mul) -> M:
        coeff, factors = e.as_coeff_mul()
        num, den = [], []
        for f in factors:
            if isinstance(f, sp.Pow) and f.exp.is_Number and f.exp < 0:
                den.append(self.tr(f.base ** (-f.exp)))
            else:
                num.append(self.tr(f))
        scal = [m for m in num if not m.axes]
        arr = [m for m in num if m.axes]
        top = self._product(arr) if arr else None
        sden = [m for m in den if not m.axes]
        aden = [m for m in den if m.axes]
        if aden:
            bottom = self._product(aden)
            if top is None:
                top = M(r"\mathbf{1}", ATOM, bottom.axes, lambda env: np.ones_like(bottom.fn(env)))
            bottom = self.order(bottom, top.axes)
            top = M(
                rf"{top.wrap(POW)} \oslash {bottom.wrap(POW)}",
                MUL,
                top.axes,
                lambda env, t=top, b=bottom: t.fn(env) / b.fn(env),
            )
        c = float(coeff)
        if c == 1 and not scal and not sden and top is not None:
            return top
        scalar_tex = " ".join(m.wrap(MUL) for m in scal)
        sign = "-" if c < 0 else ""
        mag = abs(c)
        lead = "" if mag == 1 else TexLike(self.ctx).doprint(sp.Abs(coeff))
        if top is None:
            body = " ".join(p for p in (lead, scalar_tex) if p) or "1"
            tex = body
            axes: tuple = ()
        else:
            tex = " ".join(p for p in (lead, scalar_tex, top.wrap(MUL)) if p)
            axes = top.axes
        if sden:
            tex = rf"\frac{{{tex}}}{{{' '.join(m.wrap(MUL) for m in sden)}}}"

        def value(env: Env, top=top) -> np.ndarray:
            v = c * np.prod([m.fn(env) for m in scal], axis=0) if scal else np.asarray(c)
            if top is not None:
                v = v * top.fn(env)
            for m in sden:
                v = v / m.fn(env)
            return v

        return M(sign + tex, MUL if not sign else ADD, axes, value)

    def _product(self, arr: list[M]) -> M:
        """Elementwise product of same-label factors, or an outer product ``u vᵀ``."""
        axes = max((m.axes for m in arr), key=len)
        if all(set(m.axes) == set(axes) for m in arr):
            fixed = sorted((self.order(m, axes) for m in arr), key=_factor_rank)
            tex = r" \odot ".join(m.wrap(POW) for m in fixed)

            def value(env: Env) -> np.ndarray:
                return np.prod([m.fn(env) for m in fixed], axis=0)

            return M(
                tex,
                MUL if len(fixed) > 1 else fixed[0].prec,
                axes,
                value,
                fixed[0].leaf if len(fixed) == 1 else None,
            )
        if len(arr) == 2 and all(len(m.axes) == 1 for m in arr):
            return _outer(*sorted(arr, key=_factor_rank))
        raise _NotMatrix

    def power(self, e: sp.Pow) -> M:
        base = self.tr(e.base)
        if not base.axes:
            return self.scalar_m(e)
        n = e.exp
        if n == sp.Rational(1, 2):
            return M(rf"\sqrt{{{base.tex}}}", ATOM, base.axes, lambda env: np.sqrt(base.fn(env)))
        tex = _sup(base.wrap(ATOM), rf"\odot {TexLike(self.ctx).doprint(n)}")
        return M(tex, POW, base.axes, lambda env: base.fn(env) ** float(n))

    def func(self, e: sp.Function) -> M:
        from derive.tex.printer import OP_LATEX

        arg = self.tr(e.args[0])
        if not arg.axes:
            return self.scalar_m(e)
        name = type(e).__name__
        if name == "exp":
            tex = rf"e^{{{arg.tex}}}"
        elif name in OP_LATEX:
            tex = rf"{OP_LATEX[name]}\left({arg.tex}\right)"
        else:
            raise _NotMatrix
        fn = sp.lambdify(_X, e.func(_X, *e.args[1:]), "numpy")
        return M(tex, ATOM, arg.axes, lambda env: np.asarray(fn(arg.fn(env)), dtype=float))

    def total(self, e: sp.Sum) -> M:
        if len(e.limits) != 1:
            raise _NotMatrix
        j = e.limits[0][0]
        if self._is_batch(j) and not self.batch_axis:
            return self.over_examples(e, j)
        coeff, factors = _split(e.function, j)
        if len(factors) == 2:
            a, b = (self.tr(f) for f in factors)
            m = self.matmul(a, b, j)
        elif len(factors) == 1:
            a = self.tr(factors[0])
            if a.axes != (j,):
                raise _NotMatrix
            one = r"\mathbf{1}^{\top}"
            m = M(rf"{one} {a.wrap(POW)}", MUL, (), lambda env: np.sum(a.fn(env)))
        else:
            raise _NotMatrix
        if coeff != 1:
            c = self.tr(coeff)
            if c.axes:
                raise _NotMatrix
            return M(
                rf"{c.wrap(MUL)} {m.wrap(MUL)}", MUL, m.axes, lambda env: c.fn(env) * m.fn(env)
            )
        return m

    def matmul(self, a: M, b: M, j: Symbol) -> M:
        """``Σ_j a b`` as a matrix product; its transpose swaps the operands."""
        m = self._matmul(a, b, j)
        if len(m.axes) == 2:
            return M(m.tex, m.prec, m.axes, m.fn, flip=lambda: self._matmul(b, a, j))
        return m

    def _matmul(self, a: M, b: M, j: Symbol) -> M:
        if a.axes.count(j) != 1 or b.axes.count(j) != 1:
            raise _NotMatrix
        ra = tuple(x for x in a.axes if x != j)
        rb = tuple(x for x in b.axes if x != j)
        if set(ra) & set(rb):
            raise _NotMatrix
        if not ra and rb:  # uᵀ B is written Bᵀ u
            a, b, ra, rb = b, a, rb, ra
        left = self._arrange(a, (*ra, j))
        right = self._arrange(b, (j, *rb))
        if not ra and not rb:  # an inner product
            row = _sup(left.wrap(POW), TOP)
            tex = rf"\left({row} {right.wrap(POW)}\right)"
            return M(tex, ATOM, (), lambda env: np.dot(left.fn(env), right.fn(env)))
        tex = f"{left.wrap(POW)} {right.wrap(POW)}"

        def value(env: Env) -> np.ndarray:
            return np.tensordot(left.fn(env), right.fn(env), axes=([-1], [0]))

        return M(tex, MUL, ra + rb, value)

    def _arrange(self, m: M, axes: tuple) -> M:
        if m.axes == axes:
            return m
        if len(axes) == 1:
            return m
        if m.leaf is None:
            raise _NotMatrix
        return self.order(m, axes)

    def over_examples(self, e: sp.Sum, j: Symbol) -> M:
        label = self.ctx.batch
        self.examples[j] = label
        body = self.tr(e.function)
        flip = None
        if body.flip is not None or body.leaf is not None:
            flip = lambda: self._summed(j, label, self.order(body, body.axes[::-1]), None)  # noqa: E731
        return self._summed(j, label, body, flip)

    def _summed(self, j: Symbol, label: str, body: M, flip: Callable[[], M] | None) -> M:
        def value(env: Env) -> np.ndarray:
            total = 0.0
            for k in range(env["batch_size"]):
                total = total + body.fn({**env, "ex": {**env["ex"], j: k}})
            return np.asarray(total)

        return M(rf"\sum_{{{label}}} {body.wrap(MUL)}", MUL, body.axes, value, flip=flip)


class _NotMatrix(Exception):
    pass


_X = sp.Symbol("_x", real=True)


def _compare(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
    return ops[op](a, b).astype(float)


def _outer(u: M, v: M) -> M:
    """``u vᵀ``; its transpose is ``v uᵀ``."""
    return M(
        f"{u.wrap(POW)} {_sup(v.wrap(POW), TOP)}",
        MUL,
        (u.axes[0], v.axes[0]),
        lambda env: np.outer(u.fn(env), v.fn(env)),
        flip=lambda: _outer(v, u),
    )


def _factor_rank(m: M) -> tuple:
    """Adjoints first, then values, then sums and differences: ``∂L/∂h ⊙ h ⊙ (1 - h)``."""
    return (r"\partial" not in m.tex and r"\delta" not in m.tex, m.prec < ATOM)


def _sup(tex: str, sup: str) -> str:
    """``tex^{sup}``: merged into a trailing superscript (``W^{(2)\\top}``), a fraction in
    parentheses, anything else ending in a group braced."""
    inner = tex[1:-1] if tex.startswith("{") and _group_end(tex, 0) == len(tex) - 1 else tex
    m = _TRAILING_SUP.match(inner)
    if m and "^" not in m["base"] and not m["base"].startswith(r"\frac"):
        return f"{m['base']}^{{{m['sup']}{sup}}}{m['sub'] or ''}"
    if inner.startswith(r"\frac"):
        return rf"\left({inner}\right)^{{{sup}}}"
    if "^" in inner or "_" in inner or inner.endswith("}"):
        return f"{{{inner}}}^{{{sup}}}"
    return f"{inner}^{{{sup}}}"


_TRAILING_SUP = re.compile(
    r"^(?P<base>.*?)\^\{(?P<sup>(?:[^{}]|\{[^{}]*\})*)\}(?P<sub>_\{[^{}]*\})?$"
)


def _group_end(text: str, opening: int) -> int:
    depth = 0
    for i in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def _scalar_like(e: sp.Expr) -> bool:
    """Free of arrays: no Indexed entries with labels and no sums (``m``, ``eps``, ``2``)."""
    return not e.atoms(Indexed) and not e.has(sp.Sum)


def _split(body: sp.Expr, j: Symbol) -> tuple[sp.Expr, list[sp.Expr]]:
    coeff, rest = body.as_independent(j, as_Add=False)
    return coeff, list(sp.Mul.make_args(rest))


def _ordered_terms(e: sp.Add) -> list[sp.Expr]:
    return sorted(
        e.args, key=lambda t: (t.could_extract_minus_sign(), t.is_number, sp.default_sort_key(t))
    )


class TexLike:
    """Prints a scalar (label-free) factor with the index printer."""

    def __init__(self, ctx: Context) -> None:
        from derive.tex.printer import TexPrinter

        self.p = TexPrinter(ctx)

    def doprint(self, e: sp.Expr) -> str:
        return self.p.doprint(e)
