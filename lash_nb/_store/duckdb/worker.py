"""The one thread that owns a DuckDB store's connection.

Theory of operation
- States: *released* (no connection; the file is free for other processes) and *holding*
  (a connection is open). Only the worker thread moves between them and only it ever
  touches the connection (duckdb 2.0 refuses one connection used from two threads).
- Jobs arrive on a queue. A job in the released state first opens the file (which may wait
  for another process's lock, see ``lock.py``). After the queue has stayed empty for
  ``fold_idle_s`` (default ``FOLD_IDLE_S``) the worker folds pending commits into the typed tables (``journal.py``);
  after ``idle_release_s`` it folds (if still needed), writes dirty leases and closes the
  connection: the file is released while idle, so another notebook or worker process can
  use it. ``idle_release_s=None`` holds it until :meth:`ConnectionWorker.stop`.
- Every job runs in its own transaction (``run_in_transaction``); a job that fails rolls
  back, so a store never holds part of a job. A write-write conflict with another
  connection of this process is retried.
- Forbidden: any other thread using the connection; a job left half applied.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from ..._errors import StoreError
from .hold import Hold
from .journal import fold

T = TypeVar("T")
FOLD_IDLE_S = 0.05  # fold pending commits once the store has had no work this long
_STOP = object()
_RELEASE = object()
_live: weakref.WeakSet[ConnectionWorker] = weakref.WeakSet()


class ConnectionWorker:
    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        idle_release_s: float | None,
        fold_idle_s: float | None = FOLD_IDLE_S,
        name: str,
    ) -> None:
        self._connect = connect
        self._idle = idle_release_s
        self._fold_idle = fold_idle_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._con: Any = None
        self.hold: Hold | None = None  # what we know while holding the file (hold.py)
        self._stopped = False
        self.users = 1  # DuckDBStore objects sharing this worker (store.py)
        self.read_only = False
        self.opens = 0  # how many times the file was opened (benchmarks and tests read it)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _live.add(self)

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def holding(self) -> bool:
        return self._con is not None

    def submit(self, job: Callable[[Any], T]) -> Future[T]:
        if self._stopped:
            raise StoreError("this DuckDBStore is closed; create a new DuckDBStore(path)")
        fut: Future[T] = Future()
        self._queue.put((job, fut))
        return fut

    def release(self) -> Future[None]:
        """Release the file now (after queued jobs); the next job reopens it."""
        fut: Future[None] = Future()
        if self._stopped:
            fut.set_result(None)
            return fut
        self._queue.put((_RELEASE, fut))
        return fut

    def stop(self) -> Future[None]:
        """Release the file and end the thread once queued jobs are done."""
        fut: Future[None] = Future()
        if self._stopped:
            fut.set_result(None)
            return fut
        self._stopped = True
        self._queue.put((_STOP, fut))
        return fut

    def _run(self) -> None:
        while True:
            timeout = self._idle if self._con is not None else None
            folding = self._fold_idle is not None and self.hold is not None and bool(self.hold.pending)
            if folding:
                assert self._fold_idle is not None
                timeout = self._fold_idle if timeout is None else min(timeout, self._fold_idle)
            try:
                job, fut = self._queue.get(timeout=timeout)
            except queue.Empty:
                if folding:
                    try:
                        fold(self._con, self.hold)
                        continue
                    except Exception:  # the log keeps the commits: the next open folds them
                        pass
                self._release()
                continue
            if job is _STOP:
                self._release()
                fut.set_result(None)
                return
            if job is _RELEASE:
                self._release()
                fut.set_result(None)
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                if self._con is None:
                    self._con = self._connect()
                    self.hold = Hold()
                    self.opens += 1
                result = job(self._con)
            except BaseException as e:  # handed to the caller through the future
                if _connection_broken(e):
                    self._release()
                fut.set_exception(e)
            else:
                fut.set_result(result)

    def _release(self) -> None:
        con, self._con = self._con, None
        hold, self.hold = self.hold, None
        if con is not None and hold is not None:
            try:  # others see typed tables and live leases once they can open the file
                fold(con, hold)
                hold.flush(con)
            except Exception:  # unfolded commits stay in commit_log: the next open folds them
                pass
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()


def _connection_broken(e: BaseException) -> bool:
    import duckdb

    return isinstance(e, (duckdb.FatalException, duckdb.InternalException)) or (
        isinstance(e, duckdb.Error) and "invalidated" in str(e)
    )


def run_in_transaction(
    con: Any, job: Callable[[Any], T], *, attempts: int = 5, hold: Hold | None = None
) -> T:
    import duckdb

    for attempt in range(attempts):
        con.execute("BEGIN TRANSACTION")
        try:
            result = job(con)
            con.execute("COMMIT")
        except duckdb.TransactionException:
            _rollback(con, hold)
            if attempt == attempts - 1:
                raise
            continue
        except BaseException:
            _rollback(con, hold)
            raise
        if hold is not None:
            hold.committed()
        return result
    raise AssertionError("unreachable")


def _rollback(con: Any, hold: Hold | None = None) -> None:
    if hold is not None:
        hold.rolled_back()
    with contextlib.suppress(Exception):
        con.execute("ROLLBACK")


@atexit.register
def _stop_all() -> None:
    for w in list(_live):
        with contextlib.suppress(Exception):
            w.stop().result(timeout=5)
