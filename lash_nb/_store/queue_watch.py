"""Wakes ``await_queued_work_batch`` when batches leave a session's queue.

Theory of operation
- A :class:`QueueWatch` keeps one counter per session. A store calls :meth:`QueueWatch.changed`
  once a change that can end a wait is durable: a commit that completed claimed batches, a
  cancel, an abandoned claim (which may park a batch failed). A waiter reads the counter,
  reads the queue, and if its batch is still there waits for the counter to move (or its
  timeout); so a change between the read and the wait is never missed.
- Waiters live on any event loop; ``changed`` may run on any thread (DuckDB's store thread,
  PostgreSQL's listener thread) and wakes them thread-safely.
- In one process this is the whole story (every store object of a DuckDB file shares one
  watch). Changes made by other processes reach it through PostgreSQL's ``lash_queue``
  notification, or not at all (DuckDB): the waiter then also reads the queue again on a
  schedule (``await_queued_work_batch``, capped at lash's 400 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class QueueWatch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]]] = {}

    def version(self, session_id: str) -> int:
        with self._lock:
            return self._versions.get(session_id, 0)

    def changed(self, session_id: str) -> None:
        with self._lock:
            self._versions[session_id] = self._versions.get(session_id, 0) + 1
            waiters = self._waiters.pop(session_id, [])
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, fut)

    def changed_all(self) -> None:
        """Every session may have changed (the store's listener missed notifications while
        its connection was down): every waiter reads its queue again."""
        with self._lock:
            sids = set(self._versions) | set(self._waiters)
        for sid in sids:
            self.changed(sid)

    async def wait(self, session_id: str, since: int, timeout_s: float) -> bool:
        """True once the session's counter is past ``since``; False after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            if self._versions.get(session_id, 0) != since:
                return True
            self._waiters.setdefault(session_id, []).append(entry)
        try:
            return await asyncio.wait_for(fut, max(0.0, timeout_s))
        except TimeoutError:
            return False
        finally:
            with self._lock:
                got = self._waiters.get(session_id)
                if got is not None and entry in got:
                    got.remove(entry)
                    if not got:
                        del self._waiters[session_id]


def _resolve(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)
