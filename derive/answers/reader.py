"""Read an answer into a :mod:`derive.answers.tree` tree (LaTeX or plain math).

A Pratt-style recursive-descent parser over :mod:`derive.answers.lexer` tokens::

    expr    := term (('+' | '-') term)*
    term    := product ((\\odot | \\circ) product)*
    product := unary (('*' | \\cdot | \\times | '/' | '@' | <implicit>) unary)*
    unary   := ('-' | '+') unary | power
    power   := postfix ('^' exponent | '**' unary)*        (^T, ^\\top, .T: transpose)
    postfix := primary ('.T' | "'")*

Names: ``w_1``, ``w1`` and ``w_{1}`` are ``w1``; ``\\hat{y}`` is ``yhat``; ``\\mathbf{W}``
and ``\\boldsymbol{\\delta}`` drop the style; ``x^{(1)}_2`` is ``x2^(1)``.  ``e^{z}`` is
``exp(z)`` unless ``e`` is a known name; ``\\log`` is natural.

Caps, all checked before any SymPy work: the text length (lexer), ``MAX_NODES`` nodes,
``MAX_DEPTH`` levels of nesting, numbers below ``MAX_INT`` and constant exponents at most
``MAX_EXPONENT`` in size, with constant powers below ``10**MAX_DIGITS``.
"""

from __future__ import annotations

from collections.abc import Collection

from derive.answers.caps import check_power, number
from derive.answers.lexer import Kind, Token, prepare, tokenize
from derive.answers.notation import HADAMARD_CMDS, OPEN, PRODUCT_CMDS, Notation
from derive.answers.tree import Bin, Call, Name, Neg, Num, Op, Transpose, Tree


def read(text: object, known: Collection[str] = ()) -> Tree:
    """Read one answer; raises :class:`AnswerError` for anything unreadable or over a cap.

    ``known`` are names the question defines: unknown multi-letter names made of known
    letters are products (``xy`` is ``x y``), ``W^{(1)}`` is ``W1`` when that is known,
    and ``e`` is Euler's number unless known.
    """
    prepared = prepare(text)
    return _Parser(tokenize(prepared), set(known), latex=_looks_latex(prepared)).parse()


def _looks_latex(text: str) -> bool:
    return any(c in text for c in "\\{}_")


