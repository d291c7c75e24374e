"""bubblewrap: is it usable here, and the command line that isolates a submission.

See :mod:`derive.grading.sandbox` for what the sandbox gives and withholds.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin")
IN_DIR = "/in"
WORK_DIR = "/sandbox"
SETPRIV = "/usr/bin/setpriv"
LIB_DIR = "/pylib"  # NumPy (made 0755 first: bwrap as root makes new parent folders 0700)
PY_DIR = "/python"  # the interpreter's installation when outside the system folders


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
        argv = [*bwrap_argv(exe, Path(tmp), Path(tmp), 1 << 20, 61000), "/bin/true"]
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
        "group, and CAN read (and, without a uid of their own, write) the grader's files and "
        "use the network "
        "(install bubblewrap: apt-get install bubblewrap)"
    )


def python_binds() -> list[tuple[str, str]]:
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


def numpy_only(folder: Path) -> str:
    """``folder`` with links to NumPy alone, the runner's path when there is no sandbox (so
    that the grader's other packages, derive included, are not importable from submissions)."""
    folder.mkdir()
    for host, inside in python_binds():
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


def bwrap_argv(exe: str, in_dir: Path, files_dir: Path, tmpfs_bytes: int, uid: int) -> list[str]:
    """bwrap options: namespaces, read-only system and Python, /in, a tmpfs /sandbox.

    As an ordinary user bwrap makes a user namespace (``--unshare-all``). As root it makes
    every other namespace, keeps only the capabilities to change uid, and starts the command
    through ``setpriv`` as ``uid`` with no capabilities and
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
    for host, inside in python_binds():
        argv += ["--ro-bind", host, inside]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for d in ("/tmp", WORK_DIR):
        argv += ["--perms", "1777", "--size", str(tmpfs_bytes), "--tmpfs", d]
    argv += ["--ro-bind", str(in_dir), IN_DIR]
    for f in sorted(files_dir.iterdir()):
        argv += ["--ro-bind", str(f), f"{WORK_DIR}/{f.name}"]
    argv += ["--chdir", WORK_DIR, "--setenv", "HOME", WORK_DIR, "--"]
    if root:
        argv += [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        argv += ["--no-new-privs", "--"]
    return argv


def _world_reachable(path: Path) -> bool:
    """Can any user reach ``path`` (o+x on every folder above it, o+r on it)?"""
    path = path.resolve()
    return all(os.stat(p).st_mode & 0o001 for p in path.parents) and bool(
        os.stat(path).st_mode & 0o004
    )


def can_drop() -> bool:
    """Without bwrap, may a root grader run the submission as another uid (Python reachable)?"""
    import numpy

    return _world_reachable(Path(python_executable())) and _world_reachable(Path(numpy.__file__))
