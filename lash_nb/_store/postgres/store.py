"""``PostgresStore``: the shared server store for many processes and machines.

Theory of operation
- Same contract and tables as the DuckDB store (``base.py``; ``schema.py``). Every method is
  one transaction on a pooled connection of the calling event loop (one small pool per loop:
  kernel, sync mirror, worker), since a psycopg async connection belongs to its loop. The
  store's private io loop thread (``io.py``) holds the LISTEN connection and serves the
  blocking ``query()`` and the schema check.
- Leases are fenced rows locked ``FOR UPDATE`` and timed by the server clock; queue claims
  select ``FOR UPDATE SKIP LOCKED``; claims are pinned to the claimer's lease generation, so
  the claims of a dead worker are pending again once its lease expires.
- Enqueues that gather on one event loop while its last burst is written are written
  together: one transaction, one INSERT, one ``lash_work`` per session; each call
  returns after that COMMIT (``enqueue``, ADR 0121).
- LISTEN/NOTIFY (``notify.py``): ``wait_for_work`` wakes idle workers on enqueue;
  ``request_turn_cancel`` / ``watch_turn_cancel`` stop a turn running in another process.
- A lost connection (server restart, ``pg_terminate_backend``, network; docs/adr/0170): the
  pool replaces dead idle connections before use; a call whose connection dies under it is
  run again on a new one when that is safe (reads, idempotent writes, a commit after
  checking whether it is stored already), else it raises a one-line ``StoreError`` naming
  the server and what to do. Nothing is half-written: every call is one transaction. Once
  this store has reached the server, a call waits up to ``connect_timeout_s`` for a server
  that refuses connections (a restart) before it fails.
- ``query(sql, params)`` returns a ``pandas.DataFrame`` like ``DuckDBStore.query``; ``?`` and
  ``$name`` placeholders are accepted as in DuckDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ..._core.attachments import AttachmentRef
from ..._core.events import TurnActivity
from ..._core.queue import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimBoundary,
    QueueClaim,
    QueuedWorkBatch,
    QueuedWorkDraft,
)
from ..._core.records import fresh_id
from ..._errors import QueryNotAllowed, StoreError
from .. import user_sql
from ..base import (
    DEFAULT_LEASE_TTL_MS,
    CommitResult,
    Lease,
    LeaseBusy,
    PersistedSession,
    ReadScope,
    RuntimeCommit,
    SessionMeta,
    TurnRecord,
)
from ..queue_watch import QueueWatch
from ..retention import VacuumReport
from . import blobs as blob_rows
from . import leases, queued_work, reads
from .commit import apply_again, apply_commit
from .io import IoLoop, Pool
from .notify import Listener
from .query import frame, translate
from .schema import ensure_schema

T = TypeVar("T")
_AGAIN = "the server restarted or ended the connection; run it again once the server is back"
# the connection died twice (the retry too): the batch may be queued, or not
_ENQUEUE = ("the batch may or may not be queued: list the queue (%lash queue) before "
            "enqueueing it again")


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, without the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        d = conninfo_to_dict(dsn)
    except Exception:
        return "the given DSN"
    return f"{d.get('host', 'localhost')}:{d.get('port', 5432)}/{d.get('dbname', '')}"


class PostgresStore:
    """Sessions, turns, usage, events and queued work in a PostgreSQL database.

    ``dsn``: a libpq connection string or ``postgresql://`` URL. An empty database gets the
    lash_nb schema. ``pool_size``: connections used for store calls (plus one LISTEN
    connection, opened on first use).
    """

    durable = True
    sql_dialect = "postgres"  # what ``query()`` speaks; the report SQL reads it

    def __init__(self, dsn: str, *, pool_size: int = 4, connect_timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self.where = describe_dsn(dsn)
        self._timeout = connect_timeout_s
        self._reached = False  # connected once: a refused connection is then a restart
        self._io = IoLoop(f"lash-pg:{self.where}")
        self._pool = self._new_pool(pool_size)  # io loop: schema, query(), cancel watch
        self._pool_size = pool_size
        self._loop_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = (
            weakref.WeakKeyDictionary())
        self._bursts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Burst] = (
            weakref.WeakKeyDictionary())  # enqueue(): each loop's waiting burst
        self._queue_watch = QueueWatch()  # this process's changes, and lash_queue's
        self._listener = Listener(self._connect, on_queue=self._queue_watch.changed,
                                  on_reconnect=self._queue_watch.changed_all)
        self._closed = False
        self._wrote_tools: dict[str, tuple[int, Any]] = {}  # commit.py: the tool state written
        try:
            self._io.call(self._pool.run(lambda con: ensure_schema(con, self.where)))
        except BaseException:
            self._io.stop()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    # ------------------------------------------------------------------ plumbing
    async def _connect(self) -> Any:
        import psycopg
        from psycopg.types.string import TextLoader

        try:
            con = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self._timeout)))
        except psycopg.OperationalError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if self._reached:  # it was up: a restart or an outage, not a wrong DSN
                raise StoreError(
                    f"cannot connect to PostgreSQL at {self.where} ({first}) after waiting "
                    f"{self._timeout:g} s for it to come back; nothing is half-written: once "
                    "the server is up, run it again") from e
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.where} ({first}); check the DSN and "
                "that the server is running") from e
        for name in ("json", "jsonb"):  # JSON columns come back as text, as from DuckDB
            con.adapters.register_loader(name, TextLoader)
        self._reached = True
        return con

    def _new_pool(self, size: int) -> Pool:
        return Pool(self._connect, size, lost=self._lost, patience_s=self._patience)

    def _patience(self) -> float:
        """How long a call waits for a server that refuses connections: the connect timeout
        once this store has reached it (a restart), none before (a wrong DSN, a server down
        at open: the error comes at once)."""
        return self._timeout if self._reached else 0.0

    def _lost(self, e: BaseException, advice: str) -> StoreError:
        text = str(e).strip()
        first = text.splitlines()[0][:200] if text else type(e).__name__
        return StoreError(f"lost the connection to PostgreSQL at {self.where} ({first}); "
                          f"{advice}")

    async def _run(self, job: Callable[[Any], Coroutine[Any, Any, T]], *,
                   retry: bool | Callable[[Any], Coroutine[Any, Any, T]] = False,
                   advice: str = _AGAIN) -> T:
        """``job`` on a pooled connection of this loop. ``retry``: True when ``job`` may run
        again after its connection died (a read, an idempotent write), or the job to run
        instead; ``advice``: what the caller can do when it cannot."""
        # store calls run on connections of the caller's own loop: a hop to the io thread
        # per call costs milliseconds of GIL hand-over under load
        if self._closed:
            raise StoreError("this PostgresStore is closed; create a new PostgresStore(dsn)")
        loop = asyncio.get_running_loop()
        pool = self._loop_pools.get(loop)
        if pool is None:
            pool = self._loop_pools[loop] = self._new_pool(self._pool_size)
        again = job if retry is True else retry or None
        return await pool.run(job, retry=again, advice=advice)

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
        allow_files: bool = False,
    ) -> Any:
        """Run a read-only query; rows come back as a ``pandas.DataFrame`` (blocks this
        thread). Only reads run (``_store/user_sql.py``), in a ``READ ONLY`` transaction
        that is rolled back; server file functions need ``allow_files=True``."""
        return self._io.call(self._query(sql, params, allow_files))

    async def query_async(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
        allow_files: bool = False,
    ) -> Any:
        return await self._io.run(self._query(sql, params, allow_files))

    async def query_head_async(
        self, sql: str, rows: int, params: Sequence[Any] | dict[str, Any] | None = None, *,
        allow_files: bool = False,
    ) -> tuple[Any, int]:
        """The first ``rows`` rows of the query as a ``pandas.DataFrame`` and how many rows it
        has, from one run: a server-side cursor fetches the first rows and ``MOVE`` counts
        the rest on the server (none of them reaches Python). A bare ``%lash sql`` shows
        this (ADR 192)."""
        out: tuple[Any, int] = await self._io.run(
            self._query(sql, params, allow_files, head=rows))
        return out

    async def _query(self, sql: str, params: Any, allow_files: bool, *,
                     head: int | None = None) -> Any:
        checked = user_sql.check(sql, allow_files=allow_files, dialect="postgres")
        statements = checked.statements or (sql,)
        if params and len(statements) > 1:
            raise QueryNotAllowed(
                "query parameters go with one statement; run the statements one at a time")
        calls = [translate(text, params) for text in statements]

        async def job(con: Any) -> Any:
            import psycopg

            await con.execute("BEGIN READ ONLY")
            try:
                if head is not None and len(calls) == 1:
                    found = await _head(con, *calls[0], head)
                    if found is not None:
                        return found
                result: Any = None
                for text, args in calls:
                    # prepared: PostgreSQL then refuses a second statement in ``text`` (one the
                    # parser could not see could COMMIT this transaction and then write)
                    cur = await con.execute(text, args, prepare=True)
                    names = [d.name for d in cur.description] if cur.description else []
                    result = frame(names, await cur.fetchall() if names else [])
                return result if head is None else (result.head(head), len(result))
            except psycopg.errors.ReadOnlySqlTransaction as e:
                raise QueryNotAllowed(
                    f"store queries only read; PostgreSQL refused it ({str(e).splitlines()[0]})"
                ) from e
            except psycopg.errors.SyntaxError as e:
                if "multiple commands" not in str(e):
                    raise
                raise QueryNotAllowed(
                    "store queries with PostgreSQL-only syntax run one statement at a time; "
                    "send the statements separately") from e
            finally:
                await con.execute("ROLLBACK")

        return await self._pool.run(job, retry=job)

    async def _close_loop_pools(self) -> None:
        here = asyncio.get_running_loop()
        for loop, pool in list(self._loop_pools.items()):
            if loop is here:
                with contextlib.suppress(Exception):
                    await pool.close()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(pool.close(), loop)
        self._loop_pools.clear()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._close_loop_pools()
        with contextlib.suppress(Exception):
            await self._io.run(self._shutdown())
        self._io.stop()

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        for loop, pool in list(self._loop_pools.items()):
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(pool.close(), loop)
        self._loop_pools.clear()
        with contextlib.suppress(Exception):
            self._io.call(self._shutdown(), timeout=10)
        self._io.stop()

    async def _shutdown(self) -> None:
        await self._listener.close()
        await self._pool.close()

    # ------------------------------------------------------------------ sessions
    async def load_session(
        self, session_id: str, scope: ReadScope = ReadScope.FULL_GRAPH
    ) -> PersistedSession | None:
        return await self._run(lambda con: reads.load_session(con, session_id, scope),
                               retry=True)

    async def commit(self, commit: RuntimeCommit) -> CommitResult:
        result = await self._run(
            lambda con: apply_commit(con, commit, self._wrote_tools),
            retry=lambda con: apply_again(con, commit, self._wrote_tools),
            advice="the server did not come back; whether the turn was stored shows when the "
                   "session is opened again (%lash open), after the server is back")
        if commit.completed_claims:  # lash_queue tells other processes
            self._queue_watch.changed(commit.session_id)
        return result

    async def list_sessions(self) -> list[SessionMeta]:
        return await self._run(reads.list_sessions, retry=True)

    async def load_events(self, session_id: str, turn_id: str | None = None) -> list[TurnActivity]:
        return await self._run(lambda con: reads.load_events(con, session_id, turn_id),
                               retry=True)

    async def load_turns(self, session_id: str) -> list[TurnRecord]:
        return await self._run(lambda con: reads.load_turns(con, session_id), retry=True)

    async def delete_session(self, session_id: str) -> None:
        await self._run(lambda con: reads.delete_session(con, session_id), retry=True)

    # ------------------------------------------------------------------ retention
    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(node_ids))
        return await self._run(lambda con: reads.tombstone_nodes(con, session_id, ids),
                               retry=True)

    async def vacuum(self) -> VacuumReport:
        """Delete tombstoned nodes (PostgreSQL's autovacuum gives the space back)."""
        removed = await self._run(reads.delete_tombstoned)
        return VacuumReport(removed, removed_blob_count=await self.prune_blobs())

    # ------------------------------------------------------------------ blobs
    async def put_blobs(self, blobs: Sequence[tuple[AttachmentRef, bytes]]) -> None:
        await self._run(lambda con: blob_rows.put(con, blobs), retry=True)

    async def get_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        return await self._run(lambda con: blob_rows.get(con, blob_ids), retry=True)

    async def prune_blobs(self, *, older_than_s: float = 3600.0) -> int:
        return await self._run(lambda con: blob_rows.prune(con, older_than_s))

    # ------------------------------------------------------------------ leases
    async def try_acquire_lease(
        self, session_id: str, owner_id: str, ttl_ms: int = DEFAULT_LEASE_TTL_MS
    ) -> Lease | LeaseBusy:
        # the same owner acquiring again gets the same lease back: safe to run again
        return await self._run(
            lambda con: leases.try_acquire(con, session_id, owner_id, ttl_ms), retry=True)

    async def renew_lease(self, lease: Lease, ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> Lease:
        return await self._run(lambda con: leases.renew(con, lease, ttl_ms), retry=True)

    async def release_lease(self, lease: Lease) -> None:
        await self._run(lambda con: leases.release(con, lease), retry=True)

    async def forget_lease(self, lease: Lease) -> None:
        """``release_lease``; the row goes when the session is not stored and has no queued
        work (``base.LeaseForgetter``, ADR 0148)."""
        await self._run(lambda con: leases.forget(con, lease), retry=True)

    # ------------------------------------------------------------------ queue
    async def enqueue(self, draft: QueuedWorkDraft) -> QueuedWorkBatch:
        """Enqueues that arrive while this loop's last ones are being written are written
        together: one transaction (and one ``lash_work`` per session) for the burst. Each
        call returns once its batch is committed."""
        loop = asyncio.get_running_loop()
        burst = self._bursts.get(loop)
        if burst is None:
            burst = self._bursts[loop] = _Burst()
        fut: asyncio.Future[QueuedWorkBatch] = loop.create_future()
        burst.waiting.append((draft, fut))
        if burst.writer is None:
            burst.writer = loop.create_task(self._write_bursts(burst))
        return await fut

    async def _write_bursts(self, burst: _Burst) -> None:
        try:
            while burst.waiting:
                taken, burst.waiting = burst.waiting, []
                drafts = [d for d, _ in taken]
                results: list[Any]
                try:
                    values = queued_work.draw(drafts)  # ids first: a lost answer finds them
                    results = await self._run(
                        functools.partial(queued_work.enqueue_many, drafts=drafts, values=values),
                        retry=functools.partial(queued_work.enqueue_again, drafts=drafts,
                                                values=values),
                        advice=_ENQUEUE)
                except Exception as e:
                    if len(drafts) == 1 or not _rolled_back(e):
                        results = [e] * len(drafts)
                    else:  # one bad draft fails alone: the others are written, one by one
                        results = [await _settle(self._run(functools.partial(
                            queued_work.enqueue, d=d), advice=_ENQUEUE)) for d in drafts]
                for (_, fut), r in zip(taken, results, strict=True):
                    if fut.done():
                        continue  # the caller stopped waiting; the batch is written anyway
                    if isinstance(r, BaseException):
                        fut.set_exception(r)
                    else:
                        fut.set_result(r)
        finally:
            burst.writer = None
            for _, fut in burst.waiting if self._closed else ():
                if not fut.done():
                    fut.set_exception(StoreError(
                        "this PostgresStore is closed; create a new PostgresStore(dsn)"))

    async def list_queued_work(
        self, session_id: str, *, include_claimed: bool = False
    ) -> list[QueuedWorkBatch]:
        return await self._run(
            lambda con: queued_work.list_queued(con, session_id, include_claimed), retry=True)

    async def claim_queued_work(
        self,
        lease: Lease,
        *,
        boundary: ClaimBoundary = ClaimBoundary.IDLE,
        max_batches: int = 64,
        batch_ids: Sequence[str] | None = None,
        commands: bool = False,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> QueueClaim | None:
        nonce = fresh_id()  # finds the claim again if the connection dies (ADR 0170)

        async def again(con: Any) -> QueueClaim | None:
            got = await queued_work.claimed_already(con, lease, boundary, nonce)
            return got if got is not None else await queued_work.claim(
                con, lease, boundary, max_batches, batch_ids, commands, max_attempts, nonce)

        return await self._run(lambda con: queued_work.claim(
            con, lease, boundary, max_batches, batch_ids, commands, max_attempts, nonce),
            retry=again,
            advice="nothing ran; a batch whose claim was written goes back to the queue when "
                   "the lease ends: drain again once the server is back")

    async def cancel_queued_work_batch(self, session_id: str, batch_id: str) -> QueuedWorkBatch | None:
        seen: list[QueuedWorkBatch] = []  # what a run read before its COMMIT went out
        batch = await self._run(
            lambda con: queued_work.cancel(con, session_id, batch_id, seen),
            retry=lambda con: queued_work.cancel_again(con, session_id, batch_id, seen),
            advice="list the queue (%lash queue) and cancel again if the batch is still there")
        if batch is not None:
            self._queue_watch.changed(session_id)
        return batch

    async def abandon_claim(self, claim: QueueClaim, *, error: str | None = None,
                            max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                            count_attempt: bool = True) -> None:
        # idempotent (it matches the claim id, which it clears): run again on a new
        # connection when the first one dies under it, applied or not
        await self._run(lambda con: queued_work.abandon(con, claim, error, max_attempts,
                                                        count_attempt=count_attempt),
                        retry=True,
                        advice="the batch goes back to the queue when the lease ends")
        self._queue_watch.changed(claim.session_id)

    async def sessions_with_ready_work(self) -> list[str]:
        return await self._run(queued_work.sessions_with_ready_work, retry=True)

    # ------------------------------------------------------------------ LISTEN / NOTIFY
    async def queue_changes(self) -> QueueWatch:
        """The watch ``await_queued_work_batch`` waits on; starts the listener so changes by
        other processes (``lash_queue``) wake it too (without it, the waiter's reads still
        see them)."""
        with contextlib.suppress(Exception):
            await self._io.run(self._listener.start())
        return self._queue_watch

    async def wait_for_work(self, timeout_s: float) -> bool:
        """Wait until work is enqueued anywhere (True) or ``timeout_s`` passes (False)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()

        async def register() -> None:
            await self._listener.start()
            self._listener.add_work_waiter(loop, fut)

        try:
            await self._io.run(register())
        except Exception:
            await asyncio.sleep(timeout_s)  # no listener: behave like a poll interval
            return False
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return False
        finally:
            if not self._io.closed:
                self._io.loop.call_soon_threadsafe(self._listener.discard_work_waiter, loop, fut)

    async def request_turn_cancel(self, session_id: str, turn_id: str) -> None:
        """Ask whichever process runs ``turn_id`` to stop it (also reaches a turn that starts
        later: the request is kept until the turn commits)."""

        async def job(con: Any) -> None:
            async with con.transaction():
                await con.execute(
                    "INSERT INTO turn_cancel_requests SELECT %(sid)s, %(tid)s, lash_now_ms() "
                    "WHERE NOT EXISTS (SELECT 1 FROM turns WHERE session_id = %(sid)s AND "
                    "turn_id = %(tid)s AND status = 'committed') ON CONFLICT DO NOTHING",
                    {"sid": session_id, "tid": turn_id})
                await con.execute("SELECT pg_notify('lash_cancel', %s)",
                                  [f"{session_id}\n{turn_id}"])

        await self._run(job, retry=True)  # the row is kept once; a second NOTIFY is harmless

    async def watch_turn_cancel(
        self, session_id: str, turn_id: str, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call ``callback`` once (on the store's io thread) when a Stop for this turn
        arrives; returns the unsubscribe callable. A request found at watch time and its
        late NOTIFY are one Stop: the callback never runs twice."""
        once_lock = threading.Lock()
        fired = [False]

        def once() -> None:
            with once_lock:
                if fired[0]:
                    return
                fired[0] = True
            callback()

        async def setup() -> int:
            await self._listener.start()
            key = self._listener.add_watch(session_id, turn_id, once)

            async def pending(con: Any) -> bool:
                cur = await con.execute(
                    "SELECT 1 FROM turn_cancel_requests WHERE session_id = %s AND turn_id = %s",
                    [session_id, turn_id])
                return await cur.fetchone() is not None

            if await self._pool.run(pending, retry=pending):
                once()
            return key

        key = await self._run_io(setup())

        def unsubscribe() -> None:
            if not self._io.closed:
                self._io.loop.call_soon_threadsafe(
                    self._listener.remove_watch, session_id, turn_id, key)

        return unsubscribe

    async def _run_io(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise StoreError("this PostgresStore is closed; create a new PostgresStore(dsn)")
        return await self._io.run(coro)


class _Burst:
    """One event loop's enqueues waiting to be written, and the task writing them."""

    def __init__(self) -> None:
        self.waiting: list[tuple[QueuedWorkDraft, asyncio.Future[QueuedWorkBatch]]] = []
        self.writer: asyncio.Task[None] | None = None


def _rolled_back(e: BaseException) -> bool:
    """``e`` left nothing written: raised before any statement (a draft that cannot be
    written) or refused by the server. A lost connection may have lost the COMMIT's answer,
    not the COMMIT: writing the drafts again could queue them twice."""
    import psycopg

    if not isinstance(e, psycopg.Error):
        return not isinstance(e, StoreError)
    return not isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError))


async def _settle(job: Coroutine[Any, Any, T]) -> Any:
    try:
        return await job
    except Exception as e:
        return e


async def _head(con: Any, text: str, args: Any, rows: int) -> tuple[Any, int] | None:
    """``query_head_async``'s read of one statement, in the caller's read-only transaction:
    through a cursor (``FETCH`` its first rows, ``MOVE`` past the rest: the count), so the
    query runs once and the rest stays on the server. None for a statement a cursor cannot
    run (``SHOW``, ``EXPLAIN``): the caller reads it whole and cuts it."""
    import psycopg

    await con.execute("SAVEPOINT lash_head")
    try:  # prepared: a second statement hidden in ``text`` is refused, as in _query
        await con.execute(f"DECLARE lash_head NO SCROLL CURSOR FOR {text}", args, prepare=True)
    except psycopg.errors.SyntaxError:
        await con.execute("ROLLBACK TO SAVEPOINT lash_head")
        return None
    cur = await con.execute(f"FETCH FORWARD {int(rows)} FROM lash_head")
    names = [d.name for d in cur.description] if cur.description else []
    got = await cur.fetchall()
    moved = await con.execute("MOVE FORWARD ALL IN lash_head")
    rest = int((moved.statusmessage or "MOVE 0").split()[-1])
    return frame(names, got), len(got) + rest
