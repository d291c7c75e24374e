"""The LaTeX side of the reader: commands, names and their decorations, functions, sums.

:class:`Cursor` walks the tokens and counts nodes and depth against the caps;
:class:`Notation` reads ``\\frac``, ``\\sqrt``, ``\\hat{y}``, ``\\mathbf{W}``, ``w_{1}``,
``x^{(1)}_2``, ``\\sigma'(z)``, ``\\log x``, ``\\sum_{j=1}^{k}`` and the like; the grammar of
sums and products is in :mod:`derive.answers.reader`.
"""

from __future__ import annotations

from derive.answers.caps import MAX_DEPTH, MAX_NODES, MAX_PRIMES, MAX_UNROLL
from derive.answers.lexer import Kind, Token
from derive.answers.tree import (
    FUNCTIONS,
    PRIMED,
    AnswerError,
    Bin,
    Call,
    Name,
    Neg,
    Num,
    Op,
    SumOver,
    Tree,
    substitute,
    walk,
)

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi",
    "varphi", "chi", "psi", "omega", "Delta", "Gamma", "Theta", "Lambda", "Phi", "Psi",
    "Omega",
}  # fmt: skip
STYLES = {"mathbf", "boldsymbol", "bm", "mathit", "mathsf", "vec", "mathbfit", "mathnormal"}
ACCENTS = {"hat": "hat", "widehat": "hat", "bar": "bar", "overline": "bar", "tilde": "tilde"}
TEXT = {"mathrm", "operatorname", "text", "textrm", "mathtt"}
FUNC_ALIASES = {
    "sigmoid": "sigmoid",
    "sigma": "sigmoid",
    "exp": "exp",
    "log": "log",
    "ln": "log",
    "tanh": "tanh",
    "relu": "relu",
    "ReLU": "relu",
    "softmax": "softmax",
    "sqrt": "sqrt",
    "abs": "abs",
    "sum": "sum",
    "diag": "diag",
    "max": "max",
}
# functions whose argument may come without parentheses (\log x, \exp z)
BARE_ARG = {"exp", "log", "tanh", "sigmoid"}
PRODUCT_CMDS = {"cdot": Op.PRODUCT, "times": Op.PRODUCT}
HADAMARD_CMDS = ("odot", "circ")
OPEN = {"(": ")", "[": "]", "{": "}"}


