"""The thread and event loop that own a PostgresStore's connections.

Theory of operation
- A store is used from several event loops (the kernel's, the sync mirror's private loop,
  a worker's), but a psycopg ``AsyncConnection`` belongs to the loop it runs on. So every
  connection of a store lives on one private loop in a daemon thread (``IoLoop``); the
  store's coroutines submit jobs there and await the result from their own loop.
- ``Pool``: up to ``size`` connections, opened lazily; a job borrows one for one
  transaction. A connection left broken (server restart, network) is closed and replaced
  on its next borrow. Jobs beyond ``size`` wait for a free connection.
- Forbidden: touching a connection from any other thread or loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_live: weakref.WeakSet[IoLoop] = weakref.WeakSet()


class IoLoop:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self.closed = False
        _live.add(self)

    @property
    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on this loop, from any other loop."""
        if self.in_thread:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Block this (non-io) thread until ``coro`` has run on the io loop."""
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        if not self.in_thread:
            self._thread.join(5)


class Pool:
    """A few connections on the io loop; ``run(job)`` runs ``job(con)`` on a free one."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self._connect = connect
        self._size = max(1, size)
        self._idle: list[Any] = []
        self._open = 0
        self._free: asyncio.Condition | None = None

    def _cond(self) -> asyncio.Condition:
        if self._free is None:
            self._free = asyncio.Condition()
        return self._free

    async def _borrow(self) -> Any:
        cond = self._cond()
        async with cond:
            while True:
                while self._idle:
                    con = self._idle.pop()
                    if not con.closed and not con.broken:
                        return con
                    self._open -= 1
                if self._open < self._size:
                    self._open += 1
                    break
                await cond.wait()
        try:
            return await self._connect()
        except BaseException:
            async with cond:
                self._open -= 1
                cond.notify()
            raise

    async def _give_back(self, con: Any) -> None:
        cond = self._cond()
        async with cond:
            if con.closed or con.broken:
                self._open -= 1
            else:
                self._idle.append(con)
            cond.notify()

    async def run(self, job: Callable[[Any], Awaitable[T]]) -> T:
        con = await self._borrow()
        try:
            return await job(con)
        except BaseException:
            if not con.closed and con.info.transaction_status != 0:  # not IDLE
                try:
                    await con.rollback()
                except Exception:
                    await con.close()
            raise
        finally:
            await self._give_back(con)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for con in idle:
            await con.close()
        self._open -= len(idle)


@atexit.register
def _stop_all() -> None:
    for io in list(_live):
        io.stop()
