"""The one thread that owns a DuckDB store's connection.

Theory of operation
- States: *released* (no connection; the file is free for other processes) and *holding*
  (a connection is open). Only the worker thread moves between them and only it ever
  touches the connection (duckdb 2.0 refuses one connection used from two threads).
- Jobs arrive on a queue. A job in the released state first opens the file, waiting in the
  file's line while another process holds it (``share.py``, ``lock.py``).
- **Hand-over**: while holding, the worker looks at the line after every job and every
  ``HANDOVER_POLL_S`` while idle. When another process waits and this one has held the file
  for its *slice* (or is idle), it folds, writes dirty leases and closes the connection; its
  next job waits in line behind the waiters. So a worker draining a queue and a notebook
  share the file turn by turn, in arrival order. The slice is ``MIN_SLICE_S``, or as long
  as this hold's open took if longer (at most ``MAX_SLICE_S``): a loaded machine slows the opens (DuckDB's connect
  replays the ``.wal``), and with a fixed slice two busy processes spent nearly all their
  time opening (ADR 130). Every let-go (a hand-over, an idle release, a stop) checkpoints
  before it closes, so the file it leaves holds every commit and no ``.wal`` (ADR 193: a
  user may move or copy the file alone the moment it is let go).
- **Lock conflicts inside a job** (DuckDB can refuse a commit on the ``.wal`` lock) release
  the connection and run the job again once the file is back: jobs are transactions, so a
  refused one left nothing behind. Each job waits at most its ``wait_s`` (``lock_timeout_s``;
  a turn's terminal commit gets ``commit_wait_s``), then raises ``StoreLockedError``.
- **Disk full, a read-only file, a moved one** during a turn's terminal commit: the job
  waits (visibly, up to ``commit_wait_s``, or until the turn's stop check names who stopped
  it: a Stop, a kernel interrupt) on the same connection (DuckDB keeps it usable; a released
  file is opened again) and commits once space returns, the file is writable or back at its
  path; other jobs raise at once (ADR 11, 175, 181). Other file conditions become one-line
  errors (``lock.store_error``).
- After the queue has stayed empty for ``fold_idle_s`` (default ``FOLD_IDLE_S``) the worker
  folds pending commits into the typed tables (``journal.py``), unless a turn is in flight
  (between its progress and final commits: the model is answering): then it waits for the
  turn's end, at most ``FOLD_IN_TURN_S`` idle, so a turn's rows are folded once, after it,
  and no fold runs when its final commit arrives (ADR 88). That fold gives way to a job
  that arrives while it runs, or to a read waiting to run here (``journal.fold_idle``, ADR
  0122): the job waits for one statement, the fold resumes at the next idle moment, which
  is then ``FOLD_EARLY`` of ``fold_idle_s`` (work comes back after pauses: fold early in
  them; back to the whole moment once an early fold meets work with nothing folded). After
  ``idle_release_s`` it releases the file as for a hand-over. ``idle_release_s=None`` holds
  it until :meth:`ConnectionWorker.stop` or a waiter. After ``REST_CHECKPOINT_S`` with no job
  and nothing pending it checkpoints once, so a copy of the file alone holds every folded
  commit (ADR 175).
- **The file under the path**: a write (commit, enqueue) first checks that the path still
  names the file this connection opened (``check_file``); moved, deleted or replaced, the
  write is refused (ADR 175).
- Every job runs in its own transaction (``run_in_transaction``); a job that fails rolls
  back, so a store never holds part of a job. A write-write conflict with another
  connection of this process is retried.
- **Here**: a read that would wait only for the hop (``run_here``: the thread waits for work,
  nothing is queued, the file is held) runs on the calling thread instead, holding ``busy``,
  which this thread holds whenever it is not waiting for work (ADR 113). DuckDB refuses two
  threads on one connection at once, not one after the other. A commit does the same (ADR
  131) unless another process waits for the file (hand-overs stay this thread's, between
  jobs); a lock conflict queues a release and the commit then waits in line here, a full
  disk at a turn's terminal commit waits here (never on the caller's event loop), a size
  bound's fold is queued here; Ctrl-C is held until the commit is recorded. The idle clock
  counts from the last job run there: the fold and release times are computed anew.
- **No import while holding** (ADR 0213): a job that needs pandas/pyarrow before their
  import is done raises ``ArrowNotReady`` (``arrow.py``); the thread waits for the import,
  handing the file over to waiters meanwhile, and runs the job again. So does a job about to
  bind a list, bytes or datetime while pandas is being imported (DuckDB's binding would wait
  for the import; ADR 0216).
- Forbidden: any other thread using the connection without ``busy``; a job left half applied.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from ..._errors import StoreError, StoreLockedError
from ..queue_watch import QueueWatch
from ..waits import (
    StoreWaitObserver,
    WaitStop,
    current_observer,
    current_wait_stop,
    log,
    waits_shown,
)
from .arrow import ArrowNotReady, arrow_settled, await_arrow, holding_file, mark_holder_thread
from .hold import Hold, LeaseRow
from .journal import FOLD_FIRM_AFTER, FoldCounts, fold, fold_idle
from .lock import (
    NotTheHeldFile,
    connection_broken,
    file_id,
    is_lock_conflict,
    store_error,
    unwritable,
    wal_bytes,
)
from .share import Line, Wait, describe_holder
from .sigint import sigint_held

T = TypeVar("T")
FOLD_IDLE_S = 0.05  # fold pending commits once the store has had no work this long
FOLD_EARLY = 0.2  # ... times this once an idle fold met work that came back (see _fold_when_idle)
FOLD_IN_TURN_S = 30.0  # ... or this long while a turn is in flight (a long model call)
HANDOVER_POLL_S = 0.02  # while holding idle, look for waiters this often
REST_CHECKPOINT_S = 1.0  # a store at rest this long checkpoints: the file alone holds it all
MIN_SLICE_S = 0.05  # a busy holder keeps the file at least this long (or its open's time)
MAX_SLICE_S = 2.0  # ... but no longer than this (an open that folded a crash's commits)
HERE_WAIT_S = 0.01  # run_here waits this long for the thread to be waiting for work
_STOP = object()
_RELEASE = object()


class Ran(Generic[T]):
    """What ``run_here`` ran: its value, or the error it raised (mapped), as ``result()``
    gives them, like a done ``Future`` without the lock and condition one builds (a commit
    run here makes one)."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: T | None, error: BaseException | None = None) -> None:
        self._value, self._error = value, error

    def result(self, timeout: float | None = None) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # None only with an error


