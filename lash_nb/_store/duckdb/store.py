"""``DuckDBStore``: the durable store, one DuckDB file holding many sessions.

Theory of operation
- Every DuckDB call runs on the store's one worker thread (``worker.py``), which owns the
  connection; the async methods await it, so the event loop never waits for another job.
  Two exceptions run on the caller's thread while that thread is idle (``run_here``): a
  read (``query``, reports; ADR 113) and a commit (ADR 131: the turn awaits it anyway, and
  the two hops cost about as much as its own Python); the event loop then waits for
  that one commit's INSERT (~1 ms), never for a file, a full disk or a fold.
- Each method is one transaction. ``commit`` follows ``base.py`` (stamp, lease, CAS,
  claims) and then writes one ``commit_log`` row that later folds into the typed tables
  (``journal.py``), so after a crash the file holds the state before or after a commit,
  never part of one. Every read of the typed tables folds pending commits first.
- Every ``DuckDBStore`` of one file in one process shares one worker (DuckDB would hand
  them one database anyway, and the in-memory leases and pending commits must be one
  set); the file's worker stops when the last of them closes. The first one's
  ``idle_release_s`` and ``fold_idle_s`` apply.
- The file is held until another lash_nb process waits for it in the file's line: then it
  is released at once (between two jobs, ``share.py``), or after ``idle_release_s`` idle when
  that is set (default ``None``: a process that reopens pays ~30 ms and reloads the session
  heads, which made every turn at a human's pace slow; ADR 0033), and reopened on the next
  call, waiting in line up to ``lock_timeout_s`` (then
  :class:`StoreLockedError` naming the holder). A turn's terminal commit waits up to
  ``commit_wait_s`` instead, for the file and for disk space: a finished turn is not thrown
  away because the file is busy or the disk briefly full. Leases, claims and queue rows live
  in the file, so they hold across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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
from ..._errors import StoreError, StoreInterrupted, StoreLockedError, StorePathError
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
from . import backup, compact, idle_poll, leases, queued_work, reads, user_query
from . import blobs as blob_rows
from . import commit as commits
from .arrow import import_arrow_in_background
from .blobs import BLOB_GRACE_S
from .hold import Hold
from .journal import fold
from .lock import BLOCK_SIZE, advised, check_path, is_disk_full, is_lock_conflict, open_connection
from .queries import Queries
from .share import Line
from .sigint import (
    Interrupted,
    result_unless_interrupted,
    sigint_raises,
)
from .transaction import run_in_transaction
from .worker import ConnectionWorker

T = TypeVar("T")
_SHARED: dict[str, ConnectionWorker] = {}  # realpath -> the worker of that file here
_SHARED_LOCK = threading.Lock()


class DuckDBStore(Queries):
    """Sessions, turns, usage, events and queued work in one DuckDB file.

    ``idle_release_s``: seconds without work after which the file is released for other
    processes (default ``None``: held until :meth:`close` or :meth:`release_file`; a waiting
    lash_nb process gets it between two calls either way; set it when a program that does not
    use lash_nb, like the duckdb CLI, must open the file while this store is idle).
    ``lock_timeout_s``: how long a call waits for another process that
    holds the file. ``commit_wait_s``: how long a finished turn's commit waits for the file
    or for disk space before it gives up. ``read_only``: open without writing
    (only reads and :meth:`query` succeed). ``fold_idle_s``: seconds without work after
    which logged commits are folded into the tables (``None``: only when a read, the size
    bound or a release needs it).
    """

    durable = True
    sql_dialect = "duckdb"  # what ``query()`` speaks; the report SQL reads it

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        idle_release_s: float | None = None,
        lock_timeout_s: float = 10.0,
        read_only: bool = False,
        fold_idle_s: float | None = 0.05,
        commit_wait_s: float = 600.0,
    ) -> None:
        self.path = os.fspath(path)
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s
        self.commit_wait_s = commit_wait_s
        check_path(self.path, read_only)
        self._key = os.path.realpath(self.path)
        self._closed = False
        self._burst: list[_Waiting] = []  # enqueue()
        self._burst_lock = threading.Lock()
        self._statement = user_query.Statement()  # a user's query, to interrupt
        with _SHARED_LOCK:  # stores of one file in one process share its worker (and hold)
            shared = _SHARED.get(self._key)
            if shared is not None and not shared.stopped:
                if shared.read_only != read_only:
                    raise StoreError(
                        f"{self.path} is already open in this process with another read_only "
                        "setting; use one DuckDBStore per file in a process"
                    )
                shared.users += 1
                self._worker = shared
                return
            line = Line(self.path)
            if not line.on and line.possible and not read_only:  # DuckDB's .wal needs it too
                raise advised(StorePathError, lambda ro, _: (
                    f"cannot open {line.path} beside the store ({line.error}); use a writable "
                    f"folder, or {ro} to only read it"))
            self._worker = ConnectionWorker(
                lambda wait_s, observer, stop: open_connection(
                    self.path, read_only=read_only, lock_timeout_s=wait_s, line=line,
                    observer=observer, stop=stop, held_before=self._held_before,
                ),
                idle_release_s=idle_release_s,
                fold_idle_s=fold_idle_s,
                name=f"lash-duckdb:{os.path.basename(self.path)}",
                path=self.path,
                line=line,
                lock_timeout_s=lock_timeout_s,
                commit_wait_s=commit_wait_s,
            )
            self._worker.read_only = read_only
            _SHARED[self._key] = self._worker
        stopped = threading.Event()  # the caller's interrupt ends a wait for the file
        try:  # open now so a bad file is refused here, not at the first call
            with sigint_raises():
                result_unless_interrupted(self._worker.submit(
                    lambda con: None,
                    open_stop=lambda: "interrupt" if stopped.is_set() else None,
                ), stopped.set)
        except (Interrupted, KeyboardInterrupt) as e:
            self._stop()
            error = e.error if isinstance(e, Interrupted) else None
            held = f", held by {error.holder}" if isinstance(error, StoreLockedError) else ""
            raise StoreInterrupted(
                f"the interrupt stopped the wait for {self.path}{held}; nothing was opened or "
                "changed: open it again once that process lets it go") from None
        except BaseException:
            self._stop()
            raise

    def __repr__(self) -> str:
        state = "holding" if self._worker.holding else "released"
        return f"DuckDBStore({self.path!r}, {state})"

    @property
    def holding_file(self) -> bool:
        """True while this process holds the file open."""
        return self._worker.holding

    @property
    def file_replaced(self) -> bool:
        """The file this store opened is no longer at its path (deleted, moved away, or
        replaced while held): a commit here would be refused (``NotTheHeldFile``); a new store
        of the path, after this one is closed, opens what is there now."""
        return self._worker.file_replaced()

    @property
    def unfolded_commits(self) -> int:
        """Commits logged in ``commit_log`` and not yet folded into the tables (reads fold
        them first, so no read ever misses one)."""
        hold = self._worker.hold
        return len(hold.pending) if hold is not None else 0

    @property
    def opens(self) -> int:
        """How many times the file was opened (reopens after idle release included)."""
        return self._worker.opens

    # ------------------------------------------------------------------ plumbing
    async def _run(self, job: Callable[[Any], T]) -> T:
        """``job(con)`` in one transaction on the worker thread, pending commits folded in
        first (``job`` reads the typed tables)."""
        def run(con: Any) -> T:
            self._fold(con)
            return self._txn(con, job)

        return await asyncio.wrap_future(self._worker.submit(run))

    def _fold(self, con: Any) -> None:
        hold = self._worker.hold
        if hold is not None and hold.pending:
            fold(con, hold)

    async def _run_held(self, job: Callable[[Any, Hold], T], *, fold_first: bool = False) -> T:
        """``job(con, hold)`` in one transaction; ``hold`` is what we know while holding.
        Queue jobs leave pending commits alone (they touch no table a commit log row feeds)."""
        def run(con: Any) -> T:
            hold = self._worker.hold
            assert hold is not None
            if fold_first:
                self._fold(con)
            return self._txn(con, lambda c: job(c, hold), hold)

        return await asyncio.wrap_future(self._worker.submit(run))

    async def _run_memory(self, job: Callable[[Any, Hold], T]) -> T:
        """``job(con, hold)`` with no transaction: in-memory lease work (may read once)."""
        def run(con: Any) -> T:
            hold = self._worker.hold
            assert hold is not None
            return job(con, hold)

        return await asyncio.wrap_future(self._worker.submit(run))

    def _txn(self, con: Any, job: Callable[[Any], T], hold: Hold | None = None) -> T:
        import duckdb

        try:
            return run_in_transaction(con, job, hold=hold)
        except duckdb.InvalidInputException as e:
            if "read-only mode" not in str(e):
                raise
            raise self._read_only_error() from e

    def _read_only_error(self) -> StoreError:
        return StoreError(
            f"{self.path} was opened with read_only=True; open DuckDBStore without it to write"
        )

    def quarantined_commits(self) -> Any:
        """Commits that could not be folded into the tables, kept as written (one row each:
        ``session_id``, ``head_revision``, ``turn_ids``, ``error``, ``written_at``,
        ``quarantined_at``, ``body``) as a ``pandas.DataFrame``; empty when there are none."""
        def job(con: Any) -> Any:
            con.complete()
            self._fold(con)
            return user_query.quarantined(con)

        self._refuse_replaced()
        return self._worker.submit(job).result()

    async def backup(self, dest: str | os.PathLike[str], *, overwrite: bool = False) -> int:
        """Copy the whole store to ``dest`` (a new DuckDB file) while processes use it: every
        commit stored so far, consistent, nothing of it left in a ``.wal`` (``backup.py``,
        ADR 175); the file this process holds if it was deleted or replaced at its path (ADR
        235). Returns the copy's size in bytes."""
        if self.read_only:
            raise self._read_only_error()
        target = backup.check_dest(self.path, os.fspath(dest), overwrite=overwrite)
        return await asyncio.wrap_future(self._worker.submit(backup.job(self._worker, target)))

    def _held_before(self) -> bool:
        """This store's worker held the file once (ADR 185: a path with no file then is not
        opened as a new store). False before the worker exists."""
        worker = getattr(self, "_worker", None)
        return worker is not None and worker.held_a_file

    async def release_file(self) -> None:
        """Let other processes have the file now (a polling worker calls this when idle);
        the next call reopens it."""
        await asyncio.wrap_future(self._worker.release())

    async def close(self) -> None:
        await asyncio.wrap_future(self._stop())

    def close_sync(self) -> None:
        self._stop().result()

    def _stop(self) -> Any:
        """Detach this store; the last store of the file stops the worker (folds, releases)."""
        from concurrent.futures import Future

        with _SHARED_LOCK:
            if self._closed:
                done: Future[None] = Future()
                done.set_result(None)
                return done
            self._closed = True
            self._worker.users -= 1
            if self._worker.users > 0:
                done = Future()
                done.set_result(None)
                return done
            if _SHARED.get(self._key) is self._worker:
                del _SHARED[self._key]
            return self._worker.stop()

    # ------------------------------------------------------------------ sessions
    async def load_session(
        self, session_id: str, scope: ReadScope = ReadScope.FULL_GRAPH
    ) -> PersistedSession | None:
        self._refuse_replaced()
        return await self._run(lambda con: reads.load_session(con, session_id, scope))

    async def commit(self, commit: RuntimeCommit) -> CommitResult:
        if self.read_only:
            raise self._read_only_error()
        import_arrow_in_background()  # this commit's fold will need pyarrow (arrow.py)

        first: list[Hold] = []
        bound: list[bool] = []  # a commit run here passed the log's size bound

        def run(con: Any) -> CommitResult:
            hold = self._worker.hold
            assert hold is not None
            self._worker.check_file()
            if not first:
                first.append(hold)
            elif hold is first[0] and commit.lease is not None:  # a retry (disk full), same hold
                leases.keep_through_wait(hold, con, commit.lease)
            result = commits.commit(con, hold, commit, lambda job: self._txn(con, job, hold))
            if self._worker.on_its_thread():
                commits.fold_at_bound(con, hold)
            elif commits.over_bound(hold):
                bound.append(True)  # run here: the store's thread folds, nobody waits for it
            return result

        terminal = commit.turn is not None  # a finished turn: wait generously rather than lose it
        here = None
        if commit.replace_graph is None:  # an idle store: commit here, no trip to its thread
            here = self._worker.run_here(run, write=True, terminal_commit=terminal)
        if here is not None:
            result = here.result()
            if bound:
                self._worker.submit(self._fold_at_bound)
        elif terminal:
            result = await asyncio.wrap_future(self._worker.submit(
                run, wait_s=self.commit_wait_s, terminal_commit=True))
        else:
            result = await asyncio.wrap_future(self._worker.submit(run))
        if commit.completed_claims:  # its batches are done: wake who awaits them
            self._worker.queue_watch.changed(commit.session_id)
        return result

    def _fold_at_bound(self, con: Any) -> None:
        hold = self._worker.hold
        if hold is not None:
            commits.fold_at_bound(con, hold)

    async def list_sessions(self) -> list[SessionMeta]:
        self._refuse_replaced()
        return await self._run(reads.list_sessions)

    async def load_events(
        self, session_id: str, turn_id: str | None = None
    ) -> list[TurnActivity]:
        self._refuse_replaced()
        return await self._run(lambda con: reads.load_events(con, session_id, turn_id))

    async def load_turns(self, session_id: str) -> list[TurnRecord]:
        self._refuse_replaced()
        return await self._run(lambda con: reads.load_turns(con, session_id))

    async def delete_session(self, session_id: str) -> None:
        def delete(con: Any, hold: Hold) -> None:
            reads.delete_session(con, session_id)  # pending commits were folded first
            hold.after_commit(lambda: hold.forget(session_id))

        await self._run_held(delete, fold_first=True)
        self._worker.queue_watch.changed(session_id)

    # ------------------------------------------------------------------ retention
    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> int:
        return await self._run(lambda con: compact.tombstone(con, session_id, node_ids))

    async def vacuum(self) -> VacuumReport:
        """Delete tombstoned nodes, then give the free space back to the file system
        (``compact.py``: a fresh copy swapped in while this process holds the file)."""
        if self.read_only:
            raise self._read_only_error()
        return await asyncio.wrap_future(self._worker.submit(self._vacuum_job))

    def _vacuum_job(self, con: Any) -> VacuumReport:
        """One worker job: nothing else of this process runs between its steps."""
        self._fold(con)
        removed = self._txn(con, compact.delete_tombstoned)
        blobs = self._txn(con, lambda c: blob_rows.prune(c, BLOB_GRACE_S))
        before, after = compact.swap_in_copy(con, self.path, self._worker.hold, _block_size(con))
        if after != before:  # the file under this connection was replaced: reopen it
            self._worker.drop_connection()
        return VacuumReport(removed, before, after, removed_blob_count=blobs)

    # ------------------------------------------------------------------ blobs
    async def put_blobs(self, blobs: Sequence[tuple[AttachmentRef, bytes]]) -> None:
        if self.read_only:
            raise self._read_only_error()
        await self._run_held(lambda con, hold: blob_rows.put(con, blobs))

    async def get_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        return await self._run_held(lambda con, hold: blob_rows.get(con, blob_ids))

    async def prune_blobs(self, *, older_than_s: float = BLOB_GRACE_S) -> int:
        return await self._run_held(lambda con, hold: blob_rows.prune(con, older_than_s),
                                    fold_first=True)

    # ------------------------------------------------------------------ leases
    async def try_acquire_lease(
        self, session_id: str, owner_id: str, ttl_ms: int = DEFAULT_LEASE_TTL_MS
    ) -> Lease | LeaseBusy:
        if not self.read_only:
            import_arrow_in_background()  # a commit follows; its fold needs pyarrow (arrow.py)
        held = None if self._worker.stopped else self._worker.hold
        if held is not None:  # memory has the row: no trip to the store thread (ADR 90)
            got = leases.try_acquire_here(held, session_id, owner_id, ttl_ms)
            if got is not None:
                return got
        return await self._run_memory(
            lambda con, hold: leases.try_acquire(hold, con, session_id, owner_id, ttl_ms))

    async def renew_lease(self, lease: Lease, ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> Lease:
        return await self._run_memory(lambda con, hold: leases.renew(hold, con, lease, ttl_ms))

    async def release_lease(self, lease: Lease) -> None:
        await self._run_memory(lambda con, hold: leases.release(hold, con, lease))

    async def forget_lease(self, lease: Lease) -> None:
        """``release_lease``; the row goes when the session is not stored and has no queued
        work (``base.LeaseForgetter``, ADR 0148)."""
        await self._run_held(lambda con, hold: leases.forget(hold, con, lease), fold_first=True)

    # ------------------------------------------------------------------ queue
    async def enqueue(self, draft: QueuedWorkDraft) -> QueuedWorkBatch:
        """Enqueues that arrive while the store thread is busy are written together: one
        transaction for the burst (one commit per enqueue at most, never more)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[QueuedWorkBatch] = loop.create_future()
        with self._burst_lock:
            self._burst.append((draft, loop, fut))
            first = len(self._burst) == 1
        if first:
            self._submit_burst()
        return await fut

    def _submit_burst(self) -> None:
        taken: list[_Waiting] = []

        def take() -> None:
            if not taken:
                with self._burst_lock:
                    taken.extend(self._burst)
                    self._burst = []

        def job(con: Any) -> list[Any]:
            take()  # once: a job run again after a lock conflict writes the same burst
            hold = self._worker.hold
            assert hold is not None
            self._worker.check_file()
            drafts = [d for d, _, _ in taken]
            try:
                return self._txn(con, lambda c: queued_work.enqueue_many(c, hold, drafts), hold)
            except Exception as e:
                if len(drafts) == 1 or is_lock_conflict(e) or is_disk_full(e):
                    raise  # the worker waits for the file and runs the job again
            out: list[Any] = []
            for d in drafts:  # one bad draft fails alone: the others are written
                try:
                    out.append(self._txn(con, functools.partial(queued_work.enqueue, hold=hold, d=d),
                                         hold))
                except Exception as err:
                    if is_lock_conflict(err):
                        raise
                    out.append(err)
            return out

        def settle(done: Future[list[Any]]) -> None:
            take()  # the job never ran (the file could not be opened): fail the burst
            err = done.exception()
            results: list[Any] = [err] * len(taken) if err is not None else done.result()
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
            for (_, loop, fut), r in zip(taken, results, strict=True):
                by_loop.setdefault(loop, []).append((fut, r))
            for loop, settled in by_loop.items():  # one wake-up per loop, not one per enqueue
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody awaits
                    loop.call_soon_threadsafe(_resolve, settled)

        try:
            submitted = self._worker.submit(job)
        except BaseException as e:  # closed: fail this burst now, later enqueues start anew
            failed: Future[list[Any]] = Future()
            failed.set_exception(e)
            settle(failed)
            return
        submitted.add_done_callback(settle)

    async def list_queued_work(
        self, session_id: str, *, include_claimed: bool = False
    ) -> list[QueuedWorkBatch]:
        self._refuse_replaced()
        return await self._run_held(
            lambda con, hold: queued_work.list_queued(con, hold, session_id, include_claimed)
        )

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
        held = None if self._worker.stopped else self._worker.hold
        if held is not None and held.nothing_to_claim(
                lease, early_only=commands or boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT):
            return None  # memory shows nothing to take: no trip to the store thread (hold.py)

        def run(con: Any) -> QueueClaim | None:
            hold = self._worker.hold
            assert hold is not None
            # reads outside a transaction; a claim (or a park) is one transaction
            return queued_work.claim(
                con, hold, lease, boundary, max_batches, batch_ids, commands, max_attempts,
                in_txn=lambda job: self._txn(con, job, hold))

        return await asyncio.wrap_future(self._worker.submit(run))

    async def cancel_queued_work_batch(
        self, session_id: str, batch_id: str
    ) -> QueuedWorkBatch | None:
        batch = await self._run_held(
            lambda con, hold: queued_work.cancel(con, hold, session_id, batch_id))
        if batch is not None:
            self._worker.queue_watch.changed(session_id)
        return batch

    async def abandon_claim(self, claim: QueueClaim, *, error: str | None = None,
                            max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                            count_attempt: bool = True) -> None:
        await self._run_held(lambda con, hold: queued_work.abandon(
            con, hold, claim, error, max_attempts, count_attempt=count_attempt), fold_first=True)
        self._worker.queue_watch.changed(claim.session_id)  # it may have parked a batch

    async def queue_changes(self) -> QueueWatch:
        return self._worker.queue_watch

    async def sessions_with_ready_work(self) -> list[str]:
        worker = self._worker
        if idle_poll.still_quiet(worker, commits.now_ms()):
            return []  # nothing can have changed: the file is not reopened (idle_poll.py)

        def poll(con: Any, hold: Hold) -> list[str]:
            t = commits.now_ms()
            sids = queued_work.sessions_with_ready_work(con, hold, t)
            worker.quiet = None if sids else idle_poll.mark(con, worker, hold, t)
            return sids

        return await self._run_held(poll)


_Waiting = tuple[QueuedWorkDraft, asyncio.AbstractEventLoop, "asyncio.Future[QueuedWorkBatch]"]


def _resolve(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """On the awaiting loop: each enqueue's batch or error (a cancelled wait is left)."""
    for fut, r in settled:
        if fut.done():
            continue
        if isinstance(r, BaseException):
            fut.set_exception(r)
        else:
            fut.set_result(r)


def _block_size(con: Any) -> int:
    """The held file's block size, kept by its compacted copy (ADR 0034)."""
    row = con.execute("SELECT block_size FROM pragma_database_size() "
                      "WHERE database_name = current_database()").fetchone()
    return int(row[0]) if row and row[0] else BLOCK_SIZE
