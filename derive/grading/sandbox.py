"""Run untrusted Python in a separate process under bubblewrap, with resource limits.

What the untrusted process gets, with bubblewrap (``bwrap``):

- new namespaces (``--unshare-all``; as root all but the user namespace): no network, its own
  PID space, so that killing the sandbox kills every process it started
  (``--die-with-parent``, ``--new-session``);
- read-only binds of the system folders (/usr, /bin, /lib, /lib64), of the Python installation
  and of NumPy alone (no other package of the grader); nothing else of the host: no /etc, no
  home folder, no grader files, no reference module;
- ``/in`` (read-only): the runner script and its inputs; ``/sandbox`` (its working folder) a
  size-capped tmpfs with the submission's files bound read-only into it; ``/tmp`` likewise;
- when the grader runs as root, an unprivileged uid leased for this run alone
  (:mod:`derive.grading.uids`), no capabilities and ``no_new_privs``.

On top of that, always, ``setrlimit`` in the child: CPU seconds, address space, size of any one
file written, number of processes, open files, no core dumps; a wall-clock timeout that kills
the whole process group; stdout and stderr read through pipes and capped (past the cap the
sandbox is killed). Results come back over a dedicated pipe as an ``.npz`` archive, which the
grader reads with ``allow_pickle=False``: nothing the submission produces is ever unpickled or
executed on the grader's side.

Without a working bwrap (missing, or refused by the kernel as in many containers) the same
process and resource limits apply but the submission can read whatever the grader's user can
read and can reach the network; :func:`protection` says so in words, and reports show it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from derive.grading.bwrap import (
    IN_DIR,
    LIB_DIR,
    WORK_DIR,
    bwrap_argv,
    bwrap_status,
    can_drop,
    numpy_only,
    protection,
    python_executable,
)
from derive.grading.uids import BASE_UID, chown_tree, kill_uid, lease, own_process_count

__all__ = ["BASE_UID", "Limits", "RunResult", "Status", "bwrap_status", "protection", "run_python"]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed run."""

    wall_seconds: float = 20.0
    cpu_seconds: int = 20
    memory_bytes: int = 2 << 30  # address space
    file_bytes: int = 16 << 20  # any one file written
    tmpfs_bytes: int = 64 << 20  # /sandbox and /tmp
    processes: int = 32
    output_bytes: int = 256 << 10  # stdout + stderr kept and allowed
    result_bytes: int = 64 << 20  # the result archive


class Status(enum.Enum):
    """How the sandboxed process ended."""

    EXITED = "exited"  # ran to the end (any exit code)
    SIGNALED = "signaled"  # killed by a signal it raised or the kernel sent (segfault, CPU limit)
    TIMED_OUT = "timed out"  # wall-clock limit reached; killed by the grader
    OUTPUT_LIMIT = "output limit"  # printed more than allowed; killed by the grader
    FAILED_TO_START = "failed to start"


@dataclass
class RunResult:
    """Outcome of :func:`run`: status, exit code or signal, captured output and result bytes."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    result: bytes
    seconds: float
    isolation: str
    notes: list[str] = field(default_factory=list)  # OUTPUT_LIMIT: "output" or "result"

    @property
    def signal_name(self) -> str | None:
        """``SIGSEGV`` etc. when the process died of a signal."""
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


def _limit(limits: Limits, slot: int, drop_uid: bool):
    """A preexec function: rlimits, then (root, no bwrap) the unprivileged uid of ``slot``."""

    def pre() -> None:
        cpu, mem = limits.cpu_seconds, limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        nproc = limits.processes
        if os.getuid() != 0:  # the limit counts all of this user's processes, not just ours
            nproc += own_process_count()
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if drop_uid:
            uid = BASE_UID + slot
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return pre


class _Capped:
    """Reads a pipe to its end in a thread, keeping at most ``cap`` bytes."""

    def __init__(self, stream, cap: int, on_overflow) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = False
        self._thread = threading.Thread(
            target=self._pump, args=(stream, cap, on_overflow), daemon=True
        )
        self._thread.start()

    def _pump(self, stream, cap: int, on_overflow) -> None:
        while chunk := stream.read(65536):
            if self.size + len(chunk) > cap:
                self.chunks.append(chunk[: cap - self.size])
                self.size = cap
                if not self.overflow:
                    self.overflow = True
                    on_overflow()
                continue  # keep draining so the writer never blocks on a full pipe
            self.chunks.append(chunk)
            self.size += len(chunk)
        stream.close()

    def data(self) -> bytes:
        self._thread.join(timeout=5)
        return b"".join(self.chunks)


def run_python(
    script: str,
    *,
    in_dir: Path,
    files_dir: Path,
    limits: Limits = Limits(),
    slot: int = 0,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run ``in_dir/script`` with Python and NumPy, ``files_dir``'s files in its cwd.

    ``in_dir`` becomes read-only ``/in``; the files of ``files_dir`` appear read-only in the
    working folder ``/sandbox``. File descriptor 3 of the child is a pipe whose contents come
    back as ``RunResult.result``. Without bwrap the command runs in a temporary copy of
    ``files_dir`` with ``in_dir``'s files beside it, under the same limits.
    """
    with lease(slot) as slot:
        return _run_python(script, in_dir, files_dir, limits, slot, env)


