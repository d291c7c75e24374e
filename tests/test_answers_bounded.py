"""Symbolic work on answers runs in a child with a time and memory limit."""

from __future__ import annotations

import time

import sympy as sp

from derive.answers.bounded import run_bounded


def _slow() -> bool:
    time.sleep(30)
    return True


def _greedy() -> int:
    return len(bytearray(8 << 30))  # 8 GiB: over the child's memory limit


def test_result_comes_back() -> None:
    x = sp.Symbol("x")
    assert run_bounded(lambda: sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1) == 0) is True


def test_time_limit_gives_none() -> None:
    assert run_bounded(_slow, seconds=0.5) is None


def test_memory_limit_gives_none() -> None:
    assert run_bounded(_greedy) is None


def test_a_huge_expansion_gives_none() -> None:
    a, b, c, d = sp.symbols("a b c d")
    assert run_bounded(lambda: sp.expand((a + b + c + d) ** 100) == 0, seconds=0.5) is None
