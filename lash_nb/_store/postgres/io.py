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
- Closing: the store closes its pools and stops the loop; the stopped loop cancels the jobs
  still on it (a query in flight, a listener started as the store closed), lets them end
  (``SETTLE_S`` at most) and closes itself, so no task is left pending on a dead loop. A job
  submitted after that is refused with ``StoreError`` (a stopped loop would never run it).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ..._errors import StoreError

T = TypeVar("T")
SETTLE_S = 5.0  # how long a stopped io loop lets its cancelled jobs end before it closes
_live: weakref.WeakSet[IoLoop] = weakref.WeakSet()


class IoLoop:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        _live.add(self)

    def _serve(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            _settle(self.loop)

    @property
    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self.closed:  # a stopped loop would never run it: the caller would wait forever
            coro.close()
            raise StoreError("this PostgresStore is closed; create a new PostgresStore(dsn)")
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


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """The io loop stopped (its store closed): cancel the jobs still on it (a query in flight,
    a listener started as the store closed), let them end, for at most ``SETTLE_S``, and close
    the loop. A task left pending on a stopped loop is reported "Task was destroyed but it is
    pending!" when it is collected, and the loop itself as unclosed."""
    try:
        ends = time.monotonic() + SETTLE_S
        while (left := ends - time.monotonic()) > 0:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.wait(tasks, timeout=left))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception:
        pass  # closing must not fail; the tasks still pending are reported when collected
    finally:
        loop.close()


class Pool:
    """A few connections on the io loop; ``run(job)`` runs ``job(con)`` on a free one."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self._connect = connect
        self._size = max(1, size)
        self._idle: list[Any] = []
        self._open = 0
        self._free: asyncio.Condition | None = None
        self._closed = False  # a connection given back after close is closed, not kept

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
            if self._closed and not con.closed:
                with contextlib.suppress(Exception):
                    await con.close()
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
        self._closed = True
        idle, self._idle = self._idle, []
        for con in idle:
            await con.close()
        self._open -= len(idle)


@atexit.register
def _stop_all() -> None:
    for io in list(_live):
        io.stop()
