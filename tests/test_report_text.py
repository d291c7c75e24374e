"""What `derive check` prints: the report tables and JSON, character for character."""

from __future__ import annotations

import json
import math

from derive.verify.report import CheckReport, FullReport, ParamResult, SmokeResult, SymbolicResult


def failing_report() -> CheckReport:
    """A failed gradient, an unmeasured one, a passing one, a float32 failure and a note."""
    params = {
        "W1": ParamResult(
            False, 0.0123, 0.5, (5, 4), 60, "worst at m=2 entry (0, 1): analytic 1", 41000.0
        ),
        "b": ParamResult(True, 1.5e-10, 3.5e-6, (5,), 15, "every entry", 0.0234),
        "gamma": ParamResult(False, math.nan, math.nan, (3,), 0, "gradient missing"),
    }
    notes = ["m=1: forward loss 1 != mean of cache['L'] = 2"]
    return CheckReport(False, params, (1, 2, 5), notes, SmokeResult(False, "loss is not finite"))


def passing_report() -> CheckReport:
    params = {"w": ParamResult(True, 1e-11, 3e-10, (), 3, "every entry", 0.9951)}
    return CheckReport(True, params, (2,), [], SmokeResult(True, "finite"), 1e-5, 1e-7, 1e-4)


FAILING_TABLE = """\
param          shape   max abs err  max rel err  allowance  verdict
-------------------------------------------------------------------
W1             (5, 4)     1.23e-02     5.00e-01   4100000%  FAIL
b              (5,)       1.50e-10     3.50e-06       2.3%  PASS
gamma          (3,)              -            -          -  FAIL
(float32 run)  -                 -            -          -  FAIL
  W1: worst at m=2 entry (0, 1): analytic 1
  gamma: gradient missing
  float32 run: loss is not finite
  note: m=1: forward loss 1 != mean of cache['L'] = 2
allowance: the worst entry's share of atol + rtol * |gradient| + rounding noise
  (eps * |loss| / h, what the central difference magnifies); PASS up to 100%
FAIL: 2/3 gradients wrong (W1, gamma); float32 run failed; 1 module-level problem(s) \
(h=1e-06, rtol=1e-06, atol=1e-08, batch sizes 1, 2, 5)"""

PASSING_TABLE = """\
param          shape  max abs err  max rel err  allowance  verdict
------------------------------------------------------------------
w              ()        1.00e-11     3.00e-10       100%  PASS
(float32 run)  -                -            -          -  PASS
allowance: the worst entry's share of atol + rtol * |gradient| + rounding noise
  (eps * |loss| / h, what the central difference magnifies); PASS up to 100%
PASS: all 1 parameter gradients agree (h=0.0001, rtol=1e-05, atol=1e-07, batch sizes 2)"""


def test_failing_table() -> None:
    assert failing_report().table() == FAILING_TABLE


def test_passing_table() -> None:
    assert passing_report().table() == PASSING_TABLE


def test_summary_names_only_what_failed() -> None:
    report = failing_report()
    report.notes = []
    report.float32 = SmokeResult(True)
    last = report.table().splitlines()[-1]
    assert last.startswith("FAIL: 2/3 gradients wrong (W1, gamma) (h=")
    report.params = {"b": report.params["b"]}
    report.notes = ["a", "b"]
    assert report.table().splitlines()[-1].startswith("FAIL: 2 module-level problem(s) (h=")


def test_check_report_json() -> None:
    data = failing_report().to_json()
    json.dumps(data)  # NaN errors are written as NaN
    assert data["float32"] == {"ok": False, "note": "loss is not finite"}
    assert set(data) == {"ok", "params", "float32"}
    assert passing_report().to_json()["ok"] is True


SYMBOLIC_FAIL = SymbolicResult(False, {"w": 0.25, "b": 1e-12}, {"B": 2, "d": 3}, "n")


def test_full_report_table_with_every_part() -> None:
    report = FullReport(passing_report(), SYMBOLIC_FAIL, SmokeResult(False, "x10: NaN"))
    assert report.table() == PASSING_TABLE + (
        "\nFAIL: large magnitudes: x10: NaN"
        "\nFAIL: direct SymPy differentiation of the expanded loss (B=2, d=3): "
        "max abs err 2.50e-01 (n)"
    )
    good = FullReport(
        passing_report(), SymbolicResult(True, {"w": 0.0}, {"B": 2}), SmokeResult(True, "fine")
    )
    assert good.table() == PASSING_TABLE + (
        "\nPASS: large magnitudes: fine"
        "\nPASS: direct SymPy differentiation of the expanded loss (B=2): max abs err 0.00e+00"
    )
    skipped = SymbolicResult(True, {}, {}, "skipped: over budget", skipped=True)
    assert FullReport(passing_report(), skipped).table() == (
        PASSING_TABLE + "\nSymPy cross-check skipped: over budget"
    )
    assert FullReport(passing_report(), None).table() == PASSING_TABLE
    no_params = FullReport(passing_report(), SymbolicResult(True, {}, {"B": 2}))
    assert no_params.table().endswith("loss (B=2): max abs err 0.00e+00")


def test_full_report_verdict_and_json() -> None:
    fine = SmokeResult(True, "fine")
    assert FullReport(passing_report(), SymbolicResult(True), fine).ok
    assert not FullReport(passing_report(), SymbolicResult(True), SmokeResult(False, "x")).ok
    assert not FullReport(passing_report(), SYMBOLIC_FAIL, fine).ok
    assert not FullReport(failing_report(), SymbolicResult(True), fine).ok
    data = FullReport(passing_report(), SYMBOLIC_FAIL, SmokeResult(False, "x10: NaN")).to_json()
    assert data["ok"] is False
    assert data["large_magnitudes"] == {"ok": False, "note": "x10: NaN"}
    assert data["symbolic"] == {
        "ok": False,
        "skipped": False,
        "sizes": {"B": 2, "d": 3},
        "max_abs_err": {"w": 0.25, "b": 1e-12},
        "note": "n",
    }
    assert data["params"] == passing_report().to_json()["params"]
    bare = FullReport(passing_report(), None).to_json()
    assert set(bare) == {"ok", "params", "float32"} and bare["ok"] is True
