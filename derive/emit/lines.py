"""One assignment of emitted code: target, printed code, and the math it came from."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import sympy as sp

from derive.emit.layout import layout
from derive.graph.nodes import Node


@dataclass
class Line:
    """One assignment of the emitted code, with its math and shape for the reader."""

    target: str
    code: str
    math: str = ""
    shape: str = ""
    expr: sp.Expr | None = field(default=None, repr=False, compare=False)
    node: Node | None = field(default=None, repr=False, compare=False)
    op: str = "="  # "+=" adds into the array the line before made

    def source(self, indent: str = "    ", width: int = 100) -> list[str]:
        """The assignment as source lines: math as comments, long code broken as ruff does."""
        out = [f"{indent}# {part}" for part in wrap(self.math, width - len(indent) - 2)]
        tail = f"  # {self.shape}" if self.shape else ""
        first = f"{indent}{self.target} {self.op} {self.code}{tail}"
        if len(first) <= width:
            return [*out, first]
        out.append(f"{indent}{self.target} {self.op} ({tail}")
        out += layout(self.code, f"{indent}    ", width)
        out.append(f"{indent})")
        return out


def wrap(text: str, width: int) -> list[str]:
    """Math text broken at spaces into lines of at most ``width`` characters."""
    if not text:
        return []
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
