"""The sync mirror: run lash_nb coroutines from plain (non-async) code.

Coroutines run on one private event loop in a daemon thread, never on the caller's loop,
so it works inside a running Jupyter kernel without ``nest_asyncio`` (which breaks
ipykernel >= 7.1). Objects made through it (sessions) belong to that loop: keep using them
through :func:`run_sync`. Ctrl-C (or the kernel's interrupt) while waiting cancels the awaited
task, which for a turn means it ends ``stopped: cancelled`` with origin ``kernel_interrupt``
and commits; ``run_sync`` raises ``KeyboardInterrupt`` once that commit is done (ADR 212).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

from .interrupts import INTERRUPT

T = TypeVar("T")

THREAD = "lash-nb-sync"
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def private_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=THREAD, daemon=True)
            thread.start()
            _loop = loop
        return _loop


def on_private_loop() -> bool:
    """True on the loop thread of :func:`run_sync` (whose caller waits, holding its thread)."""
    return threading.current_thread().name == THREAD


def run_sync(awaitable: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``awaitable`` on the private loop thread and return its result."""
    loop = private_loop()

    tasks: list[asyncio.Task[Any]] = []

    async def _wrap() -> T:
        task = asyncio.current_task()
        if task is not None:
            tasks.append(task)
        return await awaitable

    def interrupt() -> None:  # a turn it awaits records who stopped it (ADR 212)
        if tasks:
            tasks[0].cancel(INTERRUPT)
        else:
            future.cancel()

    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(_wrap(), loop)
    try:
        return future.result(timeout)
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(interrupt)
        # a turn's run() absorbs the cancel and returns once stopped: cancelled is committed;
        # the caller still gets the interrupt (a cell ends as an interrupted cell ends, Run All
        # stops, a script's Ctrl-C still ends it), after that commit
        with contextlib.suppress(concurrent.futures.CancelledError):
            future.result(30)
        raise KeyboardInterrupt from None


def iterate_sync(aiterable: Any) -> Any:
    """Iterate an async iterator from sync code (items cross threads one at a time)."""
    loop = private_loop()
    iterator = aiterable.__aiter__()
    sentinel = object()

    async def _next() -> Any:
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            return sentinel

    while True:
        item = asyncio.run_coroutine_threadsafe(_next(), loop).result()
        if item is sentinel:
            return
        yield item
