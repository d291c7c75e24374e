"""Running a computation under a time budget, from any thread.

The computation runs in a forked child process, which inherits the caller's state (the
loaded module, the graph), so nothing but the result is pickled; the result comes back
through a pipe.  Past the budget the child is killed.  Unlike a ``SIGALRM`` timer this
works outside the main thread, and a computation stuck inside C code (SymPy, NumPy) is
stopped too.  Where ``fork`` is unavailable the computation runs in the caller, unbudgeted.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class OverBudget(Exception):
    """The computation did not finish within its budget."""


def run_with_budget(fn: Callable[[], T], seconds: float) -> T:
    """``fn()``, or :class:`OverBudget` when it takes longer than ``seconds``.

    An exception raised by ``fn`` is raised again here (as ``RuntimeError`` with the
    child's traceback when it cannot be pickled).
    """
    if seconds <= 0 or "fork" not in multiprocessing.get_all_start_methods():
        return fn()
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        try:
            send.send(("ok", fn()))
        except BaseException as err:  # reported to the parent, whatever it is
            try:
                send.send(("error", err))
            except Exception:
                send.send(("error", RuntimeError(traceback.format_exc())))

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise OverBudget
        status, value = receive.recv()
    except EOFError:  # the child died without a word (killed, out of memory)
        raise RuntimeError(f"the budgeted computation died (exit code {proc.exitcode})") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()
    if status == "error":
        raise value
    return value
