"""Unprivileged uids for sandboxes when the grader runs as root.

Each run leases a uid of its own (an exclusive lock on a file), so that the process limit,
which the kernel counts per uid, never counts another submission's processes, and the
cleanup after a run (every process of that uid killed) never touches another run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
import time
from pathlib import Path

BASE_UID = 61000  # uids used for sandboxes when the grader runs as root: BASE_UID + slot
UID_SLOTS = 512  # how many such uids there are; each is leased by one run at a time
LEASE_DIR = Path(tempfile.gettempdir()) / "derive-sandbox-uids"


@contextlib.contextmanager
def lease(slot: int):
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


def uid_pids(uid: int) -> list[int]:
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


def kill_uid(uid: int, wait: float = 10.0) -> None:
    """Kill every process of a slot's uid and wait until they are gone (a fork bomb's heirs
    would otherwise count against the next submission's process limit in that slot)."""
    deadline = time.monotonic() + wait
    while (pids := uid_pids(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def own_process_count() -> int:
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


def chown_tree(root: Path, uid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)
    os.chmod(root.parent, 0o755)
