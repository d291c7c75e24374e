"""Caps on an answer's size, checked while it is read, before any SymPy work.

``MAX_NODES`` parts, ``MAX_DEPTH`` levels of nesting, numbers below ``MAX_INT`` (15 digits),
constant exponents at most ``MAX_EXPONENT`` in size and constant powers below
``10**MAX_DIGITS``; a sum with numeric bounds is written out only up to ``MAX_UNROLL`` terms;
a function takes at most ``MAX_PRIMES`` derivative marks (``f''(z)`` is two).
``10^{10^{10}}`` is refused here without computing anything: :func:`magnitude` bounds
``log10 |value|`` of a constant tree.
"""

from __future__ import annotations

import math

from derive.answers.lexer import Token
from derive.answers.tree import AnswerError, Bin, Call, Neg, Num, Op, Transpose, Tree

MAX_NODES = 500
MAX_DEPTH = 60
MAX_INT = 10**15
MAX_EXPONENT = 100
MAX_DIGITS = 300
MAX_UNROLL = 50
MAX_PRIMES = 3


def number(tok: Token) -> int | float:
    text = tok.text
    if "." in text:
        if len(text) > 30:
            raise AnswerError("the number has too many digits", tok.col)
        if text.strip(".") == "" or text.count(".") > 1:
            raise AnswerError(f"'{text}' is not a number", tok.col, "write digits around the point")
        return float(text)
    if len(text) > 15:
        raise AnswerError(f"the number {text[:8]}... is too large", tok.col, "at most 15 digits")
    value = int(text)
    if value >= MAX_INT:
        raise AnswerError("the number is too large", tok.col, "at most 15 digits")
    return value


def magnitude(tree: Tree) -> float | None:
    """An upper bound of ``log10 |value|`` for a constant tree, None when it has names."""
    if isinstance(tree, Num):
        return math.log10(abs(tree.value)) if tree.value else -math.inf
    if isinstance(tree, Neg | Transpose):
        return magnitude(tree.operand)
    if isinstance(tree, Bin):
        a, b = magnitude(tree.left), magnitude(tree.right)
        if a is None or b is None:
            return None
        if tree.op in (Op.ADD, Op.SUB):
            return max(a, b) + math.log10(2)
        if tree.op is Op.POW:
            return a * 10**b if a > 0 else max(a, 0.0)
        return a + b if tree.op is not Op.DIV else math.inf  # a quotient may be huge
    if isinstance(tree, Call):
        args = [magnitude(a) for a in tree.args]
        if any(a is None for a in args):
            return None
        if tree.func in ("sigmoid", "tanh"):
            return 0.0
        if tree.func == "exp":
            return 10 ** min(args[0], 300.0) * math.log10(math.e)
        return max(args) if args else 0.0
    return None


def check_power(base: Tree, exponent: Tree, col: int) -> None:
    """Refuse constant exponents above ``MAX_EXPONENT`` and constant powers too large to hold."""
    e = magnitude(exponent)
    if e is None:
        return
    if e > math.log10(MAX_EXPONENT):
        raise AnswerError(
            f"the exponent is too large (a constant exponent may be at most {MAX_EXPONENT})",
            col,
            "use a small exponent, e.g. x^2",
        )
    b = magnitude(base)
    if b is not None and b * 10**e > MAX_DIGITS:
        raise AnswerError("the power is too large to compute", col, "use a smaller number")
