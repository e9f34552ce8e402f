"""Who cancelled the task that awaited a turn: the kernel's interrupt, or code (ADR 212).

A turn awaited by a cancelled task is committed ``stopped: cancelled``; its cancellation
origin says who stopped it. The task's ``CancelledError`` does not say why it came, so:

- :func:`run_sync <lash_nb._runtime.sync.run_sync>` turns a ``KeyboardInterrupt`` (Ctrl-C in a
  script, the kernel's interrupt of a cell that waits in ``run_sync``) into a cancel of its
  task with the message :data:`INTERRUPT`; the error's first argument carries it.
- In a running ipykernel, a cell's ``await`` is cancelled by the kernel's interrupt through
  ipykernel's ``_cancel_on_sigint``: while the cell runs, SIGINT's handler is that context
  manager's ``handle_sigint``, and its ``sigint_future`` holds a result once the interrupt came.
  :func:`kernel_interrupted` reads it. This is ipykernel's private code (6.29 to 7.4 alike);
  anything unexpected reads as "not interrupted", so the origin stays ``asyncio``, as before.
- Anything else (``asyncio.wait_for``, ``asyncio.timeout``, a task cancelled by code) stays
  ``asyncio``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

INTERRUPT = "lash_nb:kernel_interrupt"  # the cancel message of an interrupted wait
ORIGIN = "kernel_interrupt"


def cancel_origin(err: asyncio.CancelledError, default: str) -> str:
    """The origin to record for a turn whose awaiting task got ``err``."""
    if err.args and err.args[0] == INTERRUPT:
        return ORIGIN
    return ORIGIN if kernel_interrupted() else default


def kernel_interrupted() -> bool:
    """True while a cell of a running ipykernel, on its main thread, has been interrupted."""
    if "ipykernel" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return False
    try:
        handler = signal.getsignal(signal.SIGINT)
        name = getattr(handler, "__qualname__", "")
        if not name.endswith("_cancel_on_sigint.<locals>.handle_sigint"):
            return False
        code, cells = handler.__code__, handler.__closure__ or ()  # type: ignore[union-attr]
        future = dict(zip(code.co_freevars, cells, strict=False))["sigint_future"].cell_contents
        return bool(future.done() and not future.cancelled())
    except Exception:  # another ipykernel's layout: say nothing rather than guess
        return False


__all__ = ["INTERRUPT", "cancel_origin", "kernel_interrupted"]
