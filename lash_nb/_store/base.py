"""The persistence contract every store implements (shaped after lash ``RuntimePersistence``).

One store holds many sessions; every call names its session. All methods are coroutines.

Theory of operation
- **Session execution lease.** One runtime at a time runs turns on a session. A lease has an
  owner, a token, a fencing number (bumped on every new acquisition) and an expiry (TTL,
  renewed while a turn runs). ``try_acquire_lease`` returns a :class:`Lease` or
  :class:`LeaseBusy`; the same owner re-acquiring extends its lease (same token and
  fencing, even when it had expired). An expired lease is free for others.
  A lease is *held* while the stored row carries its token and fencing, i.e. until it is
  released or another owner acquires the session (fencing + 1); it is *live* while held and
  not expired. Commits, claims and renewals need it held, not live: a holder whose event
  loop was blocked past the TTL, while nobody else claimed the session, renews (re-acquires)
  its lease and commits; once another owner took over, every one of them raises
  ``SessionExecutionLeaseLost`` (fencing). Only live leases keep others out and keep claims
  claimed (docs/adr/0014).
- **Commits.** ``commit`` applies one :class:`RuntimeCommit` in one transaction after the one
  admission rule (``admission.py``), in this order:
  idempotency stamp (same turn id + same hash returns the stored result; another hash raises
  ``TurnCommitConflict``), lease check (a commit without a lease raises
  ``SessionExecutionLeaseExpired``; a held lease, else ``SessionExecutionLeaseLost``),
  CAS on ``expected_head_revision`` when given (``HeadRevisionConflict``), claim ownership
  (``ClaimSuperseded``), then: session row, graph delta (append, or replace all nodes), usage
  deltas, llm / tool call rows, activity events, turn row, deletion of completed batches,
  lease release. ``head_revision`` grows by one per commit.
- **Progress and terminal commits.** A progress commit (``turn_started`` set, ``turn`` None)
  makes the user message durable before the first model call and opens the turn row; it
  also closes every other open turn of the session (a turn whose runtime died: the committer
  holds the lease, so nobody else can be running it) as ``stopped: runtime_error`` with
  stop detail ``process_lost`` (``close_open_turns``; the runtime also sends a recovery
  commit with only that flag when it opens a session that has open turns). The terminal
  commit (``turn`` set) closes the turn.
  After a crash a store holds the pre-turn state, the progress state, or the post-turn
  state; never part of a commit.
- **Queued work** follows ``lash_nb._core.queue``: claims are pinned to the claimer's lease
  fencing number and are live only while that lease generation holds the session. Each
  claim counts an attempt; a batch claimed ``max_attempts`` times without completing is
  parked ``failed`` with its last error (``abandon_claim(claim, error=...)`` records it),
  listed by ``list_queued_work`` and never claimed again. ``abandon_claim(claim,
  count_attempt=False)`` hands a claim back uncounted (its claimer was stopped on purpose,
  not failed: docs/adr/0158): attempts as before the claim, error unchanged, never parked.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, runtime_checkable

from .._core.attachments import AttachmentRef
from .._core.events import TurnActivity
from .._core.graph import SessionGraph, SessionNode, StoredNodes
from .._core.queue import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimBoundary,
    QueueClaim,
    QueuedWorkBatch,
    QueuedWorkDraft,
)
from .._core.records import ToolCallRecord
from .._core.usage import LlmCallRecord, TokenLedgerEntry, TokenUsage
from .queue_watch import QueueWatch

SCHEMA_VERSION = 1
DEFAULT_LEASE_TTL_MS = 30_000
LEASE_RENEW_INTERVAL_MS = 10_000


class ReadScope(str, enum.Enum):
    FULL_GRAPH = "full_graph"
    ACTIVE_PATH = "active_path"


@dataclass(frozen=True)
class SessionMeta:
    session_id: str
    provider_id: str = ""
    model: str = ""
    parent_session_id: str | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)
    head_revision: int = 0
    leaf_node_id: str | None = None
    turn_index: int = 0
    tool_state: Mapping[str, Any] | None = None
    created_at_ms: int = 0
    updated_at_ms: int = 0


@dataclass(frozen=True)
class PersistedSession:
    meta: SessionMeta
    nodes: Sequence[SessionNode]  # full graph: insertion order; active path: root first
    ledger: tuple[TokenLedgerEntry, ...]
    scope: ReadScope
    open_turn_ids: tuple[str, ...] = ()  # turns with a progress commit and no terminal one

    def graph(self) -> SessionGraph:
        """The session graph of these nodes (an active path ending at the leaf is taken as
        is, without walking the parent links again)."""
        nodes, leaf = self.nodes, self.meta.leaf_node_id
        if isinstance(nodes, StoredNodes):  # rows: node objects made when asked for
            return SessionGraph.from_stored(nodes, leaf)
        if self.scope is ReadScope.ACTIVE_PATH and nodes and nodes[-1].node_id == leaf:
            return SessionGraph.from_active_path(nodes)
        return SessionGraph(nodes, leaf)


@dataclass(frozen=True)
class TurnStart:
    turn_id: str
    started_at_ms: int


@dataclass(frozen=True)
class TurnRecord:
    """The terminal record of one turn (one row per turn in the store's turns table)."""

    turn_id: str
    outcome: str  # finished | stopped | agent_frame_switch
    stop_reason: str  # the finish or stop wire name: assistant_message, cancelled, ...
    started_at_ms: int
    duration_ms: float
    commit_hash: str
    result: Mapping[str, Any]


@dataclass(frozen=True)
class UsageDelta:
    turn_id: str
    source: str
    model: str
    usage: TokenUsage
    estimated: bool = False  # an estimate for a cut stream (stored in usage_deltas.estimated)


@dataclass(frozen=True)
class Lease:
    session_id: str
    owner_id: str
    token: str
    fencing: int
    expires_at_ms: int


@dataclass(frozen=True)
class LeaseBusy:
    session_id: str
    holder_owner_id: str
    expires_at_ms: int


@dataclass(frozen=True)
class RuntimeCommit:
    session_id: str
    lease: Lease | None
    expected_head_revision: int | None = None
    provider_id: str = ""
    model: str = ""
    parent_session_id: str | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)
    tool_state: Mapping[str, Any] | None = None
    turn_index: int = 0
    append_nodes: tuple[SessionNode, ...] = ()
    replace_graph: tuple[SessionNode, ...] | None = None  # not None: rewrite all nodes
    leaf_node_id: str | None = None
    turn_started: TurnStart | None = None
    turn: TurnRecord | None = None
    usage_deltas: tuple[UsageDelta, ...] = ()
    llm_calls: tuple[tuple[str, LlmCallRecord], ...] = ()  # (turn_id, record)
    tool_calls: tuple[tuple[str, ToolCallRecord], ...] = ()  # (turn_id, record)
    events: tuple[TurnActivity, ...] = ()
    completed_claims: tuple[QueueClaim, ...] = ()
    close_open_turns: bool = False  # close other open turns as process_lost (see docstring)
    release_lease: bool = False


