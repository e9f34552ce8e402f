"""LISTEN/NOTIFY: wake idle workers on enqueue, carry Stop requests across processes.

Theory of operation
- Channels: ``lash_work`` (payload: session id; sent by enqueue, abandon, and a lease
  release that leaves ready work), ``lash_cancel`` (payload: ``<session>\\n<turn>``,
  sent by ``request_turn_cancel`` together with a row in ``turn_cancel_requests``) and
  ``lash_queue`` (payload: session id; sent by a commit that completes claimed batches, a
  cancel and an abandon: it wakes ``await_queued_work_batch`` through the store's
  ``QueueWatch``).
- One dedicated autocommit connection per store LISTENs on both, on the store's io loop; it
  is opened on first use (``start``) and reopened by the next use after it breaks.
- ``watch(session, turn, callback)``: registers the callback first, then (with the listener
  running) checks ``turn_cancel_requests``; so a request sent before the turn started, or
  while the watch was being set up, is never lost. The callback runs on the io thread.
- ``wait_for_work(timeout)``: resolves on a ``lash_work`` notification (True; each
  notification wakes one waiter of this process) or the timeout (False). Waiters live on
  their own loops; the listener wakes them thread-safely.
- Closing never cancels a wait inside psycopg: psycopg 3.2.1 (the lowest version declared)
  could turn a cancelled ``notifies()`` wait into a wait for the next notification, and a
  store's close then hung. The listener waits in slices of ``LISTEN_SLICE_S`` and checks a
  stop flag between them (and between notifications); ``close`` sets the flag and waits for
  the listener to end on its own, cancelling it only past ``CLOSE_WAIT_S`` (and then waiting
  no longer than ``CLOSE_WAIT_S`` again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from ..._errors import StoreError

Callback = Callable[[], None]

LISTEN_SLICE_S = 0.25  # how long one notifies() wait lasts: a close waits at most about this
CLOSE_WAIT_S = 10.0  # a listener that has not stopped by then is cancelled (a broken server)


class Listener:
    def __init__(self, connect: Callable[[], Awaitable[Any]],
                 on_queue: Callable[[str], None] | None = None) -> None:
        self._connect = connect
        self._on_queue = on_queue
        self._con: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stopping = False
        self._watchers: dict[tuple[str, str], dict[int, Callback]] = {}
        self._work_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = set()
        self._next = 0
        self.work_notifications = 0

    # ------------------------------------------------------------------ io loop side
    async def start(self) -> None:
        """Make sure the LISTEN connection is up (runs on the io loop); refused once the
        store closes it (a listener started then would outlive the store)."""
        if self._stopping:
            raise StoreError("this PostgresStore is closed; create a new PostgresStore(dsn)")
        if self._task is not None and not self._task.done() and self._ready is not None:
            await asyncio.shield(self._ready)
            return
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._listen(self._ready))
        await asyncio.shield(self._ready)

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        try:
            con = await self._connect()
            await con.execute("LISTEN lash_work")
            await con.execute("LISTEN lash_cancel")
            await con.execute("LISTEN lash_queue")
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)
            return
        self._con = con
        ready.set_result(None)
        try:
            while not self.stopping():
                async with contextlib.aclosing(con.notifies(timeout=LISTEN_SLICE_S)) as got:
                    async for n in got:
                        self._dispatch(n)
                        if self.stopping():
                            break
        except Exception:
            pass  # connection lost: the next start() reconnects; waiters fall back to timeouts
        finally:
            self._con = None
            with contextlib.suppress(Exception):
                await con.close()

    def stopping(self) -> bool:
        """``close`` has asked the listener to end (it ends after its current slice)."""
        return self._stopping

    def _dispatch(self, n: Any) -> None:
        if n.channel == "lash_work":
            self._wake_work()
        elif n.channel == "lash_queue":
            if self._on_queue is not None:
                with contextlib.suppress(Exception):
                    self._on_queue(n.payload)
        elif n.channel == "lash_cancel":
            sid, _, tid = n.payload.partition("\n")
            self._fire(sid, tid)

    def _wake_work(self) -> None:
        # one waiter per notification: n enqueues wake n idle lanes of this process, not all
        # of them for each (each woken lane scans every ready session anyway)
        self.work_notifications += 1
        while self._work_waiters:
            loop, fut = self._work_waiters.pop()
            if fut.done():
                continue
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut)
                return

    def _fire(self, sid: str, tid: str) -> None:
        for cb in list(self._watchers.get((sid, tid), {}).values()):
            with contextlib.suppress(Exception):
                cb()

    def add_watch(self, sid: str, tid: str, cb: Callback) -> int:
        self._next += 1
        self._watchers.setdefault((sid, tid), {})[self._next] = cb
        return self._next

    def remove_watch(self, sid: str, tid: str, key: int) -> None:
        got = self._watchers.get((sid, tid))
        if got is not None:
            got.pop(key, None)
            if not got:
                del self._watchers[(sid, tid)]

    def add_work_waiter(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[bool]) -> None:
        self._work_waiters.add((loop, fut))

    def discard_work_waiter(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[bool]) -> None:
        self._work_waiters.discard((loop, fut))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True  # the listener ends after its current slice (module docstring)
        done, _ = await asyncio.wait({task}, timeout=CLOSE_WAIT_S)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_WAIT_S)


def _resolve(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)