def _run_python(
    script: str,
    in_dir: Path,
    files_dir: Path,
    limits: Limits,
    slot: int,
    env: Mapping[str, str] | None,
) -> RunResult:
    use_bwrap, why = bwrap_status()
    base_env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **(env or {}),
    }
    with tempfile.TemporaryDirectory(prefix="derive-sandbox-") as tmp:
        if use_bwrap:
            os.chmod(in_dir, 0o755)
            exe = shutil.which("bwrap") or "bwrap"
            cmd = bwrap_argv(exe, in_dir, files_dir, limits.tmpfs_bytes, BASE_UID + slot)
            cmd += [python_executable(inside=True), "-I", "-S", f"{IN_DIR}/{script}"]
            base_env.update(DERIVE_IN=IN_DIR, DERIVE_LIB=LIB_DIR, HOME=WORK_DIR)
            cwd, drop, isolation = None, False, "bubblewrap"
        else:
            work = Path(tmp) / "work"
            shutil.copytree(files_dir, work, symlinks=True)
            drop = os.getuid() == 0 and can_drop()
            if drop:
                chown_tree(work, BASE_UID + slot)
            os.chmod(tmp, 0o755)
            lib = numpy_only(Path(tmp) / "lib")
            base_env.update(DERIVE_IN=str(in_dir), DERIVE_LIB=lib, HOME=str(work))
            cmd = [python_executable(), "-I", "-S", str(in_dir / script)]
            cwd = str(work)
            isolation = f"no bubblewrap ({why}): process and resource limits only"
            if os.getuid() == 0 and not drop:
                isolation += "; runs as root, so the process-count limit is not enforced"
        return _execute(
            cmd, cwd=cwd, env=base_env, limits=limits, slot=slot, drop=drop, isolation=isolation
        )


def _execute(
    argv: list[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    limits: Limits,
    slot: int,
    drop: bool,
    isolation: str,
) -> RunResult:
    """Start, watch the clock and the output caps, kill the process group when needed."""
    read_fd, write_fd = os.pipe()
    env = {**env, "DERIVE_RESULT_FD": str(write_fd)}  # the runner writes its results there
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            preexec_fn=_limit(limits, slot, drop),
            start_new_session=True,
        )
    except OSError as err:
        os.close(read_fd)
        os.close(write_fd)
        return RunResult(Status.FAILED_TO_START, None, "", str(err), b"", 0.0, isolation)
    os.close(write_fd)
    flooded = threading.Event()

    def kill() -> None:
        flooded.set()
        _kill_group(proc)

    out = _Capped(proc.stdout, limits.output_bytes, kill)
    err = _Capped(proc.stderr, limits.output_bytes, kill)
    res = _Capped(os.fdopen(read_fd, "rb"), limits.result_bytes, kill)
    timed_out = False
    try:
        proc.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    _kill_group(proc)  # leftovers of a process that exited but left children
    if drop or (os.getuid() == 0 and isolation == "bubblewrap"):
        kill_uid(BASE_UID + slot)  # the slot is clean before the next submission uses it
    bwrapped = isolation == "bubblewrap"
    seconds = time.monotonic() - start
    stdout, stderr, result = out.data(), err.data(), res.data()
    code = proc.returncode
    if bwrapped and 128 < code < 128 + 65:  # bwrap exits 128 + N when its child died of N
        code = 128 - code
    if timed_out:
        status = Status.TIMED_OUT
    elif flooded.is_set():
        status = Status.OUTPUT_LIMIT
    elif code < 0:
        status = Status.SIGNALED
    else:
        status = Status.EXITED
    return RunResult(
        status,
        code,
        stdout.decode("utf-8", errors="replace"),
        stderr.decode("utf-8", errors="replace"),
        result,
        seconds,
        isolation,
        ["result"] if res.overflow else ["output"] if flooded.is_set() else [],
    )


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
