"""The time budget of the SymPy cross-check works in any thread."""

from __future__ import annotations

import threading
import time

import pytest

from derive.verify.budget import OverBudget, run_with_budget
from derive.verify.report import SymbolicResult
from derive.verify.run import within_budget


def forever() -> SymbolicResult:
    while True:
        pass


def test_over_budget_is_skipped_in_the_main_thread() -> None:
    result = within_budget(forever, 0.2)
    assert result.skipped and result.ok and "budget" in result.note
    assert not within_budget(lambda: SymbolicResult(False), 30.0).skipped


def test_over_budget_is_skipped_in_another_thread() -> None:
    results: list[SymbolicResult] = []
    worker = threading.Thread(target=lambda: results.append(within_budget(forever, 0.2)))
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert results and results[0].skipped


def test_a_result_and_an_error_come_back() -> None:
    assert run_with_budget(lambda: {"x": [1.5, 2]}, 30.0) == {"x": [1.5, 2]}

    def boom() -> None:
        raise ValueError("not evaluable")

    with pytest.raises(ValueError, match="not evaluable"):
        run_with_budget(boom, 30.0)


def test_a_stuck_computation_is_stopped() -> None:
    with pytest.raises(OverBudget):  # returns at all: the sleeping child was killed
        run_with_budget(lambda: time.sleep(600), 0.2)
