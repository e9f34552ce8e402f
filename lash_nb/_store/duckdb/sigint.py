"""Ctrl-C and a blocking store call: held while a commit runs on the main thread
(``worker.run_here``), answered at once while a caller waits for a store job.

A blocking call from the main thread (``store.query``, ``DuckDBStore(path)`` opening a file
another process holds) waits for a job of the store's thread: DuckDB running a statement on
the main thread does not stop for Ctrl-C (a kernel's interrupt was sat out), a wait does.
The handler a process set may not raise (an awaiting kernel cell's, ipykernel >= 7.4, only
schedules a cancel of the cell's task, which the event loop sees after the call), so the
wait runs under :class:`sigint_raises` (``KeyboardInterrupt``, as Python's default handler
does) in :func:`result_unless_interrupted`: the job is asked to stop (its statement
interrupted, its wait for the file ended) until it is over, then the caller raises
:class:`~lash_nb._errors.StoreInterrupted`. Nothing stored changes: a user query only reads,
in a transaction that is rolled back; an open that did not finish wrote nothing.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal without its enum wrapping
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from typing import Any, TypeVar

T = TypeVar("T")


def _main_thread_handler() -> Any:
    """SIGINT's handler as Python reads it, on the main thread; None elsewhere, unreadable,
    or not set from Python."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return _signal.getsignal(_signal.SIGINT)
    except (ValueError, OSError):
        return None


class sigint_held:
    """Hold Ctrl-C (SIGINT) until the block is done: a commit run on the main thread must
    not stop between its INSERT and the bookkeeping that records it (the row would be in
    ``commit_log`` and not in the hold, and the next fold would delete it unfolded). The
    interrupt is delivered right after, as it came. Other threads get no signals. (The C
    module: ``signal``'s enum wrapping formats the handler's repr, ~0.1 ms; a class, not a
    ``contextlib.contextmanager`` generator: a commit made here enters one.)"""

    __slots__ = ("_came", "_prior")

    def __enter__(self) -> None:
        self._prior: Any = None
        prior = _main_thread_handler()
        if prior is None:  # another thread, or a handler not set from Python
            return
        came: list[Any] = []
        self._came = came
        _signal.signal(_signal.SIGINT, lambda signum, frame: came.append(frame))
        self._prior = prior

    def __exit__(self, *exc: object) -> None:
        prior = self._prior
        if prior is None:
            return
        _signal.signal(_signal.SIGINT, prior)
        came = self._came
        if came and callable(prior):
            prior(_signal.SIGINT, came[0])
        elif came and prior == _signal.SIG_DFL:
            _signal.raise_signal(_signal.SIGINT)


class Interrupted(Exception):
    """The caller's interrupt ended the wait; ``error`` is what the stopped job raised (or
    None when it ended anyway)."""

    def __init__(self, error: BaseException | None) -> None:
        super().__init__("interrupted")
        self.error = error


def result_unless_interrupted(job: Future[T], stop: Callable[[], None]) -> T:
    """``job.result()``; a ``KeyboardInterrupt`` meanwhile (under :class:`sigint_raises`)
    calls ``stop`` (every 50 ms) until the job is over, then raises :class:`Interrupted`."""
    try:
        while not job.done():
            wait_for((job,), timeout=0.1)
    except KeyboardInterrupt:
        while not job.done():
            try:
                stop()
                wait_for((job,), timeout=0.05)
            except KeyboardInterrupt:  # a second one while the job stops: it is stopping
                continue
        raise Interrupted(None if job.cancelled() else job.exception()) from None
    return job.result()


class sigint_raises:
    """Ctrl-C raises ``KeyboardInterrupt`` in the block (on the main thread, where a Python
    handler was set), whatever that handler does; the handler is put back after."""

    __slots__ = ("_prior",)

    def __enter__(self) -> None:
        self._prior: Any = None
        prior = _main_thread_handler()
        if not callable(prior) or prior is _signal.default_int_handler:
            return  # ignored, the OS default, or raising already
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        self._prior = prior

    def __exit__(self, *exc: object) -> None:
        if self._prior is not None:
            _signal.signal(_signal.SIGINT, self._prior)
