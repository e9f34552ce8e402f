"""A kernel asked to shut down or restart commits its running turns first (ADR 195, ADR 198).

Theory of operation
- Kernel > Restart Kernel… and Shut Down Kernel send an interrupt, then a
  ``shutdown_request``; the server terminates the kernel 2.5 s later (half of
  jupyter_server's ``shutdown_wait_time``, 5 s by default) if it has not exited. ipykernel
  answers the request on its control thread, while the cells (and so the turns) run on the
  main thread's event loop, which runs on until the reply is sent.
- :func:`watch_kernel_shutdown` runs whenever a session handle is opened (``LashSession``):
  in a process where an ipykernel kernel runs, it wraps that kernel's ``do_shutdown`` once.
  So a session opened with the Python API is covered as one opened by ``%lash open``, with or
  without ``%load_ext lash_nb``. The kernel is looked up in ``sys.modules``, never imported:
  a script, a worker or a test process without a running kernel is left as it was.
- The wrapper, before the original runs, cancels every turn of the process
  (``cancel.cancel_every_turn``: a ``%%lash`` cell, a ``--background`` turn, an awaited or
  streamed API turn, a task, a drain, a ``run_sync`` turn on its loop thread) with origin
  ``kernel_shutdown`` (thread-safe), and the control thread waits, up to ``WAIT_S``, until
  no turn is left in a registry: a turn leaves it once its final commit is done. A turn that
  registers after that (a drain's next batch) is cancelled as it registers. Then the
  shutdown goes on as before.
- The turn commits ``stopped: cancelled`` with what it had streamed, as a Stop click does; a
  queued turn's batch goes back to the queue (``kernel_shutdown`` is a hand-back origin, as
  ``worker_shutdown``), since the kernel, not a person, stopped that work.
- Called on the main thread (a kernel without a control thread), it only cancels: waiting there
  would hold the loop the turns need. A turn still running after ``WAIT_S`` is left as before
  (the next open closes it ``process_lost``).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any

from .cancel import cancel_every_turn, turns_running

# jupyter_client (so jupyter_server) waits half its shutdown_wait_time (5 s) for the kernel to
# exit, then sends SIGTERM: the wait ends well before, leaving the kernel time to exit
WAIT_S = 2.0
ORIGIN = "kernel_shutdown"


def stop_running_turns(*, wait_s: float = WAIT_S) -> int:
    """Cancel every running turn of the process (origin ``kernel_shutdown``) and, off the
    main thread, wait up to ``wait_s`` for their commits, those of turns an interrupt
    cancelled just before (jupyter_client sends one ahead of the request) too. Returns how
    many this call signalled."""
    signalled = cancel_every_turn(ORIGIN)
    if threading.current_thread() is threading.main_thread():
        return signalled
    deadline = time.monotonic() + wait_s
    while turns_running() and time.monotonic() < deadline:
        time.sleep(0.02)  # the registries offer no event; a commit takes milliseconds
    return signalled


def commit_turns_at_shutdown(kernel: Any) -> bool:
    """Wrap ``kernel.do_shutdown`` so the process's turns are stopped and committed before it
    runs. False when there is no ``do_shutdown`` or it is wrapped already."""
    original = getattr(kernel, "do_shutdown", None)
    if original is None or getattr(original, "_lash_commits_turns", False):
        return False

    def do_shutdown(restart: bool) -> Any:
        with contextlib.suppress(Exception):  # a shutdown must never fail on our account
            stop_running_turns()
        return original(restart)

    do_shutdown._lash_commits_turns = True  # type: ignore[attr-defined]
    kernel.do_shutdown = do_shutdown
    return True


def running_kernel() -> Any:
    """The ipykernel kernel this process runs, or None: looked up, never imported (a process
    that has not imported ipykernel runs no kernel)."""
    app = getattr(sys.modules.get("ipykernel.kernelapp"), "IPKernelApp", None)
    try:
        if app is None or not app.initialized():
            return None
        return getattr(app.instance(), "kernel", None)
    except Exception:  # a kernel app half set up, or one we do not know: leave it alone
        return None


def watch_kernel_shutdown() -> bool:
    """In a running kernel, make its shutdown commit this process's turns first (once)."""
    kernel = running_kernel()
    return kernel is not None and commit_turns_at_shutdown(kernel)


__all__ = ["commit_turns_at_shutdown", "running_kernel", "stop_running_turns",
           "watch_kernel_shutdown"]
