"""In-memory store: the reference implementation of the store contract (``base.py``).

Everything lives in this process; a ``threading.Lock`` makes each call atomic so the store
can be shared by the kernel loop and the sync mirror's private loop thread.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from .._core.attachments import AttachmentRef
from .._core.events import TurnActivity
from .._core.graph import SessionNode
from .._core.queue import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimBoundary,
    DeliveryPolicy,
    QueueClaim,
    QueuedWorkBatch,
    QueuedWorkDraft,
    QueuedWorkItem,
    SlotPolicy,
    attempts_exhausted,
    clip_error,
    failure_text,
    select_claim_prefix,
    validate_selected_group,
)
from .._core.records import fresh_id
from .._core.usage import TokenLedgerEntry, merge_ledger
from .._errors import SessionExecutionLeaseLost
from .admission import Admission, LeaseRow, admit, anchors, completed_batch_ids
from .base import (
    DEFAULT_LEASE_TTL_MS,
    CommitResult,
    Lease,
    LeaseBusy,
    PersistedSession,
    ReadScope,
    RuntimeCommit,
    SessionMeta,
    TurnRecord,
    lease_is_held,
    owner_is_dead,
    process_lost_record,
)
from .queue_watch import QueueWatch
from .retention import VacuumReport


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass
class _Session:
    meta: SessionMeta
    nodes: list[SessionNode] = dataclasses.field(default_factory=list)
    node_ids: set[str] = dataclasses.field(default_factory=set)
    tombstoned: set[str] = dataclasses.field(default_factory=set)  # until vacuum()
    ledger: list[TokenLedgerEntry] = dataclasses.field(default_factory=list)
    turns: dict[str, TurnRecord] = dataclasses.field(default_factory=dict)
    open_turns: dict[str, int] = dataclasses.field(default_factory=dict)
    events: list[TurnActivity] = dataclasses.field(default_factory=list)
    llm_calls: list[Any] = dataclasses.field(default_factory=list)
    tool_calls: list[Any] = dataclasses.field(default_factory=list)
    usage_rows: list[Any] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _LeaseRow:
    owner_id: str | None
    token: str | None
    fencing: int
    expires_at_ms: int


@dataclasses.dataclass
class _BatchRow:
    batch: QueuedWorkBatch
    claim_id: str | None = None
    claim_generation: int = 0
    claimed_at_ms: int | None = None
    attempts: int = 0
    error: str | None = None
    failed_at_ms: int | None = None

    def park(self, t: int) -> None:
        self.error = failure_text(self.error, self.attempts)
        self.failed_at_ms, self.claim_id, self.claimed_at_ms = t, None, None


@dataclasses.dataclass(frozen=True)
class _FinishedBatch:
    """A batch that left the queue (the ``queue_history`` row of the durable stores)."""

    row: _BatchRow
    finished_at_ms: int
    final_state: str  # completed | cancelled
    turn_id: str | None


class MemoryStore:
    """Sessions, usage, events and queues kept in this process. Lost when it exits."""

    durable = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._leases: dict[str, _LeaseRow] = {}
        self._batches: dict[str, _BatchRow] = {}
        self._history: list[_FinishedBatch] = []  # read by the reports, like queue_history
        # session -> batches claimed at least once (a superset, pruned when read): a claim
        # with none behind its exclusive head has nothing to park there and stops at it
        self._tried: dict[str, set[str]] = {}
        self._seq = itertools.count(1)
        self._blobs: dict[str, tuple[AttachmentRef, bytes, int]] = {}  # id -> (ref, bytes, at)
        self._queue_watch = QueueWatch()  # wakes await_queued_work_batch

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._sessions)} sessions)"

    # ------------------------------------------------------------------ blobs
    async def put_blobs(self, blobs: Sequence[tuple[AttachmentRef, bytes]]) -> None:
        with self._lock:
            for ref, data in blobs:
                self._blobs.setdefault(ref.id, (ref, bytes(data), now_ms()))

    async def get_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        with self._lock:
            return {i: self._blobs[i][1] for i in blob_ids if i in self._blobs}

    async def prune_blobs(self, *, older_than_s: float = 3600.0) -> int:
        with self._lock:
            cutoff = now_ms() - int(older_than_s * 1000)
            texts = [n.content_text() for s in self._sessions.values() for n in s.nodes]
            texts += [json.dumps(r.batch.to_json()) for r in self._batches.values()]
            gone = [i for i, (_, _, at) in self._blobs.items()
                    if at <= cutoff and not any(i in t for t in texts)]
            for i in gone:
                del self._blobs[i]
            return len(gone)

    def blob_rows(self) -> list[dict[str, Any]]:
        """The ``blobs`` table of the durable stores, without the bytes (for reports)."""
        with self._lock:
            return [{"blob_id": i, "media_type": ref.media_type, "byte_len": ref.byte_len,
                     "created_at_ms": at} for i, (ref, _, at) in self._blobs.items()]

    # ------------------------------------------------------------------ sessions
    async def load_session(
        self, session_id: str, scope: ReadScope = ReadScope.FULL_GRAPH
    ) -> PersistedSession | None:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                return None
            live = [n for n in s.nodes if n.node_id not in s.tombstoned] if s.tombstoned else s.nodes
            nodes = _active_path(live, s.meta.leaf_node_id) if scope is ReadScope.ACTIVE_PATH else list(live)
            return PersistedSession(
                s.meta, tuple(nodes), tuple(s.ledger), scope, tuple(s.open_turns)
            )

    async def list_sessions(self) -> list[SessionMeta]:
        with self._lock:
            return [s.meta for s in self._sessions.values()]

    async def delete_session(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
            self._leases.pop(session_id, None)
            for bid in [b for b, r in self._batches.items() if r.batch.session_id == session_id]:
                del self._batches[bid]
            self._history = [h for h in self._history if h.row.batch.session_id != session_id]
            self._queue_watch.changed(session_id)

    # ------------------------------------------------------------------ retention
    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> int:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                return 0
            marked = (set(node_ids) & s.node_ids) - s.tombstoned
            s.tombstoned |= marked
            return len(marked)

    async def vacuum(self) -> VacuumReport:
        removed = 0
        with self._lock:
            for s in self._sessions.values():
                if s.tombstoned:
                    removed += len(s.tombstoned)
                    s.nodes = [n for n in s.nodes if n.node_id not in s.tombstoned]
                    s.node_ids -= s.tombstoned
                    s.tombstoned = set()
        return VacuumReport(removed, removed_blob_count=await self.prune_blobs())

    async def load_events(self, session_id: str, turn_id: str | None = None) -> list[TurnActivity]:
        with self._lock:
            s = self._sessions.get(session_id)
            if s is None:
                return []
            return [e for e in s.events if turn_id is None or e.turn_id == turn_id]

    async def load_turns(self, session_id: str) -> list[TurnRecord]:
        with self._lock:
            s = self._sessions.get(session_id)
            return list(s.turns.values()) if s else []

    async def commit(self, commit: RuntimeCommit) -> CommitResult:
        with self._lock:
            s = self._sessions.get(commit.session_id)
            t = now_ms()
            completed = completed_batch_ids(commit) if commit.completed_claims else ()
            verdict = admit(
                commit, revision=s.meta.head_revision if s else None,
                prior_hash=_prior_hash(s, commit),
                started_committed=s is not None and commit.turn_started is not None
                and commit.turn_started.turn_id in s.turns,
                missing_anchors=s is not None and not s.node_ids.issuperset(
                    anchors(commit, s.meta.leaf_node_id)),
                lease=self._lease_row(commit.session_id), now_ms=t,
                held_claims={bid: row.claim_id for bid in completed
                             if (row := self._batches.get(bid)) is not None} if completed else {},
            )
            if verdict is Admission.DUPLICATE:
                assert s is not None
                if commit.release_lease and commit.lease is not None:
                    self._release(commit.lease)
                return CommitResult(s.meta.head_revision, duplicate=True)
            # ---- apply (nothing below raises)
            if s is None:
                s = _Session(SessionMeta(commit.session_id, created_at_ms=t))
                self._sessions[commit.session_id] = s
            _apply_graph_and_rows(s, commit)
            _apply_turns(s, commit, t)
            if completed:
                self._finish_claims(commit, completed, t)
                self._queue_watch.changed(commit.session_id)
            s.meta = _next_meta(s.meta, commit, t)
            if commit.release_lease and commit.lease is not None:
                self._release(commit.lease)
            return CommitResult(s.meta.head_revision)

    def _finish_claims(self, commit: RuntimeCommit, completed: Sequence[str], t: int) -> None:
        done_by = (commit.turn.turn_id if commit.turn is not None else
                   commit.turn_started.turn_id if commit.turn_started is not None else None)
        for bid in completed:
            done = self._batches.pop(bid, None)
            if done is not None:
                self._history.append(_FinishedBatch(done, t, "completed", done_by))

    # ------------------------------------------------------------------ leases
    def _lease_row(self, session_id: str) -> LeaseRow | None:
        row = self._leases.get(session_id)
        return None if row is None else LeaseRow(row.token, row.fencing, row.expires_at_ms)

    def _lease_is_held(self, lease: Lease) -> bool:
        row = self._leases.get(lease.session_id)
        return row is not None and lease_is_held(lease, row.token, row.fencing)

    def _live_generation(self, session_id: str, t: int) -> int | None:
        row = self._leases.get(session_id)
        if row is None or row.token is None or row.expires_at_ms <= t:
            return None
        return row.fencing

    async def try_acquire_lease(
        self, session_id: str, owner_id: str, ttl_ms: int = DEFAULT_LEASE_TTL_MS
    ) -> Lease | LeaseBusy:
        with self._lock:
            t = now_ms()
            row = self._leases.get(session_id)
            if row is not None and row.token is not None and row.owner_id == owner_id:
                row.expires_at_ms = t + ttl_ms  # its own lease, expired or not: same fencing
                return Lease(session_id, owner_id, row.token, row.fencing, row.expires_at_ms)
            if (row is not None and row.token is not None and row.expires_at_ms > t
                    and not owner_is_dead(row.owner_id or "")):
                return LeaseBusy(session_id, row.owner_id or "", row.expires_at_ms)
            fencing = (row.fencing if row else 0) + 1
            token = f"{session_id}:{owner_id}:{t}:{fencing}"
            self._leases[session_id] = _LeaseRow(owner_id, token, fencing, t + ttl_ms)
            return Lease(session_id, owner_id, token, fencing, t + ttl_ms)

    async def renew_lease(self, lease: Lease, ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> Lease:
        with self._lock:
            t = now_ms()
            if not self._lease_is_held(lease):
                raise SessionExecutionLeaseLost(
                    f"the execution lease on session {lease.session_id!r} was lost"
                )
            row = self._leases[lease.session_id]
            row.expires_at_ms = t + ttl_ms
            return dataclasses.replace(lease, expires_at_ms=row.expires_at_ms)

    async def release_lease(self, lease: Lease) -> None:
        with self._lock:
            self._release(lease)

    async def forget_lease(self, lease: Lease) -> None:
        """``release_lease``; the row goes when the session is not stored and has no queued
        work (``base.LeaseForgetter``, ADR 0148)."""
        with self._lock:
            sid = lease.session_id
            row = self._leases.get(sid)
            if (row is not None and row.token == lease.token and row.fencing == lease.fencing
                    and sid not in self._sessions
                    and not any(r.batch.session_id == sid for r in self._batches.values())):
                del self._leases[sid]
            else:
                self._release(lease)

    def _release(self, lease: Lease) -> None:
        row = self._leases.get(lease.session_id)
        if row is not None and row.token == lease.token and row.fencing == lease.fencing:
            row.owner_id, row.token, row.expires_at_ms = None, None, 0

    # ------------------------------------------------------------------ queue
    async def enqueue(self, draft: QueuedWorkDraft) -> QueuedWorkBatch:
        with self._lock:
            if draft.source_key is not None:
                for row in self._batches.values():
                    b = row.batch
                    if b.session_id == draft.session_id and b.source_key == draft.source_key:
                        return b
            seq = next(self._seq)
            batch_id = fresh_id("qwb:")
            batch = QueuedWorkBatch(
                batch_id=batch_id,
                session_id=draft.session_id,
                enqueue_seq=seq,
                source_key=draft.source_key,
                delivery_policy=draft.delivery_policy,
                slot_policy=draft.slot_policy,
                merge_key=draft.merge_key,
                available_at_ms=draft.available_at_ms,
                enqueued_at_ms=now_ms(),
                items=tuple(
                    QueuedWorkItem(f"{batch_id}:item:{i}", kind, dict(payload))
                    for i, (kind, payload) in enumerate(draft.items)
                ),
            )
            self._batches[batch_id] = _BatchRow(batch)
            return batch

    def _is_claimed(self, row: _BatchRow, t: int) -> bool:
        return row.claim_id is not None and row.claim_generation == self._live_generation(
            row.batch.session_id, t
        )

    def _rows(self, session_id: str) -> list[_BatchRow]:
        rows = [r for r in self._batches.values() if r.batch.session_id == session_id]
        rows.sort(key=lambda r: r.batch.enqueue_seq)
        return rows

    async def list_queued_work(
        self, session_id: str, *, include_claimed: bool = False
    ) -> list[QueuedWorkBatch]:
        with self._lock:
            t = now_ms()
            out = []
            for r in self._rows(session_id):
                claimed = self._is_claimed(r, t)
                if claimed and not include_claimed:
                    continue
                out.append(dataclasses.replace(
                    r.batch, claim_id=r.claim_id if claimed else None,
                    claimed_at_ms=r.claimed_at_ms if claimed else None, attempts=r.attempts,
                    error=r.error, failed_at_ms=r.failed_at_ms))
            return out

    def surely_nothing_queued(self, lease: Lease) -> bool:
        """No batch is queued in this store and ``lease`` still holds its session (a lost
        lease answers False: the claim then raises as usual)."""
        with self._lock:
            return not self._batches and self._lease_is_held(lease)

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
        with self._lock:
            t = now_ms()
            if not self._lease_is_held(lease):
                raise SessionExecutionLeaseLost(
                    f"the execution lease on session {lease.session_id!r} was lost"
                )
            ready = self._ready_head(lease, t, boundary, max_batches, batch_ids, commands,
                                     max_attempts)
            chosen = _choose(ready, boundary, max_batches, batch_ids, commands)
            if not chosen:
                return None
            claim_id = f"qwc:{chosen[0].batch.enqueue_seq}:{lease.fencing}:{fresh_id()}"
            for r in chosen:
                r.claim_id, r.claim_generation, r.claimed_at_ms = claim_id, lease.fencing, t
                r.attempts += 1
            self._tried.setdefault(lease.session_id, set()).update(r.batch.batch_id for r in chosen)
            return QueueClaim(
                claim_id, lease.session_id, lease.fencing, boundary,
                tuple(dataclasses.replace(r.batch, attempts=r.attempts, error=r.error)
                      for r in chosen),
            )

    def _ready_head(self, lease: Lease, t: int, boundary: ClaimBoundary, max_batches: int,
                    batch_ids: Sequence[str] | None, commands: bool,
                    max_attempts: int) -> list[_BatchRow]:
        """The session's ready rows a claim can take, in enqueue order: the selected ones, or
        the head of the queue up to one claim group (a claim group is a prefix), so a claim
        costs the same however many batches wait behind it. Rows claimed that often by
        runtimes that died are parked on the way."""
        sid, gen = lease.session_id, lease.fencing  # the caller's lease is the live one
        rows: Any = (self._batches.values() if batch_ids is None else
                     [r for b in batch_ids if (r := self._batches.get(b)) is not None])
        limit = 1 if commands else max(1, max_batches)
        alone = batch_ids is None and not commands and not self._tried_rows(sid)
        out: list[_BatchRow] = []
        for r in rows:  # the dict keeps enqueue order (rows are added with rising seq)
            if (r.batch.session_id != sid or r.batch.available_at_ms > t
                    or r.failed_at_ms is not None
                    or (r.claim_id is not None and r.claim_generation == gen)):
                continue
            if attempts_exhausted(r.attempts, max_attempts):
                r.park(t)
                continue
            out.append(r)
            if alone and r.batch.slot_policy is SlotPolicy.EXCLUSIVE:
                break  # it goes alone, and no row behind it was ever claimed: none to park
            if batch_ids is None and (len(out) >= limit or (
                    boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT and
                    r.batch.delivery_policy is not DeliveryPolicy.EARLIEST_SAFE_BOUNDARY)):
                break  # a group is complete, or the head cannot go at a checkpoint
        return out

    def _tried_rows(self, sid: str) -> set[str]:
        """``sid``'s pending rows that were claimed before (only they can have used up their
        attempts), pruned of the rows that left or were parked since."""
        tried = {b for b in self._tried.get(sid, ())
                 if (r := self._batches.get(b)) is not None and r.failed_at_ms is None
                 and r.attempts > 0}
        if tried:
            self._tried[sid] = tried
        else:
            self._tried.pop(sid, None)
        return tried

    async def cancel_queued_work_batch(self, session_id: str, batch_id: str) -> QueuedWorkBatch | None:
        with self._lock:
            row = self._batches.get(batch_id)
            if row is None or row.batch.session_id != session_id or self._is_claimed(row, now_ms()):
                return None
            del self._batches[batch_id]
            self._history.append(_FinishedBatch(row, now_ms(), "cancelled", None))
            self._queue_watch.changed(session_id)
            return row.batch

    async def abandon_claim(self, claim: QueueClaim, *, error: str | None = None,
                            max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                            count_attempt: bool = True) -> None:
        with self._lock:
            t = now_ms()
            for bid in claim.batch_ids:
                row = self._batches.get(bid)
                if row is not None and row.claim_id == claim.claim_id:
                    row.claim_id, row.claimed_at_ms = None, None
                    if not count_attempt:  # handed back: as it was before this claim
                        row.attempts = max(0, row.attempts - 1)
                        continue
                    row.error = clip_error(error) or row.error
                    if attempts_exhausted(row.attempts, max_attempts):
                        row.park(t)
            self._queue_watch.changed(claim.session_id)

    async def queue_changes(self) -> QueueWatch:
        return self._queue_watch

    async def sessions_with_ready_work(self) -> list[str]:
        with self._lock:
            t = now_ms()
            out: dict[str, int] = {}
            for r in self._batches.values():
                if (r.batch.available_at_ms <= t and r.failed_at_ms is None
                        and not self._is_claimed(r, t)):
                    sid = r.batch.session_id
                    out[sid] = min(out.get(sid, r.batch.enqueue_seq), r.batch.enqueue_seq)
            return sorted(out, key=out.__getitem__)

    async def close(self) -> None:
        return None


def _active_path(nodes: list[SessionNode], leaf: str | None) -> list[SessionNode]:
    by_id = {n.node_id: n for n in nodes}
    path: list[SessionNode] = []
    cur = leaf
    while cur is not None and cur in by_id:
        path.append(by_id[cur])
        cur = by_id[cur].parent_node_id
    path.reverse()
    return path


def _prior_hash(s: _Session | None, commit: RuntimeCommit) -> str | None:
    if s is None or commit.turn is None:
        return None
    prior = s.turns.get(commit.turn.turn_id)
    return None if prior is None else prior.commit_hash


def _apply_graph_and_rows(s: _Session, commit: RuntimeCommit) -> None:
    if commit.replace_graph is not None:
        s.nodes = list(commit.replace_graph)
        s.node_ids = {n.node_id for n in s.nodes}
        s.tombstoned = set()  # the rows were rewritten, as the file stores do
    for n in commit.append_nodes:
        if n.node_id not in s.node_ids:
            s.nodes.append(n)
            s.node_ids.add(n.node_id)
    if commit.usage_deltas:  # a progress commit has none
        s.ledger = merge_ledger(
            s.ledger, (TokenLedgerEntry(d.source, d.model, d.usage) for d in commit.usage_deltas))
        s.usage_rows.extend(commit.usage_deltas)
    s.llm_calls.extend(commit.llm_calls)
    s.tool_calls.extend(commit.tool_calls)
    s.events.extend(commit.events)


def _apply_turns(s: _Session, commit: RuntimeCommit, t: int) -> None:
    keep = commit.turn_started.turn_id if commit.turn_started else None
    if commit.close_open_turns:
        for tid, started in list(s.open_turns.items()):
            if tid != keep:
                s.turns[tid] = process_lost_record(tid, started, t)
                del s.open_turns[tid]
    if commit.turn_started is not None:
        s.open_turns[commit.turn_started.turn_id] = commit.turn_started.started_at_ms
    if commit.turn is not None:
        s.open_turns.pop(commit.turn.turn_id, None)
        s.turns[commit.turn.turn_id] = commit.turn


def _next_meta(meta: SessionMeta, commit: RuntimeCommit, t: int) -> SessionMeta:
    # every field named (not dataclasses.replace: this runs twice per turn)
    return SessionMeta(
        session_id=meta.session_id,
        provider_id=commit.provider_id or meta.provider_id,
        model=commit.model or meta.model,
        parent_session_id=commit.parent_session_id or meta.parent_session_id,
        policy=dict(commit.policy) or meta.policy,
        head_revision=meta.head_revision + 1,
        leaf_node_id=commit.leaf_node_id,
        turn_index=commit.turn_index,
        tool_state=commit.tool_state if commit.tool_state is not None else meta.tool_state,
        created_at_ms=meta.created_at_ms,
        updated_at_ms=t,
    )


def _choose(ready: list[_BatchRow], boundary: ClaimBoundary, max_batches: int,
            batch_ids: Sequence[str] | None, commands: bool) -> list[_BatchRow]:
    """The rows a claim takes: the selected ids (if they form a group deliverable at
    ``boundary``), else the claim prefix of the ready rows."""
    if batch_ids is not None:
        by_id = {r.batch.batch_id: r for r in ready}
        if not all(b in by_id for b in batch_ids):
            return []
        chosen = [by_id[b] for b in batch_ids]
        return chosen if validate_selected_group([r.batch for r in chosen], boundary) else []
    group = select_claim_prefix([r.batch for r in ready], boundary, max_batches,
                                commands=commands)
    ids = {b.batch_id for b in group}
    return [r for r in ready if r.batch.batch_id in ids]
