"""Cancellation on the runtime side, in one place.

A turn is cancelled through its :class:`CancellationToken` (``lash_nb._core.cancel``), never
by cancelling a task from outside. This module holds the three bridges between tokens and
asyncio tasks, and the registry of a session's tokens:

- :class:`TaskBridge`: while a turn's loop runs (its *cancellable window*), a token cancel
  cancels the turn's own task, so the await in flight (provider stream, tool call, retry
  sleep) is abandoned; :meth:`TaskBridge.absorb` ends the window and un-cancels the task so
  the turn can settle and commit.
- :func:`await_committed`: the caller awaits the turn's task through a shield; a cancelled
  caller (a kernel interrupt, ``asyncio.wait_for``) cancels the turn's token, is un-cancelled
  and keeps waiting for the committed ``stopped: cancelled`` result.
- :func:`absorb_interrupt`: a consumer of a turn stream that was cancelled un-cancels itself
  after it cancelled its own turn's token (``TurnStream.follow``). A kernel interrupt thus
  stops the turn of the interrupted cell only, never the session's other turns (a queued
  drain in the background keeps running).

The per-session registry behind ``cancel_running_turns()`` and the Stop button:
- Each turn (foreground or queued drain) registers its :class:`CancellationToken` when the
  builder prepares it, before it waits for the session's writer lock, and removes it when the
  turn ends however it ends. So a sweep also reaches turns still waiting for the lock.
- ``cancel_all`` cancels every registered token and returns how many it signalled. The first
  origin written to a token wins.
- Scope: one registry per opened session handle (and the clones that share it); another
  ``open()`` of the same session id has its own registry.
- Thread-safe: the Stop button may call it from a comm handler on any thread.

The process's registries (:func:`cancel_every_turn`, :func:`turns_running`): every registry
of the process is known, so a process that ends (a kernel asked to shut down or restart,
``kernel_shutdown.py``) reaches every turn of every handle, whoever opened it (a magic, the
Python API, a drain). Once it was called, a turn registered later is cancelled as it
registers: a drain does not start its next batch in a process that is ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import weakref
from typing import Any, TypeVar

from .._core.cancel import CancellationToken
from .interrupts import cancel_origin

T = TypeVar("T")


class TaskBridge:
    """Turns a token cancel into a cancel of the turn's task, while the window is open."""

    def __init__(self, token: CancellationToken) -> None:
        self.token = token
        self.open = False
        self.task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self) -> None:
        """Bind to the current task; call from inside it."""
        self.task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self.token.add_callback(self._signalled)

    def detach(self) -> None:
        self.token.remove_callback(self._signalled)

    def _signalled(self) -> None:  # any thread
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing is running any more
            loop.call_soon_threadsafe(self._cancel_task)

    def _cancel_task(self) -> None:
        if self.open and self.task is not None and not self.task.done():
            self.task.cancel()

    def absorb(self) -> None:
        """After the window's ``CancelledError``: close the window, un-cancel the task."""
        self.open = False
        if self.task is not None:
            self.task.uncancel()


async def await_committed(task: asyncio.Task[T], token: CancellationToken,
                          origin: str = "asyncio") -> T:
    """Await the turn's task; cancelling the awaiter cancels the turn's token and keeps
    waiting, so the turn still commits (``stopped: cancelled``) before this returns."""
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if task.done():
                raise
            token.cancel(cancel_origin(err, origin), None)  # the kernel's interrupt says so
            absorb_interrupt()


def absorb_interrupt() -> None:
    """Un-cancel the current task (its cancel was turned into a token cancel)."""
    current = asyncio.current_task()
    if current is not None:
        current.uncancel()


class TurnCancelRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._tokens: dict[int, CancellationToken] = {}
        self._turn_ids: dict[int, str] = {}
        with _PROCESS_LOCK:
            _REGISTRIES.add(self)

    def register(self, token: CancellationToken, turn_id: str | None = None) -> int:
        with self._lock:
            key = next(self._ids)
            self._tokens[key] = token
            if turn_id is not None:
                self._turn_ids[key] = turn_id
        if _ENDING:  # the process is ending: this turn stops before it does anything
            token.cancel(*_ENDING[0])
        return key

    def set_turn_id(self, key: int, turn_id: str) -> None:
        with self._lock:
            if key in self._tokens:
                self._turn_ids[key] = turn_id

    def unregister(self, key: int) -> None:
        with self._lock:
            self._tokens.pop(key, None)
            self._turn_ids.pop(key, None)

    def cancel_turn(self, turn_id: str, origin: str | None = None,
                    reason: str | None = None) -> bool:
        """Cancel the registered turn with this id (exact match); True if signalled."""
        with self._lock:
            tokens = [self._tokens[k] for k, t in self._turn_ids.items() if t == turn_id]
        return any(t.cancel(origin, reason) for t in tokens)

    def cancel_all(self, origin: str | None = None, reason: str | None = None) -> int:
        with self._lock:
            tokens = list(self._tokens.values())
        signalled = 0
        for token in tokens:
            if token.cancel(origin, reason):
                signalled += 1
        return signalled

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


_PROCESS_LOCK = threading.Lock()
_REGISTRIES: weakref.WeakSet[TurnCancelRegistry] = weakref.WeakSet()  # every handle's
_ENDING: list[tuple[str, str | None]] = []  # the origin and reason once the process ends


def _registries() -> list[TurnCancelRegistry]:
    with _PROCESS_LOCK:
        return list(_REGISTRIES)


def cancel_every_turn(origin: str, reason: str | None = None) -> int:
    """The process is ending: cancel every turn of every session handle it holds, and every
    turn registered from now on; returns how many were signalled. Thread-safe."""
    with _PROCESS_LOCK:
        if not _ENDING:
            _ENDING.append((origin, reason))
    return sum(r.cancel_all(origin, reason) for r in _registries())


def turns_running() -> bool:
    """A turn of this process has not left its registry yet (its final commit is not done)."""
    return any(len(r) for r in _registries())
