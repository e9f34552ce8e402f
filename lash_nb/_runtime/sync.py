"""The sync mirror: run lash_nb coroutines from plain (non-async) code.

Coroutines run on one private event loop in a daemon thread, never on the caller's loop,
so it works inside a running Jupyter kernel without ``nest_asyncio`` (which breaks
ipykernel >= 7.1). Objects made through it (sessions) belong to that loop: keep using them
through :func:`run_sync`. Ctrl-C while waiting cancels the awaited task, which for a turn
means it ends ``stopped: cancelled`` and commits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def private_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="lash-nb-sync", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_sync(awaitable: Awaitable[T], timeout: float | None = None) -> T:
    """Run ``awaitable`` on the private loop thread and return its result."""
    loop = private_loop()

    async def _wrap() -> T:
        return await awaitable

    future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(_wrap(), loop)
    try:
        return future.result(timeout)
    except KeyboardInterrupt:
        loop.call_soon_threadsafe(future.cancel)
        try:
            return future.result(30)
        except concurrent.futures.CancelledError:
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
