"""How a store tells the turn in progress that it is waiting (for a DuckDB file another
process holds, or for disk space).

The runtime sets an observer for the duration of a turn (:func:`observe_store_waits`); a store
picks it up when a call is made (:func:`current_observer`, in the caller's context, so each
turn sees only its own waits) and calls it from whatever thread waits, with a
:class:`~lash_nb._core.events.StoreWait` event and one correlation id per wait. Observers must
be thread-safe and must not raise. Waits are also logged on ``lash_nb.store``.

A turn's final commit may wait long (``commit_wait_s``) for disk space or for its file; the
turn also sets a *stop check* (:func:`watch_wait_stop`): a function the waiting thread calls
at each poll, returning who asked to stop the wait (``widget_stop``, ``kernel_interrupt``, ...)
or ``None`` (docs/adr/0181).

A notebook turn shown on a widget says its wait on its own row, and after it the cell's one
line or the saved record says how it ended; there the store's log lines for a finished turn's
wait (disk, read-only, moved) would stay under the cell as stale warnings. The notebook marks
such a turn (:func:`shown_to_a_person`) and the store logs those lines at INFO for it; a
worker or a plain API call still gets them as warnings (docs/adr/0181). The same mark says
the turn's tool calls waiting for approval show Approve / Deny on its widget, so the runtime
does not tell about them elsewhere (docs/adr/0204).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable

from .._core.events import StoreWait

StoreWaitObserver = Callable[[StoreWait, str], None]
log = logging.getLogger("lash_nb.store")
_observer: contextvars.ContextVar[StoreWaitObserver | None] = contextvars.ContextVar(
    "lash_nb_store_wait_observer", default=None)
WaitStop = Callable[[], "str | None"]
_stop: contextvars.ContextVar[WaitStop | None] = contextvars.ContextVar(
    "lash_nb_store_wait_stop", default=None)


_shown: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lash_nb_store_wait_shown", default=False)


def shown_to_a_person(shown: bool) -> contextvars.Token[bool]:
    """Mark the turns started from here as shown on a widget (their waits there)."""
    return _shown.set(shown)


def not_shown(token: contextvars.Token[bool]) -> None:
    _shown.reset(token)


def waits_shown() -> bool:
    return _shown.get()


def watch_wait_stop(fn: WaitStop | None) -> contextvars.Token[WaitStop | None]:
    return _stop.set(fn)


def unwatch_wait_stop(token: contextvars.Token[WaitStop | None]) -> None:
    _stop.reset(token)


def current_wait_stop() -> WaitStop | None:
    return _stop.get()


def observe_store_waits(fn: StoreWaitObserver | None) -> contextvars.Token[StoreWaitObserver | None]:
    return _observer.set(fn)


def stop_observing(token: contextvars.Token[StoreWaitObserver | None]) -> None:
    _observer.reset(token)


def current_observer() -> StoreWaitObserver | None:
    return _observer.get()


def notify(observer: StoreWaitObserver | None, event: StoreWait, correlation_id: str) -> None:
    if observer is None:
        return
    try:
        observer(event, correlation_id)
    except Exception:  # a broken observer must never fail the store call
        log.debug("store wait observer failed", exc_info=True)
