"""What this process knows while it holds the DuckDB file.

Theory of operation
- DuckDB lets one process hold a file: while this store's connection is open, nobody else
  can read or write it. So while *holding*, the store can trust memory for what only it can
  change, and skip the statements that would re-read it (each costs 0.3-3 ms):
  - **leases** are authoritative in memory: acquire / renew / release touch no SQL (an
    acquire whose row is in memory runs on the caller's thread, without a trip to the store
    thread: every lease change holds ``lease_lock``, and a hold is *sealed* under it before
    its last flush, so no caller's change can miss that flush; ADR 90); a dirty
    lease row is written inside the next transaction of its session (commits, claims) and,
    at the latest, just before the file is released (``flush``). So another process that
    opens the file after us sees every live lease. A crash loses unflushed lease rows, which
    only ever held a dead owner.
  - **heads** (head revision, next row seq, open turns, committed turn hashes, stored node
    ids) and **queue sizes** per session are loaded once per hold and then kept up to date.
    A new hold of this process starts with the last hold's heads as *carried*: the first use
    of one reads the session's ``head_revision``, ``next_seq`` and ``created_at`` (one row)
    and keeps it when all are unchanged (every commit moves the first two, a recreated
    session the third: nobody wrote the session meanwhile), else loads it again: a hand-over
    costs one row per session, not its whole history.
    **Early sizes** count a session's queued rows with the ``earliest_safe_boundary``
    delivery policy or a session command: zero means a turn's checkpoint and a drain's
    command claim have nothing to claim, so they read nothing. An enqueue adds to it,
    anything that removes rows drops it (reloaded by one count when next needed).
  - **pending** commit deltas: logged in ``commit_log`` but not yet folded into the typed
    tables (``journal.py``). The heads of their sessions are then ahead of those tables, so
    they are never dropped while deltas are pending.
- **Answers from memory on the caller's thread**: a claim that memory alone shows has
  nothing to take (the session's lease held by the caller, its queue or its early size
  known to be zero) is answered by :meth:`Hold.nothing_to_claim` on the event loop's thread,
  without a trip to the store thread (a turn makes two such claims). It only reads: each
  dict read is atomic, and a count is only ever lowered to zero after the COMMIT that emptied
  it, so the answer was true at the moment it was read (a hold read just before a release
  was authoritative until that release).
- Updates that depend on a transaction are registered with :meth:`after_commit` and applied
  only once COMMIT succeeded; a failed job drops the derived caches (they reload lazily),
  never the leases.
- A new connection (the file was released and reopened) starts a new :class:`Hold`. Lease
  rows a release could not write (the file was taken from under it) are carried into the
  next hold (:meth:`Hold.adopt`) when the file shows nobody took those leases meanwhile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

from ..base import Lease, lease_is_held
from . import claims as deferred
from .arrow import ArrowNotReady, await_arrow, need_bindable
from .journal import FoldCounts
from .queue_index import QueueIndex

# the lease row, its fencing raised to the highest claim generation of the session's queued
# rows: a drain's claim is written without its lease row (claims.py), so after a crash the
# next lease must still pass every claim generation, or an old claim would look live
_LEASE_SQL = (
    "SELECT l.owner_id, l.token, l.fencing, l.expires_at_ms, q.g FROM (SELECT "
    "max(claim_generation) AS g FROM queued_work_batches WHERE session_id = $sid) q "
    "LEFT JOIN execution_leases l ON l.session_id = $sid"
)


def _but_done(sql: str, sid: str, done: list[str]) -> tuple[str, list[Any]]:
    """``sql`` (one ``?``: the session) without the rows completed in the log (``done``): no
    list bound when there are none (the usual case; arrow.py)."""
    if not done:
        return sql, [sid]
    need_bindable()
    return sql + " AND NOT list_contains(?, batch_id)", [sid, done]


@dataclasses.dataclass
class LeaseRow:
    owner_id: str | None
    token: str | None
    fencing: int
    expires_at_ms: int


@dataclasses.dataclass
class Head:
    rev: int | None  # None: no sessions row yet
    next_seq: int
    open_turns: dict[str, int]  # turn id -> started_at_ms
    committed: dict[str, str]  # turn id -> commit hash
    nodes: set[str]
    born: Any = None  # the sessions row's created_at when loaded (a recreated session differs)
    leaf: str | None = None  # the stored leaf_node_id (admission ``anchors``)
    # (revision, tool state) the session row holds at that revision, as this process wrote it:
    # a commit whose tool state is that very object (``ToolRegistry.shared_state_json``) on
    # that revision logs none (None: unchanged, journal.py), not the whole catalog again
    logged_tools: tuple[int, Any] | None = None


class Hold:
    def __init__(self, wal_path: str = "") -> None:
        self.wal_path = wal_path  # the file's .wal: a fold checkpoints once it is large
        # user queries raised the connection's threads (user_query.py); the next store job
        # sets one again, so a report's queries in a row pay the switch once
        self.query_threads = False
        self._leases: dict[str, LeaseRow | None] = {}
        # lease rows change on the store thread and, for an acquire memory can answer, on
        # the caller's thread (``leases.try_acquire_here``): every change holds this lock;
        # ``sealed`` (set under it before the final lease flush) ends the callers' changes
        self.lease_lock = threading.RLock()
        self.sealed = False
        self._dirty: set[str] = set()
        self._in_file: dict[str, tuple[Any, ...]] = {}  # (owner, token, fencing) of the file row
        self.heads: dict[str, Head] = {}
        self.carried: dict[str, Head] = {}  # the last hold's heads, checked before use
        self.queue_sizes: dict[str, int] = {}
        self.early_sizes: dict[str, int] = {}
        self.queue_index: dict[str, QueueIndex] = {}  # loaded with queue_sizes (queue_index.py)
        self.claims = deferred.DeferredClaims()  # drain claims kept until their commit (claims.py)
        self._pending: list[Callable[[], None]] = []
        self.pending: list[Any] = []  # journal.Delta, in commit order
        self.counts = FoldCounts()  # the worker's, shared by its holds (benchmarks print it)
        self._rows_seen, self._rows = 0, 0  # pending_rows, counted incrementally
        self._rows_last: Any = None

    # ------------------------------------------------------------------ leases
    def lease(self, con: Any, sid: str) -> LeaseRow | None:
        if sid not in self._leases:
            with self.lease_lock:
                owner, token, fencing, expires, claimed = con.execute(
                    _LEASE_SQL, {"sid": sid}).fetchone()
                if fencing is not None:
                    self._in_file[sid] = (owner, token, int(fencing))
                top = max((int(g) for g in (fencing, claimed) if g is not None), default=None)
                self._leases[sid] = None if top is None else LeaseRow(
                    owner, token, top, int(expires or 0))
        return self._leases[sid]

    def knows_lease(self, sid: str) -> bool:
        """The lease row of ``sid`` is in memory (loaded, or known absent)."""
        return sid in self._leases

    def seal(self) -> None:
        """From now on only the store thread changes lease rows (the hold is about to be
        flushed and released, or its file swapped)."""
        with self.lease_lock:
            self.sealed = True

    def set_lease(self, sid: str, row: LeaseRow) -> None:
        with self.lease_lock:
            self._leases[sid] = row
            self._dirty.add(sid)

    def write_lease(self, con: Any, sid: str, *, unless_holder_stored: bool = False) -> None:
        """Write a dirty lease row inside the current transaction. ``unless_holder_stored``:
        skip it when the file already names this holder and fencing (only the expiry
        differs, and the release flush writes that)."""
        with self.lease_lock:
            row = self._leases.get(sid) if sid in self._dirty else None
        if row is None:
            return
        holder = (row.owner_id, row.token, row.fencing)
        if unless_holder_stored and self._in_file.get(sid) == holder:
            return
        con.execute(
            "INSERT INTO execution_leases (session_id, owner_id, token, fencing, expires_at_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE "
            "SET owner_id = excluded.owner_id, token = excluded.token, fencing = excluded.fencing, "
            "expires_at_ms = excluded.expires_at_ms",
            [sid, row.owner_id, row.token, row.fencing, row.expires_at_ms],
        )

        def written() -> None:
            with self.lease_lock:
                if self._leases.get(sid) is row:  # not changed meanwhile on a caller's thread
                    self._dirty.discard(sid)
                self._in_file[sid] = holder

        self.after_commit(written)

    def dirty_rows(self) -> dict[str, LeaseRow]:
        """Lease rows not yet written (a release that could not write them carries them)."""
        with self.lease_lock:
            return {sid: row for sid in self._dirty if (row := self._leases.get(sid)) is not None}

    def adopt(self, con: Any, rows: dict[str, LeaseRow]) -> None:
        """Take over lease rows a failed release could not write, each only while the file
        shows nobody else took that lease since (fencing holds across the gap)."""
        t = int(time.time() * 1000)
        with self.lease_lock:
            self._adopt(con, rows, t)

    def _adopt(self, con: Any, rows: dict[str, LeaseRow], t: int) -> None:
        for sid, row in rows.items():
            stored = self.lease(con, sid)
            if stored is None:
                ok = True
            elif stored.fencing == row.fencing:
                ok = stored.token == row.token or row.token is None
            elif stored.fencing < row.fencing:
                ok = stored.token is None or stored.expires_at_ms <= t or stored.owner_id == row.owner_id
            else:
                ok = False
            if ok:
                self.set_lease(sid, row)

    def write_dirty_leases(self, con: Any) -> None:
        with self.lease_lock:
            dirty = sorted(self._dirty)
        for sid in dirty:
            self.write_lease(con, sid)

    def forget(self, sid: str) -> None:
        with self.lease_lock:
            self._leases.pop(sid, None)
            self._in_file.pop(sid, None)
            self._dirty.discard(sid)
        self.heads.pop(sid, None)
        self.carried.pop(sid, None)
        self.queue_sizes.pop(sid, None)
        self.early_sizes.pop(sid, None)
        self.queue_index.pop(sid, None)
        self.claims.forget(sid)

    def flush(self, con: Any) -> None:
        """Write every dirty lease row and unwritten claim (before the file is released)."""
        if not self._dirty and not self.claims.unwritten:
            return
        with self.lease_lock:
            dirty = sorted(self._dirty)
        con.execute("BEGIN TRANSACTION")
        try:
            deferred.write_all(con, self)
            for sid in dirty:
                self.write_lease(con, sid)
            con.execute("COMMIT")
        except BaseException:
            # a failed COMMIT has rolled back already: its error is the one to raise
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            self._pending.clear()
            raise
        self.committed()

    def flush_at_release(self, con: Any) -> None:
        """:meth:`flush` before the file is let go. A drain's unwritten claims bind lists, which
        wait while pandas is being imported (arrow.py): then after the import, still holding:
        the lease rows are written before anyone else has the file, never carried past it (the
        waiter would not see them)."""
        try:
            self.flush(con)
        except ArrowNotReady:
            await_arrow(lambda: False)
            self.flush(con)

    # ------------------------------------------------------------------ heads
    def head(self, con: Any, sid: str) -> Head:
        head = self.heads.get(sid)
        if head is None:
            row = con.execute(
                "SELECT head_revision, next_seq, created_at, leaf_node_id FROM sessions "
                "WHERE session_id = ?",
                [sid]).fetchone()
            kept = self.carried.pop(sid, None)
            if kept is not None and row is not None and kept.born is not None and (
                    int(row[0]), int(row[1]), row[2]) == (kept.rev, kept.next_seq, kept.born):
                self.heads[sid] = kept  # nobody committed to it since the last hold
                return kept
            turns = con.execute(
                "SELECT turn_id, status, epoch_ms(started_at), commit_hash FROM turns "
                "WHERE session_id = ?", [sid]
            ).fetchall()
            nodes = con.execute(
                "SELECT node_id FROM graph_nodes WHERE session_id = ?", [sid]
            ).fetchall()
            head = Head(
                rev=int(row[0]) if row else None,
                next_seq=int(row[1]) if row else 1,
                open_turns={t[0]: int(t[2] or 0) for t in turns if t[1] == "open"},
                committed={t[0]: t[3] or "" for t in turns if t[1] != "open"},
                nodes={n[0] for n in nodes},
                born=row[2] if row else None,
                leaf=row[3] if row else None,
            )
            self.heads[sid] = head
        return head

    def heads_to_carry(self, con: Any) -> dict[str, Head]:
        """The heads, each with the ``created_at`` of its sessions row (read for sessions
        this hold created), for the next hold to check (see the module docstring)."""
        unborn = [sid for sid, h in self.heads.items() if h.born is None and h.rev is not None]
        if unborn:
            need_bindable()  # a list (arrow.py)
            for sid, born in con.execute(
                    "SELECT session_id, created_at FROM sessions WHERE list_contains(?, session_id)",
                    [unborn]).fetchall():
                self.heads[sid].born = born
        return {sid: h for sid, h in self.heads.items() if h.born is not None}

    def queue_size(self, con: Any, sid: str) -> int:
        if sid not in self.queue_index:
            # the session's rows in order, with the queue index (queue_index.py): one read
            found = con.execute(
                "SELECT batch_id, enqueue_seq, failed_at_ms IS NULL, attempts > 0 OR claim_id IS "
                "NOT NULL FROM queued_work_batches WHERE session_id = ? ORDER BY enqueue_seq",
                [sid]).fetchall()
            gone = set(self.claims.done_ids(sid))  # rows completed in the log are gone
            rows = [r for r in found if r[0] not in gone]
            marked = {b for u in (*self.claims.unwritten.get(sid, ()),
                                  *self.claims.logged.get(sid, ())) for b in u.batch_ids}
            self.queue_index[sid] = QueueIndex(
                (b, int(seq), bool(tried) or b in marked) for b, seq, ready, tried in rows if ready)
            self.queue_sizes[sid] = len(rows)
        elif sid not in self.queue_sizes:  # a failed job dropped the count, not the index
            sql, params = _but_done("SELECT count(*) FROM queued_work_batches WHERE session_id = ?",
                                    sid, self.claims.done_ids(sid))
            self.queue_sizes[sid] = int(con.execute(sql, params).fetchone()[0])
        if self.queue_sizes[sid] == 0:
            self.early_sizes[sid] = 0
        return self.queue_sizes[sid]

    def indexed(self, sid: str, rows: list[tuple[str, int]]) -> None:
        """After COMMIT: ``rows`` (batch id, enqueue seq) were enqueued for ``sid``."""
        def add() -> None:
            index = self.queue_index.get(sid)
            if index is not None:
                index.add(rows)
        self.after_commit(add)

    def unindexed(self, sid: str, batch_ids: list[str]) -> None:
        """After COMMIT: ``batch_ids`` left ``sid``'s queue (completed, cancelled, parked)."""
        def remove() -> None:
            index = self.queue_index.get(sid)
            if index is not None:
                index.remove(batch_ids)
        self.after_commit(remove)

    def tried(self, sid: str, batch_ids: tuple[str, ...]) -> None:
        """``batch_ids`` are being claimed: their attempts grow (now, whatever the commit)."""
        index = self.queue_index.get(sid)
        if index is not None:
            index.tried.update(batch_ids)

    def early_size(self, con: Any, sid: str) -> int:
        """Queued rows of ``sid`` with the ``earliest_safe_boundary`` policy or a session
        command (an upper bound of what a checkpoint or a command claim could take)."""
        if sid not in self.early_sizes:
            sql, params = _but_done(
                "SELECT count(*) FROM queued_work_batches WHERE session_id = ? "
                "AND failed_at_ms IS NULL AND (delivery_policy = 'earliest_safe_boundary' OR "
                "list_contains(json_extract_string(items, '$[*].kind'), 'session_command'))",
                sid, self.claims.done_ids(sid))
            self.early_sizes[sid] = int(con.execute(sql, params).fetchone()[0])
        return self.early_sizes[sid]

    def nothing_to_claim(self, lease: Lease, *, early_only: bool) -> bool:
        """True when memory alone shows that a claim by ``lease`` would return nothing: the
        lease is held and its session's queue is empty (or, ``early_only``: a checkpoint or
        command claim, no row it could take). False means "ask the store thread". Called from
        the event loop's thread: reads only (see the module docstring)."""
        sid = lease.session_id
        row = self._leases.get(sid)
        if row is None or not lease_is_held(lease, row.token, row.fencing):
            return False  # not loaded, or lost: the store thread loads it or raises
        if self.queue_sizes.get(sid) == 0:
            return True
        return early_only and self.early_sizes.get(sid) == 0

    def bump_queue(self, sid: str, delta: int, *, early: bool = False,
                   early_left: int | None = None) -> None:
        """After COMMIT: ``delta`` rows more (or fewer) queued for ``sid``; ``early``: the
        added rows have the ``earliest_safe_boundary`` policy or a session command;
        ``early_left``: how many of the removed rows had (when the caller knows)."""
        def apply() -> None:
            before = self.queue_sizes.get(sid)
            if before is not None:
                self.queue_sizes[sid] = max(0, before + delta)
            if delta < 0:  # which rows left is not known here: count again when needed
                if self.queue_sizes.get(sid) == 0:
                    self.early_sizes[sid] = 0
                elif early_left is not None and sid in self.early_sizes:
                    self.early_sizes[sid] = max(0, self.early_sizes[sid] - early_left)
                else:
                    self.early_sizes.pop(sid, None)
            elif sid in self.early_sizes:
                self.early_sizes[sid] += delta if early else 0
        self.after_commit(apply)

    def drop_early(self, sid: str) -> None:
        """After COMMIT: rows of ``sid`` were parked (or changed policy): count again."""
        def drop() -> None:
            self.early_sizes.pop(sid, None)
        self.after_commit(drop)

    # ------------------------------------------------------------------ transactions
    def after_commit(self, fn: Callable[[], None]) -> None:
        self._pending.append(fn)

    def committed(self) -> None:
        pending, self._pending = self._pending, []
        for fn in pending:
            fn()

    def rolled_back(self) -> None:
        self._pending.clear()
        ahead = {d.session_id for d in self.pending}  # these heads are ahead of the tables
        self.heads = {sid: h for sid, h in self.heads.items() if sid in ahead}
        self.queue_sizes.clear()
        self.early_sizes.clear()
        # the queue indexes stay: they change only after a COMMIT (a superset either way)

    def dropped(self) -> None:
        """A statement outside a transaction failed: forget its after-commit updates."""
        self._pending.clear()

    def turn_in_flight(self) -> bool:
        """A turn of a session with pending deltas is open (its progress commit is logged,
        its final commit not yet): folding now would write the turn's ``open`` row, which its
        final commit then replaces (a row rewritten in ``turns``, and a fold that may still be
        running when the final commit arrives)."""
        sids = {d.session_id for d in self.pending}
        return any((h := self.heads.get(sid)) is not None and bool(h.open_turns) for sid in sids)

    @property
    def pending_rows(self) -> int:
        """Rows of the pending deltas, counted once per delta while ``pending`` only grows
        (recounted when it was emptied or replaced meanwhile)."""
        n, seen = len(self.pending), self._rows_seen
        if not (0 < seen <= n and self.pending[seen - 1] is self._rows_last):
            seen, self._rows = 0, 0
        for d in self.pending[seen:]:
            self._rows += d.row_count()
        self._rows_seen = n
        self._rows_last = self.pending[-1] if n else None
        return self._rows
