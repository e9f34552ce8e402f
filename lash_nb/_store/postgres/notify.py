"""LISTEN/NOTIFY: wake idle workers on enqueue, carry Stop requests across processes.

Theory of operation
- Channels: ``lash_work`` (payload: session id; sent by enqueue, abandon, and a lease
  release that leaves ready work), ``lash_cancel`` (payload: ``<session>\\n<turn>``,
  sent by ``request_turn_cancel`` together with a row in ``turn_cancel_requests``) and
  ``lash_queue`` (payload: session id; sent by a commit that completes claimed batches, a
  cancel and an abandon: it wakes ``await_queued_work_batch`` through the store's
  ``QueueWatch``).
- One dedicated autocommit connection per store LISTENs on all three, on the store's io
  loop; it is opened on first use (``start``; a failure there raises, and the next use
  tries again).
- Once up, the listener outlives the connection (docs/adr/0170): when the server restarts or
  ends it, the listener connects again (pauses from ``RECONNECT_FIRST_S`` doubling up to
  ``RECONNECT_MAX_S``) until ``close``. Notifications sent while it was away are lost, so
  once it listens again it wakes every work waiter, calls ``on_reconnect`` (the store's
  ``QueueWatch`` wakes every queue waiter: each reads its queue again) and fires the
  watches whose Stop request is in ``turn_cancel_requests``. A wake-up too many costs a
  read; a missed one cost a waiter its whole timeout, every time, for good.
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
RECONNECT_FIRST_S = 0.1  # the first pause before connecting again after the connection died
RECONNECT_MAX_S = 2.0  # the longest pause between two tries while the server is away


class Listener:
    def __init__(self, connect: Callable[[], Awaitable[Any]],
                 on_queue: Callable[[str], None] | None = None,
                 on_reconnect: Callable[[], None] | None = None) -> None:
        self._connect = connect
        self._on_queue = on_queue
        self._on_reconnect = on_reconnect
        self._con: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stopping = False
        self._watchers: dict[tuple[str, str], dict[int, Callback]] = {}
        self._work_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = set()
        self._next = 0
        self.work_notifications = 0
        self.reconnects = 0  # how many times the listener connected again after a loss

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
            con = await self._subscribe()
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)
            return
        ready.set_result(None)
        while True:
            await self._serve(con)
            con = await self._resubscribe()
            if con is None:
                return
            self.reconnects += 1
            self._catch_up()
            await self._fire_pending(con)

    async def _subscribe(self) -> Any:
        con = await self._connect()
        try:
            for channel in ("lash_work", "lash_cancel", "lash_queue"):
                await con.execute(f"LISTEN {channel}")
        except BaseException:
            with contextlib.suppress(Exception):
                await con.close()
            raise
        self._con = con
        return con

    async def _serve(self, con: Any) -> None:
        """Dispatch notifications until ``close`` or the connection dies."""
        try:
            while not self.stopping():
                async with contextlib.aclosing(con.notifies(timeout=LISTEN_SLICE_S)) as got:
                    async for n in got:
                        self._dispatch(n)
                        if self.stopping():
                            break
        except Exception:
            pass  # connection lost: _resubscribe connects again
        finally:
            self._con = None
            with contextlib.suppress(Exception):
                await con.close()

    async def _resubscribe(self) -> Any:
        """A new LISTEN connection once the server takes one; None when closing."""
        pause = RECONNECT_FIRST_S
        while not self.stopping():
            await asyncio.sleep(pause)
            if self.stopping():
                return None
            try:
                return await self._subscribe()
            except Exception:
                pause = min(pause * 2, RECONNECT_MAX_S)
        return None

    def _catch_up(self) -> None:
        """Wake everyone who may have missed a notification while the listener was away."""
        while self._work_waiters:
            loop, fut = self._work_waiters.pop()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut)
        if self._on_reconnect is not None:
            with contextlib.suppress(Exception):
                self._on_reconnect()

    async def _fire_pending(self, con: Any) -> None:
        """The watched turns whose Stop request was sent while the listener was away."""
        keys = list(self._watchers)
        if not keys:
            return
        try:
            cur = await con.execute(
                "SELECT session_id, turn_id FROM turn_cancel_requests r "
                "JOIN unnest(%s::text[], %s::text[]) AS w(s, t) "
                "ON r.session_id = w.s AND r.turn_id = w.t",
                [[k[0] for k in keys], [k[1] for k in keys]])
            found = await cur.fetchall()
        except Exception:
            return  # the connection died again: the next reconnect checks again
        for sid, tid in found:
            self._fire(sid, tid)

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
