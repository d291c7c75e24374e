"""Hostile submissions: each gets a clear verdict, and nothing leaves the sandbox."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from grading_samples import GOOD

from derive.grading import sandbox, uids
from derive.grading.code import verify_code
from derive.grading.reference import load_reference
from derive.grading.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_softmax.toml"
FAST = sandbox.Limits(wall_seconds=4.0, cpu_seconds=2)

needs_bwrap = pytest.mark.skipif(
    not sandbox.bwrap_status()[0], reason=f"no bubblewrap: {sandbox.bwrap_status()[1]}"
)


@pytest.fixture(scope="module")
def ref():
    return load_reference(MLP)


@pytest.fixture(scope="module")
def cases(ref):
    return ref.cases(2, seed=1)


def run(ref, cases, tmp_path: Path, body: str, *, prelude: str = "", slot: int = 0):
    """Grade GOOD with ``body`` run first inside backward() (and ``prelude`` at import)."""
    inject = "".join(f"    {line}\n" for line in body.splitlines())
    source = prelude + GOOD.replace("    m = x.shape[0]\n", inject + "    m = x.shape[0]\n")
    path = tmp_path / "hw.py"
    path.write_text(source, encoding="utf-8")
    report = verify_code(ref, cases, path, limits=FAST, slot=slot)
    return report, report.results[0]


def uid_processes(uid: int) -> list[str]:
    out = subprocess.run(["ps", "-u", str(uid), "-o", "pid="], capture_output=True, text=True)
    return out.stdout.split()


def test_the_unchanged_submission_passes(ref, cases, tmp_path):
    assert run(ref, cases, tmp_path, "pass")[0].ok


def test_infinite_loop_times_out(ref, cases, tmp_path):
    report, r = run(ref, cases, tmp_path, "while True:\n    pass")
    assert r.verdict is Verdict.TIMED_OUT, r
    assert {g.verdict for g in report.results} == {Verdict.TIMED_OUT}


@pytest.mark.slow
def test_sleeping_forever_hits_the_wall_clock(ref, cases, tmp_path):
    _report, r = run(ref, cases, tmp_path, "import time\ntime.sleep(3600)")
    assert r.verdict is Verdict.TIMED_OUT and "no answer within 4 s" in r.detail


def test_crash_at_import(ref, cases, tmp_path):
    _report, r = run(ref, cases, tmp_path, "pass", prelude="import no_such_module\n")
    assert r.verdict is Verdict.CRASHED and "failed on import" in r.detail
    assert "ModuleNotFoundError: No module named 'no_such_module'" in r.detail


def test_segfault(ref, cases, tmp_path):
    _report, r = run(ref, cases, tmp_path, "import ctypes\nctypes.string_at(0)")
    assert r.verdict is Verdict.CRASHED and "SIGSEGV" in r.detail, r


@pytest.mark.parametrize("where", ["call", "import"])
def test_sys_exit(ref, cases, tmp_path, where):
    if where == "call":
        _report, r = run(ref, cases, tmp_path, "import sys\nsys.exit(0)")
        assert r.verdict is Verdict.CRASHED and "called sys.exit()" in r.detail
    else:
        _report, r = run(ref, cases, tmp_path, "pass", prelude="import sys\nsys.exit(3)\n")
        assert r.verdict is Verdict.CRASHED and "SystemExit: 3" in r.detail


def test_hard_exit_before_returning(ref, cases, tmp_path):
    _report, r = run(ref, cases, tmp_path, "import os\nos._exit(0)")
    assert r.verdict is Verdict.CRASHED and "exited with code 0 before returning" in r.detail


def test_gigabytes_of_output_are_cut_off(ref, cases, tmp_path):
    report, r = run(ref, cases, tmp_path, "while True:\n    print('x' * 1000000)")
    assert r.verdict is Verdict.CRASHED and "printed more than 256 KiB" in r.detail
    assert len(report.stdout) < 300_000


def test_huge_arrays_returned_are_stopped(ref, cases, tmp_path):
    _report, r = run(ref, cases, tmp_path, "return {'W1': np.zeros(10**7)}")
    assert r.verdict is Verdict.CRASHED and "returned more than 64 MiB" in r.detail, r


def test_huge_file_is_stopped(ref, cases, tmp_path):
    body = "with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * 1000000)"
    _report, r = run(ref, cases, tmp_path, body)
    assert r.verdict is Verdict.CRASHED, r
    assert "File too large" in r.detail  # RLIMIT_FSIZE (Python ignores SIGXFSZ)


def test_memory_hog_is_stopped(ref, cases, tmp_path):
    _report, r = run(ref, cases, tmp_path, "hog = bytearray(8 * 1024**3)")
    assert r.verdict is Verdict.CRASHED and "MemoryError" in r.detail


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fail-fast", "persistent"])
def test_fork_bomb_is_contained(ref, cases, tmp_path, kind):
    slot = 7
    if kind == "fail-fast":
        body = "import os\nwhile True:\n    os.fork()"
    else:
        body = (
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        )
    _report, r = run(ref, cases, tmp_path, body, slot=slot)
    assert r.verdict in (Verdict.CRASHED, Verdict.TIMED_OUT), r
    if os.getuid() == 0:  # a sandbox uid no run holds has no process left
        for k in range(slot, slot + 4):  # (the uid leased may follow the slot's when in use)
            with uids.lease(k) as leased:
                if leased == k:
                    assert uid_processes(uids.BASE_UID + k) == []
    # the next submission in the same slot is graded normally
    assert run(ref, cases, tmp_path, "pass", slot=slot)[0].ok


@needs_bwrap
def test_grader_files_and_network_are_out_of_reach(ref, cases, tmp_path):
    secret = tmp_path / "reference_answers.txt"
    secret.write_text("the answers", encoding="utf-8")
    paths = [
        str(MLP),
        str(ROOT / "derive" / "grading" / "reference.py"),
        str(ROOT / "generated" / "mlp_softmax.py"),
        str(secret),
        "/etc/passwd",
        "/etc/shadow",
        os.path.expanduser("~/.bash_history"),
        "/proc/1/environ",
    ]
    body = f"""import socket
