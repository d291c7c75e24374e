"""An answer tree as SymPy, and how it was read: plain math, LaTeX and MathML.

:func:`to_sympy` builds the SymPy expression node by node from the typed tree (no text is
parsed here).  Scalar answers become ordinary expressions (for symbolic equivalence);
with ``matrix=True`` names are non-commutative symbols, so ``(p - t) h_1^T`` keeps its
order, and ``^T`` and ``\\odot`` are the unevaluated functions :class:`T` and
:class:`Hadamard`.  Printers are SymPy printer subclasses, one ``_print_X`` per node type.
"""

from __future__ import annotations

from functools import cache

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.mathml import MathMLPresentationPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from derive.answers.tree import Bin, Call, Name, Neg, Num, Op, SumOver, Transpose, Tree
from derive.ops.functions import sigmoid
from derive.ops.table import BUILTIN_OPS


class T(sp.Function):
    """Transpose, kept unevaluated (``h_1^T``)."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        return x if x.is_number else None


class Hadamard(sp.Function):
    """Entrywise product ``a \\odot b``."""

    nargs = 2


class softmax(sp.Function):
    nargs = 1


class diag(sp.Function):
    nargs = 1


class entrysum(sp.Function):
    """``\\sum`` over every entry (no index) or ``sum(x)``."""

    nargs = 1


class PrimedBase(sp.Function):
    """``f^{(n)}(z)`` as the student wrote it (``\\sigma'(z)``, ``\\tanh''(z)``).

    Kept unevaluated so it prints with its marks; ``rewrite(PrimedBase, sp.exp)`` writes it
    out as ``sympy.diff`` of ``f`` (σ as ``1/(1 + e^{-z})``), for simplification.
    Each (function, order) is a subclass made by :func:`primed`; SymPy's printers find
    ``_print_PrimedBase`` for them only because the name ends in ``Base``.
    """

    nargs = 1
    op_name = ""
    order = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """One more mark: the derivative of ``f^{(n)}`` is ``f^{(n+1)}``."""
        return primed(self.op_name, self.order + 1)(self.args[0])

    def _eval_rewrite_as_exp(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        d = sp.Dummy("d")
        f = 1 / (1 + sp.exp(-d)) if self.op_name == "sigmoid" else _FUNCS[self.op_name](d)
        return sp.diff(f, d, self.order).xreplace({d: x})


@cache
def primed(op_name: str, order: int) -> type[PrimedBase]:
    """The :class:`PrimedBase` subclass for ``op_name`` with ``order`` derivative marks."""
    return type(f"{op_name}_{order}", (PrimedBase,), {"op_name": op_name, "order": order})


_MATHML_HEAD = {"sigmoid": "σ"}


_FUNCS = {
    "exp": sp.exp,
    "log": sp.log,
    "tanh": sp.tanh,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "sigmoid": sigmoid,
    "softmax": softmax,
    "diag": diag,
    "sum": entrysum,
}


def symbol(name: str, matrix: bool) -> sp.Symbol:
    if matrix:
        return sp.Symbol(name, commutative=False)
    return sp.Symbol(name, real=True)


def to_sympy(tree: Tree, matrix: bool = False, evaluate: bool = True) -> sp.Expr:
    """The tree as a SymPy expression (sizes are capped by the reader)."""
    with sp.evaluate(evaluate):
        return _build(tree, matrix)


def _build(tree: Tree, matrix: bool) -> sp.Expr:
    if isinstance(tree, Num):
        return sp.Integer(tree.value) if isinstance(tree.value, int) else sp.Float(tree.value)
    if isinstance(tree, Name):
        return symbol(tree.id, matrix)
    if isinstance(tree, Neg):
        return _neg(_build(tree.operand, matrix))
    if isinstance(tree, Transpose):
        inner = _build(tree.operand, matrix)
        return T(inner) if matrix else inner
    if isinstance(tree, SumOver):
        return entrysum(_build(tree.body, matrix))
    if isinstance(tree, Call):
        return _call(tree, matrix)
    if tree.op in (Op.ADD, Op.SUB):
        return sp.Add(*_terms(tree, matrix))
    if tree.op in (Op.PRODUCT, Op.MATMUL):
        return sp.Mul(*_factors(tree, matrix))
    a, b = _build(tree.left, matrix), _build(tree.right, matrix)
    if tree.op is Op.DIV:
        inverse = sp.Pow(b, sp.S.NegativeOne)
        return inverse if a == 1 else sp.Mul(a, inverse)
    if tree.op is Op.POW:
        return sp.Pow(a, b)
    if tree.op is Op.HADAMARD and matrix:
        return Hadamard(a, b)
    return sp.Mul(a, b)


def _neg(e: sp.Expr) -> sp.Expr:
    return -e if e.is_Number else sp.Mul(sp.S.NegativeOne, e)


def _terms(tree: Tree, matrix: bool) -> list[sp.Expr]:
    """A chain of ``+`` and ``-`` as one flat list of terms (printed as written)."""
    if isinstance(tree, Bin) and tree.op in (Op.ADD, Op.SUB):
        right = [_build(tree.right, matrix)]
        if tree.op is Op.SUB:
            right = [_neg(right[0])]
        return _terms(tree.left, matrix) + right
    return [_build(tree, matrix)]


def _factors(tree: Tree, matrix: bool) -> list[sp.Expr]:
    if isinstance(tree, Neg):
        return [sp.S.NegativeOne, *_factors(tree.operand, matrix)]
    if isinstance(tree, Bin) and tree.op in (Op.PRODUCT, Op.MATMUL):
        return _factors(tree.left, matrix) + _factors(tree.right, matrix)
    return [_build(tree, matrix)]


def _call(tree: Call, matrix: bool) -> sp.Expr:
    args = [_build(a, matrix) for a in tree.args]
    if tree.func == "relu":
        return sp.Max(args[0], 0) if not tree.prime else sp.Heaviside(args[0])
    if tree.func == "max":
        return sp.Max(*args)
    if tree.prime:
        return primed(tree.func, tree.prime)(args[0])
    return _FUNCS[tree.func](*args)


class PlainPrinter(StrPrinter):
    """Plain math: ``(p - t)*h1.T``, ``sigmoid(z)``, ``h1 ⊙ (1 - h1)``."""

    def _print_T(self, e: T) -> str:
        return f"{self.parenthesize(e.args[0], PRECEDENCE['Pow'])}.T"

    def _print_Hadamard(self, e: Hadamard) -> str:
        return " ⊙ ".join(self.parenthesize(a, 45) for a in e.args)

    def _print_entrysum(self, e: entrysum) -> str:
        return f"sum({self._print(e.args[0])})"

    def _print_PrimedBase(self, e: PrimedBase) -> str:
        return f"{e.op_name}{chr(39) * e.order}({self._print(e.args[0])})"


class AnswerLatexPrinter(LatexPrinter):
    """LaTeX: ``\\sigma\\left(z\\right)``, ``h_{1}^{T}``, ``\\odot``."""

    def _print_sigmoid(self, e: sp.Expr, exp: str | None = None) -> str:
        return self._fn(r"\sigma", e, exp)

    def _print_PrimedBase(self, e: PrimedBase, exp: str | None = None) -> str:
        head = BUILTIN_OPS[e.op_name].latex or rf"\{e.op_name}"  # \sigma, \tanh; \exp
        return self._fn(head + "'" * e.order, e, exp)

    def _print_softmax(self, e: sp.Expr, exp: str | None = None) -> str:
        return self._fn(r"\operatorname{softmax}", e, exp)

    def _print_diag(self, e: sp.Expr, exp: str | None = None) -> str:
        return self._fn(r"\operatorname{diag}", e, exp)

    def _print_entrysum(self, e: sp.Expr, exp: str | None = None) -> str:
        return rf"\sum {self.parenthesize(e.args[0], 45)}"

    def _fn(self, head: str, e: sp.Expr, exp: str | None) -> str:
        body = rf"{head}\left({self._print(e.args[0])}\right)"
        return f"{body}^{{{exp}}}" if exp else body

    def _print_T(self, e: T, exp: str | None = None) -> str:
        inner = self.parenthesize(e.args[0], PRECEDENCE["Pow"])
        return f"{inner}^{{T}}"

    def _print_Hadamard(self, e: Hadamard) -> str:
        return r" \odot ".join(self.parenthesize(a, 45) for a in e.args)


class AnswerMathMLPrinter(MathMLPresentationPrinter):
    """MathML Core (rendered by browsers without any script or network)."""

    def _fn(self, head: str, e: sp.Expr) -> object:
        row = self.dom.createElement("mrow")
        name = self.dom.createElement("mi")
        name.appendChild(self.dom.createTextNode(head))
        row.appendChild(name)
        row.appendChild(self._paren(self._print(e.args[0])))
        return row

    def _paren(self, inner: object) -> object:
        row = self.dom.createElement("mrow")
        for text, node in (("(", None), (None, inner), (")", None)):
            if node is not None:
                row.appendChild(node)
            else:
                mo = self.dom.createElement("mo")
                mo.appendChild(self.dom.createTextNode(text))
                row.appendChild(mo)
        return row

    def _print_sigmoid(self, e: sp.Expr) -> object:
        return self._fn("σ", e)

    def _print_PrimedBase(self, e: PrimedBase) -> object:
        return self._fn(_MATHML_HEAD.get(e.op_name, e.op_name) + "′" * e.order, e)

    def _print_softmax(self, e: sp.Expr) -> object:
        return self._fn("softmax", e)

    def _print_diag(self, e: sp.Expr) -> object:
        return self._fn("diag", e)

    def _print_entrysum(self, e: sp.Expr) -> object:
        return self._fn("Σ", e)

    def _print_T(self, e: T) -> object:
        sup = self.dom.createElement("msup")
        arg = e.args[0]
        base = self._print(arg)
        sup.appendChild(base if arg.is_Atom else self._paren(base))
        mi = self.dom.createElement("mi")
        mi.appendChild(self.dom.createTextNode("T"))
        sup.appendChild(mi)
        return sup

    def _print_Hadamard(self, e: Hadamard) -> object:
        row = self.dom.createElement("mrow")
        for i, a in enumerate(e.args):
            if i:
                mo = self.dom.createElement("mo")
                mo.appendChild(self.dom.createTextNode("⊙"))
                row.appendChild(mo)
            node = self._print(a)
            row.appendChild(node if (a.is_Atom or a.is_Function) else self._paren(node))
        return row


def plain(e: sp.Expr) -> str:
    return PlainPrinter({"order": "none"}).doprint(e)


def latex(e: sp.Expr) -> str:
    return AnswerLatexPrinter({"order": "none"}).doprint(e)


def mathml(e: sp.Expr) -> str:
    """``<math>`` element text (presentation MathML)."""
    body = AnswerMathMLPrinter({"order": "none"}).doprint(e)
    body = body.replace("<mo>-</mo>", "<mo>&#8722;</mo>")  # a minus sign, not a hyphen
    return f'<math display="block">{body}</math>'
