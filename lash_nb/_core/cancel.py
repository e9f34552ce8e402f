"""A thread-safe cancellation token.

Theory of operation
- ``cancel()`` may be called from any thread (a widget handler, a signal handler, another
  event loop). The first call wins: it records the origin and reason and wakes every waiter;
  later calls return False and change nothing.
- Async waiters (``await token.wait()``) each hold a future on their own loop; ``cancel``
  resolves them with ``loop.call_soon_threadsafe`` so no loop is touched from a foreign thread.
- Plain callbacks run on the cancelling thread; they must be quick and thread-safe.
- ``seal()`` is the other side of the race: a turn that has finished its work seals its
  token before committing. First writer wins: once sealed, ``cancel()`` returns False (the
  sweep does not count it); if the cancel came first, ``seal()`` returns False and the turn
  ends cancelled.
- Evidence: a cancelled turn's record carries ``cancellation.origin`` and ``.reason`` (who
  stopped it and why). Callers name the origin; :data:`ORIGINS` gives the standard reason
  for each origin lash_nb itself uses, and :func:`evidence` fills a missing reason (or a
  missing origin: a bare ``token.cancel()``) so a stored record never says ``null``.
- Hand-back: an origin in :data:`HANDS_BACK` stops the process, not the work (a worker asked
  to stop). A queued turn cut by it still commits ``stopped: cancelled`` (the record says
  what ran), but its claimed batches go back to the queue uncounted instead of being
  completed (docs/adr/0158). Every other origin is a person stopping that turn: its batches
  are completed, as in lash. A person's Stop that arrives after a hand-back origin but before
  the turn acted on it (``hand_back()``) takes its place: the person's word ends the batch
  and the record names the person (docs/adr/0172).
- Every ``cancel()`` call is counted (``asks``, ``last_ask``), the refused ones too: a turn
  whose final commit waits for its store (a full disk, a read-only or moved file) ends that
  wait on a Stop or interrupt that came after the wait began (docs/adr/0181).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from .text import clean_json

ORIGINS: dict[str, str] = {
    "widget_stop": "the Stop button of the turn widget was pressed",
    "kernel_interrupt": "the kernel was interrupted (the notebook's interrupt button or SIGINT)",
    "magic": "%lash stop was run",
    "api": "session.cancel_running_turns() was called",
    "stream": "TurnStream.cancel() was called",
    "asyncio": "the task awaiting the turn was cancelled",
    "token": "the turn's CancellationToken was cancelled without an origin",
    "remote": "a cancel request arrived from another process (request_turn_cancel)",
    "worker_shutdown": ("the worker was asked to stop and the turn outlived its grace period; "
                        "its queued batch went back to the queue"),
    "lease_lost": "the session execution lease was lost",
    "kernel_shutdown": ("the kernel was shut down or restarted while the turn ran; a queued "
                        "batch went back to the queue"),
}


# origins that stop the process, not the work: a queued turn they cut hands its batches back
HANDS_BACK = frozenset({"worker_shutdown", "kernel_shutdown"})


def _stops_the_work(origin: str | None) -> bool:
    """A person (or their code) stopping the turn: not a hand-back origin, nor the lease
    keeper's ``lease_lost``."""
    return origin not in HANDS_BACK and origin != "lease_lost"


def evidence(origin: str | None, reason: str | None) -> tuple[str, str]:
    """``(origin, reason)`` for a cancelled turn's record: never empty."""
    origin = origin or "token"
    return origin, reason or ORIGINS.get(origin, f"cancelled by {origin}")


class CancellationToken:
    __slots__ = ("_asks", "_callbacks", "_cancelled", "_handed_back", "_last_ask", "_lock",
                 "_origin", "_reason", "_sealed", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._sealed = False
        self._handed_back = False
        self._origin: str | None = None
        self._reason: str | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._callbacks: list[Callable[[], Any]] = []
        self._asks = 0
        self._last_ask: str | None = None

    @property
    def asks(self) -> int:
        """How many times ``cancel()`` was called, refused calls included."""
        return self._asks

    @property
    def last_ask(self) -> str | None:
        """The origin of the latest ``cancel()`` call (``token`` when it named none)."""
        return self._last_ask

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def is_cancelled(self) -> bool:
        return self._cancelled

    @property
    def origin(self) -> str | None:
        return self._origin

    @property
    def reason(self) -> str | None:
        return self._reason

    def cancel(self, origin: str | None = None, reason: str | None = None) -> bool:
        with self._lock:
            self._asks += 1
            self._last_ask = clean_json(origin) or "token"
            if self._cancelled and _stops_the_work(origin) and self._origin in HANDS_BACK \
                    and not self._handed_back:
                # a person's Stop right after a worker's stop, before the turn handed its
                # batch back: the person's word decides (the turn is already stopping)
                self._origin, self._reason = clean_json(origin), clean_json(reason)
                return True
            if self._cancelled or self._sealed:
                return False
            self._cancelled = True
            self._origin, self._reason = clean_json(origin), clean_json(reason)
            waiters, self._waiters = self._waiters, []
            callbacks, self._callbacks = self._callbacks, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, fut)
        for cb in callbacks:
            cb()
        return True

    def hand_back(self) -> bool:
        """The turn cut by this token is about to hand its queued work back: True if a
        hand-back origin stopped it; from now on a later Stop changes nothing."""
        with self._lock:
            self._handed_back = self._cancelled and self._origin in HANDS_BACK
            return self._handed_back

    def seal(self) -> bool:
        """Mark the work complete; False if a cancel already won."""
        with self._lock:
            if self._cancelled:
                return False
            self._sealed = True
            return True

    @property
    def sealed(self) -> bool:
        return self._sealed

    def add_callback(self, cb: Callable[[], Any]) -> None:
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(cb)
                return
        cb()

    def remove_callback(self, cb: Callable[[], Any]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(cb)

    def waiter(self) -> asyncio.Future[None]:
        """A future on the running loop that resolves when the token is cancelled."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if not self._cancelled:
                self._waiters.append((loop, fut))
                return fut
        fut.set_result(None)
        return fut

    def discard_waiter(self, fut: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiters = [w for w in self._waiters if w[1] is not fut]
        if not fut.done():
            fut.cancel()

    async def wait(self) -> None:
        fut = self.waiter()
        try:
            await fut
        finally:
            self.discard_waiter(fut)

    def __repr__(self) -> str:
        return f"CancellationToken(cancelled={self._cancelled}, origin={self._origin!r})"


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
