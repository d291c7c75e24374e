"""Run untrusted Python in a separate process under bubblewrap, with resource limits.

What the untrusted process gets, with bubblewrap (``bwrap``):

- new namespaces for everything (``--unshare-all``): no network, its own PID space, so that
  killing the sandbox kills every process it started (``--die-with-parent``, ``--new-session``);
- read-only binds of the system folders (/usr, /bin, /lib, /lib64), of the Python installation
  and of NumPy alone (no other package of the grader); nothing else of the host: no /etc, no
  home folder, no grader files, no reference module;
- ``/in`` (read-only): the runner script and its inputs; ``/sandbox`` (its working folder) a
  size-capped tmpfs holding a copy of the submission's files; ``/tmp`` likewise;
- an unprivileged uid when the grader runs as root (one uid per parallel slot, so that the
  process limit of one submission never counts another's processes).

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
import fcntl
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin")
BASE_UID = 61000  # uids used for sandboxes when the grader runs as root: BASE_UID + slot
UID_SLOTS = 512  # how many such uids there are; each is leased by one run at a time
LEASE_DIR = Path(tempfile.gettempdir()) / "derive-sandbox-uids"
IN_DIR = "/in"
WORK_DIR = "/sandbox"
SETPRIV = "/usr/bin/setpriv"
LIB_DIR = "/pylib"  # NumPy (made 0755 first: bwrap as root makes new parent folders 0700)
PY_DIR = "/python"  # the interpreter's installation when outside the system folders


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
    notes: list[str] = field(default_factory=list)

    @property
    def signal_name(self) -> str | None:
        """``SIGSEGV`` etc. when the process died of a signal."""
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


@functools.cache
def bwrap_status() -> tuple[bool, str]:
    """(usable, explanation): is bubblewrap installed and does a trivial sandbox start here?"""
    if os.environ.get("DERIVE_SANDBOX") == "none":
        return False, "bubblewrap disabled by DERIVE_SANDBOX=none"
    exe = shutil.which("bwrap")
    if exe is None:
        return False, "bubblewrap (bwrap) is not installed"
    if os.getuid() == 0 and not Path(SETPRIV).is_file():
        return False, f"{SETPRIV} (util-linux) is missing"
    with tempfile.TemporaryDirectory(prefix="derive-probe-") as tmp:
        os.chmod(tmp, 0o755)
        argv = [*_bwrap_argv(exe, Path(tmp), Path(tmp), Limits(), 0), "/bin/true"]
        try:
            probe = subprocess.run(argv, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"bubblewrap failed to start ({err})"
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip().splitlines()
        return False, f"bubblewrap failed to start ({why[-1] if why else probe.returncode})"
    return True, "bubblewrap"


def protection() -> str:
    """One sentence on what protects the grader from submissions on this machine."""
    ok, why = bwrap_status()
    limits = "CPU, memory, file-size, process and output limits, a wall-clock timeout"
    if ok:
        return f"sandbox: bubblewrap (no network, read-only system, no grader files) + {limits}"
    return (
        f"sandbox: WARNING {why}; submissions run only with {limits} and a separate process "
        "group, and CAN read files the grader can read and use the network "
        "(install bubblewrap: apt-get install bubblewrap)"
    )


def _python_binds() -> list[tuple[str, str]]:
    """(host path, sandbox path) pairs: the interpreter's installation and NumPy alone."""
    import numpy

    binds = []
    prefix = _outside_prefix()
    if prefix is not None:
        binds.append((str(prefix), PY_DIR))
    pkg = Path(numpy.__file__).resolve().parent
    binds.append((str(pkg), f"{LIB_DIR}/numpy"))
    libs = pkg.parent / "numpy.libs"
    if libs.is_dir():
        binds.append((str(libs), f"{LIB_DIR}/numpy.libs"))
    return binds


def _numpy_only(folder: Path) -> str:
    """``folder`` with links to NumPy alone, the runner's path when there is no sandbox (so
    that the grader's other packages, derive included, are not importable from submissions)."""
    folder.mkdir()
    for host, inside in _python_binds():
        if inside.startswith(f"{LIB_DIR}/"):
            (folder / inside.rsplit("/", 1)[1]).symlink_to(host, target_is_directory=True)
    return str(folder)


def _outside_prefix() -> Path | None:
    """The interpreter's installation when it is not under a system folder (pyenv, conda)."""
    prefix = Path(sys.base_prefix).resolve()
    if any(prefix.is_relative_to(d) for d in SYSTEM_DIRS):
        return None
    return prefix


def python_executable(inside: bool = False) -> str:
    """The real interpreter (a venv's ``bin/python`` is a symlink the sandbox cannot see).

    ``inside``: its path as the sandbox sees it (under ``PY_DIR`` when bound there).
    """
    exe = Path(sys.executable).resolve()
    prefix = _outside_prefix()
    if inside and prefix is not None and exe.is_relative_to(prefix):
        return f"{PY_DIR}/{exe.relative_to(prefix).as_posix()}"
    return str(exe)