_live: weakref.WeakSet[ConnectionWorker] = weakref.WeakSet()


@dataclasses.dataclass(frozen=True)
class JobSpec:
    wait_s: float  # how long this job may wait for the file
    observer: StoreWaitObserver | None  # the calling turn's, captured at submit
    terminal_commit: bool = False  # a finished turn: wait for disk space, the file too
    query: bool = False  # a user query: runs on every core (user_query.py)
    stop: WaitStop | None = None  # the calling turn's stop check, captured at submit
    shown: bool = False  # the calling turn's waits are on a widget (``waits.waits_shown``)
    open_stop: WaitStop | None = None  # ends this job's wait to open the file (sigint.py)


class ConnectionWorker:
    def __init__(
        self,
        connect: Callable[[float, StoreWaitObserver | None, WaitStop | None], Any],
        *,
        idle_release_s: float | None,
        fold_idle_s: float | None = FOLD_IDLE_S,
        name: str,
        path: str = "",
        line: Line | None = None,
        lock_timeout_s: float = 10.0,
        commit_wait_s: float = 600.0,
    ) -> None:
        self._connect = connect
        self._idle = idle_release_s
        self._fold_idle = fold_idle_s
        self.path = path
        self.line = line
        self.lock_timeout_s = lock_timeout_s
        self.commit_wait_s = commit_wait_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._con: Any = None
        self.hold: Hold | None = None  # what we know while holding the file (hold.py)
        self._carry: dict[str, LeaseRow] = {}  # dirty leases a failed release could not write
        self._carry_heads: dict[str, Any] = {}  # the last hold's session heads (hold.py)
        self._carry_claims: list[Any] = []  # unwritten claims a failed release left (claims.py)
        self._held_since = 0.0
        self._slice = MIN_SLICE_S  # how long this hold keeps the file while others wait
        self._stopped = False
        self.users = 1  # DuckDBStore objects sharing this worker (store.py)
        self.read_only = False
        self.opens = 0  # how many times the file was opened (benchmarks and tests read it)
        self.jobs = 0  # store jobs run, here or on the thread (``idle_poll.py``)
        self.quiet: Any = None  # an empty poll's mark (``idle_poll.Quiet``)
        self._file_id: tuple[int, int] | None = None  # the held file's (device, inode)
        self.handovers = 0  # releases because another process waited
        self.rest_checkpoints = 0  # checkpoints tried at rest (``_checkpoint_at_rest``)
        self.folds = FoldCounts()  # what the folds of every hold did (journal.py)
        self._gave_way = 0  # idle folds in a row that gave way with nothing folded
        self._early = False  # the next idle fold starts after FOLD_EARLY * fold_idle_s
        self._here_waiting = False  # a ``run_here`` caller waits for ``busy``: a fold gives way
        self.queue_watch = QueueWatch()  # every store of this file in this process
        self.busy = threading.Lock()  # held by the thread except while it waits for work
        self._here_at = 0.0  # when ``run_here`` last ran a job (idle counts from it too)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _live.add(self)

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def holding(self) -> bool:
        return self._con is not None

    def has_carry(self) -> bool:
        """A failed release left leases or claims for the next hold to write."""
        return bool(self._carry or self._carry_claims)

    def submit(self, job: Callable[[Any], T], *, wait_s: float | None = None,
               terminal_commit: bool = False, query: bool = False,
               open_stop: WaitStop | None = None) -> Future[T]:
        if self._stopped:
            raise StoreError("this DuckDBStore is closed; create a new DuckDBStore(path)")
        fut: Future[T] = Future()
        spec = JobSpec(self.lock_timeout_s if wait_s is None else wait_s, current_observer(),
                       terminal_commit, query, current_wait_stop() if terminal_commit else None,
                       terminal_commit and waits_shown(), open_stop)
        self._queue.put((job, fut, spec))
        return fut

    def on_its_thread(self) -> bool:
        """True on the worker's own thread (a job run here is not)."""
        return threading.current_thread() is self._thread

    def run_here(self, job: Callable[[Any], T], *, write: bool = False,
                 terminal_commit: bool = False) -> Ran[T] | None:
        """Run ``job`` on the calling thread when the worker's thread waits for work with
        the file held and nothing queued (no two thread wake-ups); ``None`` when it cannot,
        or when the job met a lock conflict or a broken connection (then ``submit`` it: the
        worker's thread waits for the file, or releases the connection).

        ``write`` (a commit, ADR 0131): also ``None`` while another process waits for the
        file (the thread decides hand-overs between jobs) or a user query left the
        connection on every core, and, with ``terminal_commit``, on a full disk (the thread
        waits for space; the event loop must not). A lock conflict queues a release first,
        as the thread does for its own jobs. Ctrl-C is held until the job is done."""
        # the thread may be finishing the bookkeeping of its last job: a short wait; a job
        # still running then is what a submitted one would wait for as well
        if self._con is None or not self._queue.empty():
            return None
        self._here_waiting = True  # an idle fold gives way to it (``_work_waits``)
        try:
            if not self.busy.acquire(timeout=HERE_WAIT_S):
                return None
        finally:
            self._here_waiting = False
        try:
            con = self._con
            if con is None or self.hold is None or self.hold.sealed or not self._queue.empty():
                return None
            if write and (self.hold.query_threads or self._waited_on()):
                return None
            self._here_at = time.monotonic()
            self.jobs += 1
            try:
                with holding_file(), sigint_held() if write else contextlib.nullcontext():
                    ran: Ran[T] = Ran(job(con))
            except ArrowNotReady:  # the store's thread imports with the file free to waiters
                return None
            except Exception as e:
                if is_lock_conflict(e) and write:  # as on the thread (``_execute``): it lets
                    self._queue.put((_RELEASE, Future(), None))  # the file go, the job waits
                    return None  # for it in line and runs again
                if is_lock_conflict(e) or connection_broken(e):
                    return None
                mapped = store_error(self.path, e, opening=False)
                if terminal_commit and unwritable(mapped) is not None:
                    return None  # the store's thread waits for it (never the event loop)
                ran = Ran(None, mapped)
            self._here_at = time.monotonic()
            return ran
        finally:
            self.busy.release()

    def release(self) -> Future[None]:
        """Release the file now (after queued jobs); the next job reopens it."""
        fut: Future[None] = Future()
        if self._stopped:
            fut.set_result(None)
            return fut
        self._queue.put((_RELEASE, fut, None))
        return fut

    def stop(self) -> Future[None]:
        """Release the file and end the thread once queued jobs are done."""
        fut: Future[None] = Future()
        if self._stopped:
            fut.set_result(None)
            return fut
        self._stopped = True
        self._queue.put((_STOP, fut, None))
        return fut

    def _waited_on(self) -> bool:
        return self.line is not None and self.line.others_waiting()

    def _hand_over_if_waited_on(self) -> bool:
        if self._con is not None and self._waited_on():
            self._release(handover=True)
        return False  # the job waits for the import either way

    def _run(self) -> None:
        mark_holder_thread()  # its jobs never import pandas/pyarrow holding the file (arrow.py)
        self.busy.acquire()  # released only while waiting for work (``run_here``)
        idle_since = time.monotonic()
        deferred: float | None = None  # when an idle fold was first put off for a turn in flight
        rested = False  # checkpointed since the last job (a copy of the file alone is whole)
        while True:
            folding = (self._fold_idle is not None and self.hold is not None
                       and bool(self.hold.pending) and arrow_settled())  # (arrow.py)
            if not folding:
                deferred = None
            fold_due = idle_since + (self._fold_idle or 0.0) * (FOLD_EARLY if self._early else 1)
            if deferred is not None:  # the turn's end, or at the latest FOLD_IN_TURN_S
                fold_due = max(fold_due, deferred + FOLD_IN_TURN_S)
            timeout = None
            if self._con is not None:
                marks = []
                if self._idle is not None:
                    marks.append(idle_since + self._idle)
                if folding:
                    marks.append(fold_due)
                elif not rested:
                    marks.append(idle_since + REST_CHECKPOINT_S)
                if self.line is not None and self.line.on:
                    marks.append(time.monotonic() + HANDOVER_POLL_S)
                if marks:
                    timeout = max(0.0, min(marks) - time.monotonic())
            self.busy.release()
            try:
                job, fut, spec = self._queue.get(timeout=timeout)
            except queue.Empty:
                self.busy.acquire()
                now = time.monotonic()
                if self._con is None:
                    continue
                if self._waited_on():
                    self._release(handover=True)
                elif self._here_at > idle_since:  # jobs ran here meanwhile: idle counts from
                    idle_since = self._here_at    # the last one (the due times anew)
                    rested = False
                    if deferred is not None and not (self.hold is not None and self.hold.turn_in_flight()):
                        deferred = None  # the turn ended: fold after the usual idle moment
                elif folding and now >= fold_due:
                    assert self.hold is not None
                    if self.hold.turn_in_flight() and (
                            deferred is None or now < deferred + FOLD_IN_TURN_S):
                        deferred = now if deferred is None else deferred
                        continue  # fold once the turn's final commit is in
                    deferred = None
                    try:
                        if self._fold_when_idle():
                            idle_since = time.monotonic()  # work came: idle counts anew
                    except Exception as e:  # the log keeps the commits: the next open folds them
                        if is_lock_conflict(e):  # the file is not ours after all: wait in line
                            self._release()
                elif self._idle is not None and now >= idle_since + self._idle:
                    self._release()
                elif not folding and not rested and now >= idle_since + REST_CHECKPOINT_S:
                    rested = True
                    self._checkpoint_at_rest()
                continue
            self.busy.acquire()
            if job is _STOP:
                self._release()
                if self.line is not None:
                    self.line.close()
                fut.set_result(None)
                return
            if job is _RELEASE:
                self._release()
                fut.set_result(None)
                idle_since = time.monotonic()
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = self._execute(job, spec)
            except BaseException as e:  # handed to the caller through the future
                if connection_broken(e):
                    self._release()
                fut.set_exception(e)
            else:
                fut.set_result(result)
            # drop this thread's references at once: a big result (a listing of 1,000 batches)
            # is then freed by its caller, not by the next job rebinding these names (a drain
            # right after a listing paid for freeing it, ADR 200)
            del job, fut, spec
            result = None
            idle_since = time.monotonic()
            rested = False
            if deferred is not None and (self.hold is None or not self.hold.turn_in_flight()):
                deferred = None  # the turn ended: fold after the usual idle moment
            if (self._con is not None and idle_since - self._held_since >= self._slice
                    and self._waited_on()):
                self._release(handover=True)

    def check_file(self) -> None:
        """Refuse a write when the file at ``path`` is not the one this connection holds:
        moved, deleted or replaced while open, a commit would go where no later open finds
        it (ADR 175). A ``stat``, ~2 µs."""
        if self._con is not None and self.file_replaced():
            raise NotTheHeldFile(
                f"{self.path} is not the file this process opened any more (moved, deleted "
                "or replaced while open); nothing of this was written: put the file back "
                "there, or restart the kernel and open the store where it is now")

    def _checkpoint_at_rest(self) -> None:
        """Write what the ``.wal`` holds into the file once the store rests, so that a copy
        of the file taken while this process keeps it open holds every folded commit (ADR
        175). Nothing is lost if it fails (a full disk): the ``.wal`` still holds it; a
        connection DuckDB invalidated for it is let go (the next job reopens, ADR 224)."""
        if self.hold is None or self.hold.pending or wal_bytes(self.path) == 0:
            return
        self.rest_checkpoints += 1
        try:
            self._con.execute("CHECKPOINT")
        except Exception as e:
            if connection_broken(e):
                self._release()

    def _work_waits(self) -> bool:
        return self._here_waiting or not self._queue.empty()

    def _fold_when_idle(self) -> bool:
        """Fold what is pending, giving way to work that arrives (``journal.fold_idle``);
        True when it gave way. A fold that gave way met work coming back after an idle
        moment (a loop of turns with pauses between them): the next starts earlier in the
        next pause, where it has the time to finish; an early one that gave way with
        nothing folded shows pauses too short for a fold: the next waits the whole moment."""
        assert self.hold is not None
        early = self._early
        done, gave_way = fold_idle(self._con, self.hold, self._work_waits,
                                   firm=self._gave_way >= FOLD_FIRM_AFTER)
        self._gave_way = self._gave_way + 1 if gave_way and not done else 0
        if gave_way:
            self._early = bool(done) or not early
        return gave_way

    @property
    def held_a_file(self) -> bool:  # it opened the file once (and may have let it go since)
        return self._file_id is not None

    def file_replaced(self) -> bool:
        """The path no longer names the file this worker opened: deleted or moved away (held
        or let go), or another file put there while it is held. A file another process put
        there while this one had let go (a ``vacuum``'s compact copy) is the store's own."""
        if self._file_id in (None, (-1, -1)):  # never opened, or no file (``:memory:``)
            return False
        now = file_id(self.path)
        return now == (-1, -1) or (self._con is not None and now != self._file_id)

    def _open(self, wait_s: float, observer: StoreWaitObserver | None,
              stop: WaitStop | None = None) -> None:
        # a file this worker let go and that is gone from the path is refused by the
        # connect (``open_connection(held_before=...)``, ADR 185)
        self._con = self._connect(wait_s, observer, stop)
        self.hold = Hold(self.path + ".wal" if self.path else "")
        self.hold.counts = self.folds
        self.hold.carried, self._carry_heads = self._carry_heads, {}
        self.opens += 1
        self._held_since = time.monotonic()
        self._file_id = file_id(self.path)
        # work at least as long as the open cost before handing over: at most half the
        # time of processes taking turns goes to opening, however slow the machine is
        opened_in = self.line.open_s if self.line is not None else 0.0
        self._slice = max(MIN_SLICE_S, min(opened_in, MAX_SLICE_S))
        if self.line is not None:
            self.line.acquired()
        if self._carry:
            carry, self._carry = self._carry, {}
            self.hold.adopt(self._con, carry)
        if self._carry_claims:
            claims, self._carry_claims = self._carry_claims, []
            self.hold.claims.adopt(claims, self.hold.dirty_rows())

    def _execute(self, job: Callable[[Any], T], spec: JobSpec) -> T:
        """Run ``job``; a lock conflict anywhere waits for the file and runs it again; a
        terminal commit also waits for what its file cannot take now (``unwritable``)."""
        start = time.monotonic()
        waiting: Wait | None = None
        reopened = False
        self.jobs += 1
        try:
            while True:
                try:
                    if self._con is None:
                        self._open(max(0.0, spec.wait_s - (time.monotonic() - start)),
                                   spec.observer, spec.open_stop)
                    if not spec.query and self.hold is not None and self.hold.query_threads:
                        self._con.execute("SET threads = 1")  # back to one for the store's own
                        self.hold.query_threads = False
                    return job(self._con)
                except ArrowNotReady:  # imported with the file handed to waiters, then again
                    start += await_arrow(self._hand_over_if_waited_on)
                    continue
                except Exception as e:
                    if is_lock_conflict(e):
                        waited = time.monotonic() - start
                        if waited >= spec.wait_s:
                            pid, who = describe_holder(self.line, None)
                            raise StoreLockedError(self.path, pid, waited, who) from e
                        log.info("%s: lock conflict inside a job (%s); waiting for the file",
                                 self.path, str(e).splitlines()[0][:120])
                        self._release()
                        continue
                    if connection_broken(e):  # for good (a checkpoint met a full disk):
                        self._release()  # reopened, the .wal replayed; the job (a
                        if not reopened:  # transaction that wrote nothing) runs once more
                            reopened = True
                            continue
                    mapped = store_error(self.path, e, opening=False)
                    reason = unwritable(mapped) if spec.terminal_commit else None
                    if reason is not None:
                        if waiting is None:
                            waiting = Wait(self.path, None, spec.wait_s, spec.observer,
                                           reason=reason, stop=spec.stop, shown=spec.shown)
                        waiting.reason = reason  # one wait, one row: what blocks it now
                        try:
                            waiting.blocked()
                        except StoreError as gave_up:
                            waiting = None
                            raise gave_up from e
                        continue
                    if mapped is e:
                        raise
                    raise mapped from e
        finally:
            if waiting is not None:
                waiting.done()

    def drop_connection(self) -> None:
        """Close the connection as it is: no fold, no lease flush, no checkpoint (the file
        under it was swapped: ``compact.py``). Only from a job on this worker's thread; the
        next job reopens the path."""
        con, self._con = self._con, None
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.seal()
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()
            if self.line is not None:
                self.line.released()

    def _release(self, *, handover: bool = False) -> None:
        con, self._con = self._con, None
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.seal()  # callers change no lease row after this: the flush below has them all
        if con is not None and hold is not None:
            # others see typed tables and live leases once they can open the file; unfolded
            # commits stay in commit_log: the next open folds them (so does a let-go that a
            # waiter meets while the fold's pyarrow is still being imported: ADR 0213)
            if hold.pending and not handover:
                await_arrow(self._waited_on)
            folded = True
            try:
                fold(con, hold)
            except Exception:
                folded = False
            if folded and not hold.pending:  # the tables match the heads: the next hold checks them
                with contextlib.suppress(Exception):
                    self._carry_heads = {**hold.carried, **hold.heads_to_carry(con)}
            try:
                hold.flush_at_release(con)
            except Exception:  # written by the next hold of this process (``Hold.adopt``)
                self._carry.update(hold.dirty_rows())
                self._carry_claims = hold.claims.carry()
            if not self.read_only and wal_bytes(self.path):
                # the file alone holds every commit before anyone else has it: a user who
                # moves or copies it then leaves nothing in a .wal behind (ADR 193); a
                # failed checkpoint loses nothing (the .wal keeps it)
                with contextlib.suppress(Exception):
                    con.execute("CHECKPOINT")
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()
            if self.line is not None:
                self.line.released()
            if handover:
                self.handovers += 1


@atexit.register
def _stop_all() -> None:
    for w in list(_live):
        with contextlib.suppress(Exception):
            w.stop().result(timeout=5)
