"""The thread and event loop that own a PostgresStore's connections.

Theory of operation
- A store is used from several event loops (the kernel's, the sync mirror's private loop,
  a worker's), but a psycopg ``AsyncConnection`` belongs to the loop it runs on. So every
  connection of a store lives on one private loop in a daemon thread (``IoLoop``); the
  store's coroutines submit jobs there and await the result from their own loop.
- ``Pool``: up to ``size`` connections, opened lazily; a job borrows one for one
  transaction. Jobs beyond ``size`` wait for a free connection.
- A server restart, ``pg_terminate_backend`` or a dropped network leaves pooled connections
  dead (docs/adr/0170). An idle connection the server has written to (its FATAL goodbye, or
  end of file: an idle session is owed nothing) is closed and replaced when borrowed, which
  costs no round trip. A connection that dies under a job raises ``StoreError`` naming the
  server, unless the caller gave a ``retry``: a job that is safe to run again (a read, an
  idempotent write, or the caller's check of whether its COMMIT went through). The retry
  runs once, on a new connection.
- A server that refuses connections is tried again for ``patience_s()`` (the store gives its
  connect timeout once it has reached the server, none before: a restart takes seconds,
  while a wrong DSN or a server that was never up says so at once).
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
import select
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
    """A few connections on the io loop; ``run(job)`` runs ``job(con)`` on a free one.
    ``lost(e, advice)``: the error a job raises when its connection died under it."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int, *,
                 lost: Callable[[BaseException, str], BaseException] | None = None,
                 patience_s: Callable[[], float] = lambda: 0.0) -> None:
        self._connect = connect
        self._size = max(1, size)
        self._idle: list[Any] = []
        self._open = 0
        self._free: asyncio.Condition | None = None
        self._lost = lost
        self._patience_s = patience_s
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
                    if not con.closed and not con.broken and not _said_goodbye(con):
                        return con
                    self._open -= 1
                    if not con.closed:
                        await _close_quietly(con)
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

    async def _borrow_patiently(self) -> Any:
        """A connection, trying again while the server refuses them, for ``patience_s()``."""
        deadline = time.monotonic() + self._patience_s()
        pause = 0.1
        while True:
            try:
                return await self._borrow()
            except Exception:
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

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

    async def run(self, job: Callable[[Any], Awaitable[T]], *,
                  retry: Callable[[Any], Awaitable[T]] | None = None,
                  advice: str = "run it again") -> T:
        """``job(con)``. When the connection dies under it: ``retry(con)`` on a new one if
        given (once), else the ``lost`` error with ``advice`` (what the caller can do)."""
        try:
            return await self._run_once(job, self._borrow_patiently)
        except _Dead as e:
            cause = e.__cause__
            if retry is None:
                raise self._lost_error(cause, advice) from cause
        try:
            return await self._run_once(retry, self._borrow_patiently)
        except _Dead as again:
            raise self._lost_error(again.__cause__, advice) from again.__cause__
        except BaseException as again:
            if again.__context__ is None:
                again.__context__ = cause
            raise

    def _lost_error(self, e: BaseException | None, advice: str) -> BaseException:
        assert e is not None
        return e if self._lost is None else self._lost(e, advice)

    async def _run_once(self, job: Callable[[Any], Awaitable[T]],
                        borrow: Callable[[], Awaitable[Any]]) -> T:
        con = await borrow()
        try:
            return await job(con)
        except BaseException as e:
            if not con.closed and con.info.transaction_status != 0:  # not IDLE
                try:
                    await con.rollback()
                except Exception:
                    await con.close()
            if isinstance(e, Exception) and (con.closed or con.broken):
                raise _Dead() from e
            raise
        finally:
            await self._give_back(con)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for con in idle:
            await _close_quietly(con)
        self._open -= len(idle)


class _Dead(Exception):
    """Inside ``Pool``: the job's connection died under it (``__cause__``: the error)."""


def _said_goodbye(con: Any) -> bool:
    """An idle connection with something to read: the server ended the session (a FATAL
    message before closing, or end of file). No round trip: a poll of the socket (``poll``,
    not ``select``: a kernel may hold more than 1024 descriptors). Unknown: alive (a dead
    one is then found by its job, which the caller may run again)."""
    try:
        fd = con.fileno()
        if _POLL is None:
            return bool(select.select([fd], [], [], 0)[0])  # Windows
        p = _POLL()
        p.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(p.poll(0))
    except (OSError, ValueError):
        return False


_POLL = getattr(select, "poll", None)


async def _close_quietly(con: Any) -> None:
    with contextlib.suppress(Exception):
        await con.close()


@atexit.register
def _stop_all() -> None:
    for io in list(_live):
        io.stop()