def _bwrap_argv(exe: str, in_dir: Path, files_dir: Path, limits: Limits, slot: int) -> list[str]:
    """bwrap options: namespaces, read-only system and Python, /in, a tmpfs /sandbox.

    As an ordinary user bwrap makes a user namespace (``--unshare-all``). As root it makes
    every other namespace, keeps only the capabilities to change uid, and starts the command
    through ``setpriv`` as the unprivileged uid of ``slot`` with no capabilities and
    ``no_new_privs``: a real uid other than root, so that the process limit is enforced.
    """
    root = os.getuid() == 0
    argv = [exe, "--die-with-parent", "--new-session"]
    if root:
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--cap-drop", "ALL"]
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-all"]
    for d in SYSTEM_DIRS:
        if Path(d).exists():
            argv += ["--ro-bind", d, d]
    argv += ["--perms", "0755", "--dir", LIB_DIR]
    for host, inside in _python_binds():
        argv += ["--ro-bind", host, inside]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for d in ("/tmp", WORK_DIR):
        argv += ["--perms", "1777", "--size", str(limits.tmpfs_bytes), "--tmpfs", d]
    argv += ["--ro-bind", str(in_dir), IN_DIR]
    for f in sorted(files_dir.iterdir()):
        argv += ["--ro-bind", str(f), f"{WORK_DIR}/{f.name}"]
    argv += ["--chdir", WORK_DIR, "--setenv", "HOME", WORK_DIR, "--"]
    if root:
        uid = str(BASE_UID + slot)
        argv += [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        argv += ["--no-new-privs", "--"]
    return argv


def _world_reachable(path: Path) -> bool:
    """Can any user reach ``path`` (o+x on every folder above it, o+r on it)?"""
    path = path.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in path.parents) and bool(
        os.stat(path).st_mode & 0o004
    )


def _can_drop() -> bool:
    """Without bwrap, may a root grader run the submission as another uid (Python reachable)?"""
    import numpy

    return _world_reachable(Path(python_executable())) and _world_reachable(Path(numpy.__file__))


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
            nproc += _own_process_count()
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if drop_uid:
            uid = BASE_UID + slot
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return pre


def _own_process_count() -> int:
    """Processes and threads of the current user (Linux /proc; 0 where unknown)."""
    uid, n = os.getuid(), 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        n += len(os.listdir(f"/proc/{entry.name}/task"))
                except OSError:
                    continue
    except OSError:
        return 0
    return n


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
    with _uid_lease(slot) as slot:
        return _run_python(script, in_dir, files_dir, limits, slot, env)


@contextlib.contextmanager
def _uid_lease(slot: int):
    """As root: a slot whose uid no other run on this machine uses (an exclusive file lock,
    so that two graders, or two test runs, never share processes, limits or cleanup)."""
    if os.getuid() != 0:
        yield slot
        return
    LEASE_DIR.mkdir(mode=0o700, exist_ok=True)
    for k in range(UID_SLOTS):
        candidate = (slot + k) % UID_SLOTS
        fd = os.open(LEASE_DIR / f"{candidate}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            yield candidate
        finally:
            os.close(fd)  # releases the lock
        return
    raise RuntimeError(f"all {UID_SLOTS} sandbox uids are in use")


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
            cmd = _bwrap_argv(exe, in_dir, files_dir, limits, slot)
            cmd += [python_executable(inside=True), "-I", "-S", f"{IN_DIR}/{script}"]
            base_env.update(DERIVE_IN=IN_DIR, DERIVE_LIB=LIB_DIR, HOME=WORK_DIR)
            cwd, drop, isolation = None, False, "bubblewrap"
        else:
            work = Path(tmp) / "work"
            shutil.copytree(files_dir, work, symlinks=True)
            drop = os.getuid() == 0 and _can_drop()
            if drop:
                _chown_tree(work, BASE_UID + slot)
            os.chmod(tmp, 0o755)
            lib = _numpy_only(Path(tmp) / "lib")
            base_env.update(DERIVE_IN=str(in_dir), DERIVE_LIB=lib, HOME=str(work))
            cmd = [python_executable(), "-I", "-S", str(in_dir / script)]
            cwd = str(work)
            isolation = f"no bubblewrap ({why}): process and resource limits only"
            if os.getuid() == 0 and not drop:
                isolation += "; runs as root, so the process-count limit is not enforced"
        return _execute(
            cmd, cwd=cwd, env=base_env, limits=limits, slot=slot, drop=drop, isolation=isolation
        )


def _chown_tree(root: Path, uid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)
    os.chmod(root.parent, 0o755)


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
        _kill_uid(BASE_UID + slot)  # the slot is clean before the next submission uses it
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
    )


def _uid_pids(uid: int) -> list[int]:
    """Processes whose real uid is ``uid`` (from /proc)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except (OSError, ValueError):
            continue
    return pids


def _kill_uid(uid: int, wait: float = 10.0) -> None:
    """Kill every process of a slot's uid and wait until they are gone (a fork bomb's heirs
    would otherwise count against the next submission's process limit in that slot)."""
    deadline = time.monotonic() + wait
    while (pids := _uid_pids(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
