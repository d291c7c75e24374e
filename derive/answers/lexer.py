"""Tokens of an answer: LaTeX as students type it, or plain math.

The text is checked before anything else: its length, its characters (an allow-list),
and wrappers (``$...$``, ``\\(...\\)``) are dropped.  Spacing commands and ``\\left`` /
``\\right`` carry no meaning and are skipped here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from derive.answers.tree import AnswerError

MAX_LENGTH = 2000

# Unicode a student may paste, written as the LaTeX it stands for.
UNICODE = {
    "σ": "\\sigma ",
    "δ": "\\delta ",
    "λ": "\\lambda ",
    "η": "\\eta ",
    "α": "\\alpha ",
    "β": "\\beta ",
    "γ": "\\gamma ",
    "μ": "\\mu ",
    "ε": "\\epsilon ",
    "⊙": "\\odot ",
    "∘": "\\circ ",
    "·": "\\cdot ",
    "⋅": "\\cdot ",
    "×": "\\times ",
    "−": "-",
    "ᵀ": "^T",
    "′": "'",
    "Σ": "\\sum ",
    "∑": "\\sum ",
}

ALLOWED_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n+-*/^_(){}[],.'=@|\\"
)

FORBIDDEN_COMMANDS = {
    "input",
    "include",
    "includeonly",
    "def",
    "edef",
    "gdef",
    "xdef",
    "let",
    "newcommand",
    "renewcommand",
    "providecommand",
    "DeclareMathOperator",
    "catcode",
    "write",
    "immediate",
    "openin",
    "openout",
    "read",
    "csname",
    "expandafter",
    "usepackage",
    "documentclass",
    "begin",
    "end",
    "verb",
    "special",
    "href",
    "url",
}

SKIPPED_COMMANDS = {
    "left",
    "right",
    "big",
    "Big",
    "bigg",
    "Bigg",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "biggl",
    "biggr",
    "displaystyle",
    "limits",
    "nolimits",
    ",",
    ";",
    ":",
    "!",
    " ",
    "quad",
    "qquad",
}


class Kind(Enum):
    NUM = "number"
    IDENT = "name"
    CMD = "command"
    SYM = "symbol"
    END = "end"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    col: int  # 1-based column in the checked text


_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<num>\d+\.\d*|\.\d+|\d+)"
    r"|(?P<ident>[A-Za-z][A-Za-z0-9]*)"
    r"|(?P<cmd>\\(?:[A-Za-z]+|[,;:! {}|]))"
    r"|(?P<sym>\*\*|[-+*/^_(){}\[\],.'=@|])"
)


def prepare(text: object) -> str:
    """The answer text after the length and character checks, wrappers dropped."""
    if not isinstance(text, str):
        raise AnswerError("an answer must be text")
    if len(text) > MAX_LENGTH:
        raise AnswerError(
            f"the answer is too long ({len(text)} characters; at most {MAX_LENGTH})",
            None,
            "write the formula itself; name parts of it with --define",
        )
    for old, new in UNICODE.items():
        text = text.replace(old, new)
    text = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(text) >= len(left) + len(right) and text.startswith(left) and text.endswith(right):
            text = text[len(left) : len(text) - len(right)].strip()
            break
    if "__" in text:
        raise AnswerError(
            "'__' is not allowed in an answer", text.index("__") + 1, "write a formula"
        )
    for index, char in enumerate(text):
        if char not in ALLOWED_CHARS:
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
            raise AnswerError(
                f"the character {shown} is not allowed in an answer",
                index + 1,
                "use letters, digits, + - * / ^ _ ( ) { } and LaTeX commands such as \\frac",
            )
    if not text:
        raise AnswerError("the answer is empty", 1, "type a formula, e.g. p - t")
    return text


def tokenize(text: str) -> list[Token]:
    """Tokens of prepared text; forbidden TeX commands are refused here."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise AnswerError(f"cannot read {text[pos]!r}", pos + 1)
        kind = match.lastgroup
        value = match.group()
        col = pos + 1
        pos = match.end()
        if kind == "space":
            continue
        if kind == "cmd":
            name = value[1:]
            if name in FORBIDDEN_COMMANDS:
                raise AnswerError(
                    f"the TeX command {value} is not allowed in an answer",
                    col,
                    "answers are formulas; file access and macro definitions are refused",
                )
            if name in SKIPPED_COMMANDS:
                continue
            tokens.append(Token(Kind.CMD, name, col))
        elif kind == "num":
            tokens.append(Token(Kind.NUM, value, col))
        elif kind == "ident":
            tokens.append(Token(Kind.IDENT, value, col))
        else:
            tokens.append(Token(Kind.SYM, value, col))
    tokens.append(Token(Kind.END, "", len(text) + 1))
    return tokens
