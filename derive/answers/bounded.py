"""Run symbolic work on an answer in a forked child with a time and memory limit.

Why a child process: even with the reader's caps, SymPy's ``simplify`` or ``expand``
can take unbounded time or memory on a small input (``(a + b + c + d)^{100}``); a
signal-based timeout works only on the main thread (not in the page's request threads)
and cannot interrupt long integer arithmetic.  A forked child shares the loaded SymPy
(no start-up cost), gets ``RLIMIT_AS`` / ``RLIMIT_CPU`` limits and is killed at the
deadline; the caller then falls back to numeric judging.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
from collections.abc import Callable
from typing import Any

SECONDS = 3.0
EXTRA_MEMORY = 1 << 30  # bytes the child may allocate beyond what it inherits


def _child(conn: Any, fn: Callable[..., Any], args: tuple) -> None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
        limit = pages * resource.getpagesize() + EXTRA_MEMORY
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError):  # no /proc (not Linux): the time limit still holds
        pass
    cpu = int(SECONDS) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as err:  # any failure means "undecided"
        conn.send(("error", type(err).__name__))
    finally:
        conn.close()


def run_bounded(fn: Callable[..., Any], *args: Any, seconds: float = SECONDS) -> Any:
    """``fn(*args)`` computed in a child process, or None if it fails or runs out of time."""
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    proc.start()
    send.close()
    try:
        if receive.poll(seconds):
            status, value = receive.recv()
            return value if status == "ok" else None
        return None
    except (EOFError, OSError):
        return None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()
