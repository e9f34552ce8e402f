"""A kernel asked to shut down or restart commits its running turns first (ADR 195).

Theory of operation
- Kernel > Restart Kernel… and Shut Down Kernel send a ``shutdown_request``; the server kills
  the kernel a few seconds later (jupyter_server's ``shutdown_wait_time``, 5 s by default) if
  it has not exited. ipykernel answers the request on its control thread, while the cells (and
  so the turns) run on the main thread's event loop, which runs on until the reply is sent.
- :func:`commit_turns_at_shutdown` wraps the kernel's ``do_shutdown``: before the original
  runs, every turn of the notebook's open sessions (a ``%%lash`` cell, a ``--background``
  turn, a drain) is cancelled with origin ``kernel_shutdown`` (thread-safe), and the control
  thread waits, up to ``WAIT_S``, until each session's turn registry is empty: a turn leaves it
  once its final commit is done. Then the shutdown goes on as before.
- The turn commits ``stopped: cancelled`` with what it had streamed, as a Stop click does; a
  queued turn's batch goes back to the queue (``kernel_shutdown`` is a hand-back origin, as
  ``worker_shutdown``), since the kernel, not a person, stopped that work.
- Called on the main thread (a kernel without a control thread), it only cancels: waiting there
  would hold the loop the turns need. A turn still running after ``WAIT_S`` is left as before
  (the next open closes it ``process_lost``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

WAIT_S = 3.0  # under jupyter_server's 5 s shutdown_wait_time, leaving the kernel time to exit
ORIGIN = "kernel_shutdown"


def stop_running_turns(sessions: list[Any], *, wait_s: float = WAIT_S) -> int:
    """Cancel every running turn of ``sessions`` (origin ``kernel_shutdown``) and, off the
    main thread, wait up to ``wait_s`` for their commits. Returns how many were signalled."""
    signalled = 0
    for session in sessions:
        with contextlib.suppress(Exception):
            signalled += session.cancel_running_turns(ORIGIN, None)
    if not signalled or threading.current_thread() is threading.main_thread():
        return signalled
    deadline = time.monotonic() + wait_s
    while any(len(s.cancels) for s in sessions) and time.monotonic() < deadline:
        time.sleep(0.02)  # the registry offers no event; a commit takes milliseconds
    return signalled


def commit_turns_at_shutdown(kernel: Any, sessions: Any) -> bool:
    """Wrap ``kernel.do_shutdown`` so the turns of ``sessions()`` (a callable returning the
    open sessions) are stopped and committed before it runs. False when there is no kernel or
    it is wrapped already."""
    original = getattr(kernel, "do_shutdown", None)
    if original is None or getattr(original, "_lash_commits_turns", False):
        return False

    def do_shutdown(restart: bool) -> Any:
        with contextlib.suppress(Exception):  # a shutdown must never fail on our account
            stop_running_turns(list(sessions()))
        return original(restart)

    do_shutdown._lash_commits_turns = True  # type: ignore[attr-defined]
    kernel.do_shutdown = do_shutdown
    return True