@dataclass(frozen=True)
class CommitResult:
    head_revision: int
    duplicate: bool = False


@runtime_checkable
class SessionStore(Protocol):
    """See the module docstring for the semantics each method must keep."""

    durable: bool

    async def load_session(
        self, session_id: str, scope: ReadScope = ReadScope.FULL_GRAPH
    ) -> PersistedSession | None: ...

    async def commit(self, commit: RuntimeCommit) -> CommitResult: ...

    async def try_acquire_lease(
        self, session_id: str, owner_id: str, ttl_ms: int = DEFAULT_LEASE_TTL_MS
    ) -> Lease | LeaseBusy: ...

    async def renew_lease(self, lease: Lease, ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> Lease: ...

    async def release_lease(self, lease: Lease) -> None: ...

    async def enqueue(self, draft: QueuedWorkDraft) -> QueuedWorkBatch: ...

    async def list_queued_work(
        self, session_id: str, *, include_claimed: bool = False
    ) -> list[QueuedWorkBatch]: ...

    async def claim_queued_work(
        self,
        lease: Lease,
        *,
        boundary: ClaimBoundary = ClaimBoundary.IDLE,
        max_batches: int = 64,
        batch_ids: Sequence[str] | None = None,
        commands: bool = False,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> QueueClaim | None: ...

    async def cancel_queued_work_batch(
        self, session_id: str, batch_id: str
    ) -> QueuedWorkBatch | None: ...

    async def abandon_claim(self, claim: QueueClaim, *, error: str | None = None,
                            max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                            count_attempt: bool = True) -> None: ...

    async def sessions_with_ready_work(self) -> list[str]: ...

    async def list_sessions(self) -> list[SessionMeta]: ...

    async def load_events(
        self, session_id: str, turn_id: str | None = None
    ) -> list[TurnActivity]: ...

    async def load_turns(self, session_id: str) -> list[TurnRecord]: ...

    async def delete_session(self, session_id: str) -> None: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------- optional capabilities
# A store declares an optional capability by implementing its Protocol below; the runtime
# asks through the ``has_*`` / ``watches_*`` guards (one class check, cached), never with
# getattr probing.


@runtime_checkable
class TurnCancelChannel(Protocol):
    """Carries cancel requests across processes (PostgreSQL)."""

    async def request_turn_cancel(self, session_id: str, turn_id: str) -> None: ...

    async def watch_turn_cancel(
        self, session_id: str, turn_id: str, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call ``callback`` (from any thread) when a cancel of the turn is requested;
        returns the unsubscribe callable."""
        ...


@runtime_checkable
class WorkNotifier(Protocol):
    """Wakes a waiting worker as soon as work is enqueued (PostgreSQL LISTEN/NOTIFY)."""

    async def wait_for_work(self, timeout_s: float) -> bool: ...


@runtime_checkable
class QueueChangeWatcher(Protocol):
    """Wakes waiters when batches leave a session's queue (``queue_watch.py``): every
    lash_nb store; PostgreSQL also hears other processes' changes."""

    async def queue_changes(self) -> QueueWatch: ...


@runtime_checkable
class EmptyQueueHint(Protocol):
    """Tells, without a claim, that a session surely has nothing to claim (the memory store:
    no queued batch at all). A turn's checkpoints then skip their claims; ``False`` means
    "maybe": the turn claims as usual (which also checks the lease)."""

    def surely_nothing_queued(self, lease: Lease) -> bool: ...


@runtime_checkable
class LeaseForgetter(Protocol):
    """Releases a lease taken on a session that turned out deleted (ADR 0148): the handle
    took it to commit, the store refused with ``SessionDeleted``. Where the session is still
    not stored and has no queued work, its lease row is deleted rather than kept released,
    so a deleted session leaves no row behind; else (created anew, work enqueued meanwhile)
    it is an ordinary release. A store without it keeps the released row."""

    async def forget_lease(self, lease: Lease) -> None: ...


@runtime_checkable
class FileReleaser(Protocol):
    """Lets other processes open the store's file while this one is idle (DuckDB)."""

    async def release_file(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Keeps attachment bytes content-addressed (the ``blobs`` table): one row per distinct
    content id, whatever number of nodes reference it."""

    async def put_blobs(self, blobs: Sequence[tuple[AttachmentRef, bytes]]) -> None:
        """Store each blob unless its id is stored already (idempotent)."""
        ...

    async def get_blobs(self, blob_ids: Sequence[str]) -> dict[str, bytes]:
        """The bytes of the stored ones among ``blob_ids`` (missing ids are left out)."""
        ...

    async def prune_blobs(self, *, older_than_s: float = 3600.0) -> int:
        """Delete blobs no graph node and no queued batch references and that were stored
        more than ``older_than_s`` ago (a turn puts its blobs just before the commit that
        references them); returns how many were deleted."""
        ...


_CAPABILITIES: dict[tuple[type, type], bool] = {}


def _has(store: object, capability: type) -> bool:
    key = (type(store), capability)
    known = _CAPABILITIES.get(key)
    if known is None:
        known = _CAPABILITIES[key] = isinstance(store, capability)
    return known


def watches_turn_cancel(store: object) -> TypeGuard[TurnCancelChannel]:
    return _has(store, TurnCancelChannel)


def forgets_leases(store: object) -> TypeGuard[LeaseForgetter]:
    return _has(store, LeaseForgetter)


def notifies_work(store: object) -> TypeGuard[WorkNotifier]:
    return _has(store, WorkNotifier)


def hints_empty_queue(store: object) -> TypeGuard[EmptyQueueHint]:
    return _has(store, EmptyQueueHint)


def releases_file(store: object) -> TypeGuard[FileReleaser]:
    return _has(store, FileReleaser)


def watches_queue(store: object) -> TypeGuard[QueueChangeWatcher]:
    return _has(store, QueueChangeWatcher)
def stores_blobs(store: object) -> TypeGuard[BlobStore]:
    return _has(store, BlobStore)


def lease_is_held(lease: Lease, token: str | None, fencing: int) -> bool:
    """The stored lease row (``token``, ``fencing``) is still ``lease``'s: nobody released
    it or took the session over. Its expiry does not matter to the holder."""
    return token is not None and token == lease.token and fencing == lease.fencing


_HOST = socket.gethostname()


def lease_owner_id(nonce: str) -> str:
    """``<host>:<pid>:<nonce>``: lets a store on this host prove a holder dead."""
    return f"{_HOST}:{os.getpid()}:{nonce}"


def owner_is_dead(owner_id: str) -> bool:
    """True only when the owner ran on this host and its process no longer exists."""
    parts = owner_id.split(":")
    if len(parts) < 3 or parts[0] != _HOST:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def process_lost_record(turn_id: str, started_at_ms: int, now_ms: int) -> TurnRecord:
    """The terminal record written for a turn whose runtime died mid-turn."""
    result = {
        "turn_id": turn_id,
        "outcome": {"stopped": "runtime_error"},
        "errors": [{"kind": "runtime", "code": "process_lost",
                    "message": "the process running this turn exited before it committed"}],
    }
    return TurnRecord(turn_id, "stopped", "runtime_error", started_at_ms,
                      float(max(0, now_ms - started_at_ms)), "process_lost", result)