class _Parser(Notation):
    """Sums, products, powers and transposes over the notation of :class:`Notation`."""

    def parse(self) -> Tree:
        tree = self.expr()
        if not self.at(Kind.END):
            raise self.error("unexpected text", "an operator may be missing")
        return tree

    def expr(self) -> Tree:
        self.deeper()
        left = self.term()
        while self.at(Kind.SYM, "+", "-"):
            op = Op.ADD if self.advance().text == "+" else Op.SUB
            left = self.node(Bin(op, left, self.term()))
        self.depth -= 1
        return left

    def term(self) -> Tree:
        """Entrywise products bind more loosely than matrix products: a ⊙ W^T d."""
        left = self.product()
        while self.at(Kind.CMD, *HADAMARD_CMDS):
            self.advance()
            left = self.node(Bin(Op.HADAMARD, left, self.product()))
        return left

    def product(self) -> Tree:
        left = self.unary()
        while True:
            op = self.product_op()
            if op is None:
                return left
            left = self.node(Bin(op, left, self.unary()))

    def product_op(self) -> Op | None:
        tok = self.tok
        if tok.kind is Kind.SYM and tok.text in ("*", "/", "@"):
            self.advance()
            return {"*": Op.PRODUCT, "/": Op.DIV, "@": Op.MATMUL}[tok.text]
        if tok.kind is Kind.CMD and tok.text in PRODUCT_CMDS:
            self.advance()
            return PRODUCT_CMDS[tok.text]
        if self.starts_primary():
            return Op.PRODUCT
        return None

    def starts_primary(self) -> bool:
        tok = self.tok
        if tok.kind in (Kind.NUM, Kind.IDENT):
            return True
        if tok.kind is Kind.SYM:
            return tok.text in ("(", "[", "{")
        if tok.kind is Kind.CMD:
            stops = ("top", "prime", "}", "|", *HADAMARD_CMDS)
            return tok.text not in PRODUCT_CMDS and tok.text not in stops
        return False

    def unary(self) -> Tree:
        self.deeper()
        if self.at(Kind.SYM, "-"):
            self.advance()
            tree = self.node(Neg(self.unary()))
        elif self.at(Kind.SYM, "+"):
            self.advance()
            tree = self.unary()
        else:
            tree = self.power()
        self.depth -= 1
        return tree

    def power(self) -> Tree:
        base = self.postfix(self.primary())
        while True:
            if self.at(Kind.SYM, "**"):
                self.advance()
                base = self.make_power(base, self.unary())
            elif self.at(Kind.SYM, "^"):
                self.advance()
                base = self.superscript(base)
            else:
                return base
            base = self.postfix(base)

    def postfix(self, tree: Tree) -> Tree:
        while True:
            if (
                self.at(Kind.SYM, ".")
                and self.peek().kind is Kind.IDENT
                and self.peek().text == "T"
            ):
                self.advance()
                self.advance()
                tree = self.node(Transpose(tree))
            else:
                return tree

    def superscript(self, base: Tree) -> Tree:
        """``^T``, ``^\\top``, ``^{T}`` transpose; anything else is a power."""
        if self.transpose_mark():
            return self.node(Transpose(base))
        if self.at(Kind.SYM, "{"):
            save = self.pos
            self.advance()
            if self.transpose_mark() and self.at(Kind.SYM, "}"):
                self.advance()
                return self.node(Transpose(base))
            self.pos = save
            return self.make_power(base, self.group())
        if self.at(Kind.NUM) and self.latex:
            return self.make_power(base, self.node(Num(self.single_digit())))
        if self.at(Kind.SYM, "-"):
            self.advance()
            return self.make_power(base, self.node(Neg(self.power_operand())))
        return self.make_power(base, self.power_operand())

    def power_operand(self) -> Tree:
        return self.postfix(self.primary())

    def transpose_mark(self) -> bool:
        tok = self.tok
        mark = (tok.kind is Kind.IDENT and tok.text == "T" and "T" not in self.known) or (
            tok.kind is Kind.CMD and tok.text in ("top", "intercal", "mathsf")
        )
        if mark and tok.kind is Kind.CMD and tok.text == "mathsf":
            save = self.pos
            self.advance()
            inner = self.raw_group()
            if inner != "T":
                self.pos = save
                return False
            return True
        if mark:
            self.advance()
        return mark

    def single_digit(self) -> int:
        """LaTeX reads ``x^23`` as ``x^2 3``: take one digit, leave the rest."""
        tok = self.tok
        if "." in tok.text or len(tok.text) == 1:
            self.advance()
            return number(tok)
        rest = Token(Kind.NUM, tok.text[1:], tok.col + 1)
        self.tokens[self.pos] = rest
        return int(tok.text[0])

    def make_power(self, base: Tree, exponent: Tree) -> Tree:
        if isinstance(base, Name) and base.id == "e" and "e" not in self.known:
            return self.node(Call("exp", (exponent,)))
        check_power(base, exponent, self.tok.col)
        return self.node(Bin(Op.POW, base, exponent))

    def group(self) -> Tree:
        """``{ expr }`` or, in LaTeX, a single token (``\\frac12``)."""
        if self.at(Kind.SYM, "{"):
            self.advance()
            inner = self.expr()
            self.expect_sym("}")
            return inner
        if self.at(Kind.NUM):
            return self.node(Num(self.single_digit()))
        if self.at(Kind.IDENT):
            tok = self.advance()
            if len(tok.text) > 1:
                self.tokens.insert(self.pos, Token(Kind.IDENT, tok.text[1:], tok.col + 1))
            return self.node(self.resolve(tok.text[0], tok.col))
        return self.primary()

    def primary(self) -> Tree:
        self.deeper()
        tree = self.atom()
        self.depth -= 1
        return tree

    def atom(self) -> Tree:
        tok = self.tok
        if tok.kind is Kind.NUM:
            self.advance()
            return self.node(Num(number(tok)))
        if tok.kind is Kind.SYM and tok.text in OPEN:
            self.advance()
            inner = self.expr()
            self.expect_sym(OPEN[tok.text])
            return inner
        if tok.kind is Kind.SYM and tok.text == "|":
            self.advance()
            inner = self.expr()
            self.expect_sym("|")
            return self.node(Call("abs", (inner,)))
        if tok.kind is Kind.IDENT:
            self.advance()
            return self.word(tok.text, tok.col)
        if tok.kind is Kind.CMD:
            return self.command()
        raise self.error("expected a number, a name or '('", "a term may be missing")