found = []
for p in {paths!r}:
    try:
        with open(p, 'rb') as f:
            found.append((p, f.read(20)))
    except OSError:
        pass
try:
    socket.create_connection(('1.1.1.1', 53), timeout=1)
    found.append('network')
except OSError:
    pass
raise RuntimeError(f'FOUND={{found}}')"""
    _report, r = run(ref, cases, tmp_path, body)
    assert r.verdict is Verdict.CRASHED
    assert "FOUND=[]" in r.detail, r.detail


@needs_bwrap
def test_writes_outside_the_scratch_folder_vanish_or_fail(ref, cases, tmp_path):
    marker = f"derive-sandbox-marker-{os.getpid()}"
    targets = [f"/tmp/{marker}", str(tmp_path / marker), str(ROOT / marker), f"/{marker}"]
    body = f"""import os
wrote = []
for p in {targets!r}:
    try:
        with open(p, 'w') as f:
            f.write('pwned')
        wrote.append(p)
    except OSError:
        pass
try:
    os.remove('hw.py')
    wrote.append('deleted hw.py')
except OSError:
    pass
with open('scratch.txt', 'w') as f:
    f.write('fine')"""
    report, _r = run(ref, cases, tmp_path, body)
    assert report.ok  # scratch writes are allowed, the submission then computes its answer
    for t in targets:
        assert not Path(t).exists(), t
    assert (tmp_path / "hw.py").exists()


@pytest.mark.slow
def test_without_bubblewrap_the_report_says_what_protection_is_left(
    ref, cases, tmp_path, monkeypatch
):
    monkeypatch.setenv("DERIVE_SANDBOX", "none")
    sandbox.bwrap_status.cache_clear()
    try:
        assert "WARNING" in sandbox.protection() and "CAN read" in sandbox.protection()
        report, _r = run(ref, cases, tmp_path, "pass")
        assert report.ok and "WARNING" in report.isolation
        _report, r = run(ref, cases, tmp_path, "while True:\n    pass")
        assert r.verdict is Verdict.TIMED_OUT
        _report, r = run(ref, cases, tmp_path, "import derive")  # NumPy only on the path
        assert r.verdict is Verdict.CRASHED and "No module named 'derive'" in r.detail
    finally:
        monkeypatch.delenv("DERIVE_SANDBOX")
        sandbox.bwrap_status.cache_clear()