class Cursor:
    """Tokens, a position, and the node and depth counts."""

    def __init__(self, tokens: list[Token], known: set[str], latex: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.known = known
        self.latex = latex
        self.nodes = 0
        self.depth = 0

    # token helpers ---------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tok
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def at(self, kind: Kind, *texts: str) -> bool:
        return self.tok.kind is kind and (not texts or self.tok.text in texts)

    def expect_sym(self, text: str) -> None:
        if not self.at(Kind.SYM, text):
            raise self.error(f"expected '{text}'", "check that brackets and braces are balanced")
        self.advance()

    def error(self, message: str, hint: str = "") -> AnswerError:
        found = "the end of the answer" if self.tok.kind is Kind.END else repr(self.tok.text)
        return AnswerError(f"{message}, found {found}", self.tok.col, hint)

    def node(self, tree: Tree) -> Tree:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise AnswerError(
                f"the answer is too large (more than {MAX_NODES} parts)",
                self.tok.col,
                "write the formula itself; name parts of it with --define",
            )
        return tree

    # grammar ---------------------------------------------------------------------------

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise AnswerError(
                f"the answer is nested too deeply (more than {MAX_DEPTH} levels)",
                self.tok.col,
                "remove redundant brackets and signs",
            )


class Notation(Cursor):
    """Commands, names, functions and sums; the grammar methods come from the parser."""

    def expr(self) -> Tree:
        raise NotImplementedError

    def term(self) -> Tree:
        raise NotImplementedError

    def power(self) -> Tree:
        raise NotImplementedError

    def primary(self) -> Tree:
        raise NotImplementedError

    def group(self) -> Tree:
        raise NotImplementedError

    def raw_group(self) -> str:
        """The plain letters and digits of ``{...}`` or of one token (names, subscripts)."""
        if not self.at(Kind.SYM, "{"):
            tok = self.advance()
            if tok.kind is Kind.CMD and tok.text in GREEK:
                return tok.text
            if tok.kind not in (Kind.NUM, Kind.IDENT):
                raise AnswerError(f"expected a name or number, found {tok.text!r}", tok.col)
            if self.latex and len(tok.text) > 1:  # x_12 in LaTeX is x_1 2
                self.tokens.insert(self.pos, Token(tok.kind, tok.text[1:], tok.col + 1))
                return tok.text[0]
            return tok.text
        self.advance()
        parts: list[str] = []
        while not self.at(Kind.SYM, "}"):
            tok = self.advance()
            if tok.kind in (Kind.NUM, Kind.IDENT) or (tok.kind is Kind.CMD and tok.text in GREEK):
                parts.append(tok.text)
            elif tok.kind is Kind.CMD and tok.text in STYLES | TEXT:
                parts.append(self.raw_group())
            elif tok.kind is Kind.SYM and tok.text in ",()":
                parts.append("_" if tok.text == "," else tok.text)
            else:
                raise AnswerError(
                    f"a name part holds only letters and digits, found {tok.text or 'the end'!r}",
                    tok.col,
                    "e.g. w_{1}, x^{(1)}_2, W_{2,1}",
                )
            if len(parts) > 20:
                raise AnswerError("a subscript is too long", tok.col)
        self.advance()
        return "".join(parts)

    def command(self) -> Tree:
        tok = self.advance()
        name = tok.text
        if name in ("frac", "dfrac", "tfrac"):
            num = self.group()
            return self.node(Bin(Op.DIV, num, self.group()))
        if name == "sqrt":
            if self.at(Kind.SYM, "["):
                raise self.error("only square roots are supported", "write x^{1/3} instead")
            return self.node(Call("sqrt", (self.group(),)))
        if name in STYLES:
            return self.word_or_tree(self.group_tree_or_name())
        if name in ACCENTS:
            inner = self.raw_group()
            return self.named(inner + ACCENTS[name], tok.col)
        if name in TEXT:
            word = self.raw_group()
            return self.word(word, tok.col)
        if name == "sum":
            return self.summation(tok)
        if name in ("{", "}"):
            raise AnswerError("sets are not answers", tok.col, "use ( ) for grouping")
        if name in FUNC_ALIASES and name != "sigma":
            return self.function(FUNC_ALIASES[name], tok.col)
        if name == "sigma" and (self.at(Kind.SYM, "(", "'", "[") or self.prime_ahead()):
            return self.function("sigmoid", tok.col)
        if name in GREEK:
            return self.named(name, tok.col)
        if name in ("partial", "nabla", "mathrm d", "frac d"):
            raise AnswerError(
                f"\\{name} is derivative notation, not an answer",
                tok.col,
                "write the derivative itself, e.g. (p - t) h_1^T",
            )
        raise AnswerError(
            f"unknown command \\{name}",
            tok.col,
            "supported: \\frac \\sqrt \\exp \\log \\ln \\sigma \\tanh \\sum \\cdot \\odot \\circ "
            "\\hat \\mathbf \\boldsymbol \\left( \\right) ^T ^\\top",
        )

    def group_tree_or_name(self) -> Tree:
        if self.at(Kind.SYM, "{"):
            self.advance()
            inner = self.expr()
            self.expect_sym("}")
            return inner
        return self.primary()

    def word_or_tree(self, tree: Tree) -> Tree:
        return self.subscripted(tree.id, self.tok.col) if isinstance(tree, Name) else tree

    def word(self, text: str, col: int) -> Tree:
        """An identifier: a function, a name, or (unknown, made of known letters) a product."""
        bare = text in FUNC_ALIASES and FUNC_ALIASES[text] in BARE_ARG
        called = self.at(Kind.SYM, "(", "'") or bare
        after = self.peek().text if self.at(Kind.SYM, "_") else None
        if after is not None and f"{text}_{after}" in self.known:  # log_p, a spec's name
            return self.named(text, col)
        if text in FUNC_ALIASES and text not in self.known and called:
            return self.function(FUNC_ALIASES[text], col)
        if text == "sigmoid":
            return self.function("sigmoid", col)
        return self.named(text, col)

    def named(self, base: str, col: int) -> Tree:
        return self.subscripted(base, col)

    def subscripted(self, base: str, col: int) -> Tree:
        """``base`` with ``_sub`` and ``^{(label)}`` decorations, resolved to a name."""
        sub = ""
        label = ""
        while True:
            if self.at(Kind.SYM, "_") and not sub:
                self.advance()
                whole = self.tok.text
                if self.tok.kind in (Kind.IDENT, Kind.NUM) and f"{base}_{whole}" in self.known:
                    self.advance()  # a known name with an underscore: g_W1, log_p
                    return self.node(Name(f"{base}_{whole}"))
                sub = self.raw_group()
                if f"{base}_{sub}" in self.known:  # g_{W1}
                    sub = f"_{sub}"
            elif self.at(Kind.SYM, "^") and not label and self.label_ahead():
                self.advance()
                label = self.raw_group().strip("()")
            else:
                break
        ident = base + sub + (f"^({label})" if label else "")
        return self.node(self.resolve(ident, col))

    def label_ahead(self) -> bool:
        return (
            self.peek().kind is Kind.SYM
            and self.peek().text == "{"
            and (self.peek(2).kind is Kind.SYM and self.peek(2).text == "(")
        )

    def resolve(self, ident: str, col: int) -> Tree:
        if not self.known or ident in self.known:
            return Name(ident)
        if "^(" in ident:
            base, label = ident[:-1].split("^(")
            if base.rstrip("0123456789") + label in self.known and base.isalpha():
                return Name(base + label)
        if ident.isalpha() and len(ident) > 1 and all(c in self.known for c in ident):
            tree: Tree = Name(ident[0])
            for c in ident[1:]:
                tree = self.node(Bin(Op.PRODUCT, tree, Name(c)))
            return tree
        return Name(ident)

    def function(self, func: str, col: int) -> Tree:
        prime = 0
        while self.at(Kind.SYM, "'") or self.prime_ahead():
            if self.at(Kind.SYM, "'"):
                self.advance()
            elif self.peek().kind is Kind.CMD:  # ^\prime
                self.pos += 2
            else:  # ^{\prime}
                self.pos += 3
                self.expect_sym("}")
            prime += 1
        if prime and func not in PRIMED:
            raise AnswerError(f"{func}' is not supported", col, "write the derivative out")
        if prime > MAX_PRIMES:
            raise AnswerError(
                f"at most {MAX_PRIMES} derivative marks", col, "write the higher derivative out"
            )
        arity = FUNCTIONS[func]
        if self.at(Kind.SYM, "(", "["):
            close = OPEN[self.advance().text]
            args = [self.expr()]
            while self.at(Kind.SYM, ","):
                self.advance()
                args.append(self.expr())
            self.expect_sym(close)
        elif func in BARE_ARG or self.latex:
            args = [self.unary_argument()]
        else:
            raise self.error(f"expected '(' after {func}", f"write {func}(...)")
        if len(args) != arity:
            raise AnswerError(f"{func} takes {arity} argument(s), got {len(args)}", col)
        return self.node(Call(func, tuple(args), prime))

    def prime_ahead(self) -> bool:
        """``^\\prime`` or ``^{\\prime}`` next."""
        if not self.at(Kind.SYM, "^"):
            return False
        nxt = self.peek()
        if nxt.kind is Kind.SYM and nxt.text == "{":
            nxt = self.peek(2)
        return nxt.kind is Kind.CMD and nxt.text == "prime"

    def unary_argument(self) -> Tree:
        """``\\log x^2`` is ``log(x^2)``; ``\\exp -z`` is ``exp(-z)``."""
        if self.at(Kind.SYM, "-"):
            self.advance()
            return self.node(Neg(self.unary_argument()))
        return self.power()

    def summation(self, tok: Token) -> Tree:
        """``\\sum_j body``, ``\\sum_{j=1}^{k} body``; numeric bounds unroll the sum."""
        index, lo, hi = "", None, None
        if self.at(Kind.SYM, "_"):
            self.advance()
            if self.at(Kind.SYM, "{"):
                self.advance()
                index = self.advance().text
                if self.at(Kind.SYM, "="):
                    self.advance()
                    lo = self.bound()
                self.expect_sym("}")
            else:
                index = self.advance().text
        if self.at(Kind.SYM, "^"):
            self.advance()
            if self.at(Kind.SYM, "{"):
                self.advance()
                hi = self.bound()
                self.expect_sym("}")
            else:
                hi = self.bound()
        body = self.term()
        if lo is not None and hi is not None:
            return self.unroll(index, lo, hi, body, tok.col)
        return self.node(SumOver(index or "_", body))

    def bound(self) -> int | None:
        tok = self.advance()
        if tok.kind is Kind.NUM and tok.text.isdigit():
            return int(tok.text)
        if tok.kind is Kind.IDENT or tok.kind is Kind.CMD:
            return None  # a symbolic bound: the sum runs over the whole axis
        raise AnswerError(f"a sum bound must be a number or a name, found {tok.text!r}", tok.col)

    def unroll(self, index: str, lo: int, hi: int, body: Tree, col: int) -> Tree:
        if hi - lo + 1 > MAX_UNROLL or hi < lo:
            raise AnswerError(f"a sum from {lo} to {hi} is too long to write out", col)
        terms = []
        for value in range(lo, hi + 1):
            table = {
                n.id: self.resolve(n.id[: -len(index)] + str(value), col)
                for n in walk(body)
                if isinstance(n, Name) and n.id.endswith(index) and n.id != index
            }
            table[index] = Num(value)
            terms.append(substitute(body, table))
        tree = terms[0]
        for term in terms[1:]:
            tree = self.node(Bin(Op.ADD, tree, term))
        for _ in walk(tree):
            self.node(tree)
        return tree
