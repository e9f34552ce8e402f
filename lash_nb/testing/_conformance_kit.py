"""Shared pieces of the store conformance suite (``conformance.py``): types, fixed owners and
policies, builders of nodes, turn records and queue drafts, and small assertion helpers."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from .._core.graph import SessionNode
from .._core.queue import DeliveryPolicy, QueuedWorkDraft, SlotPolicy
from .._core.records import Message, Part, PartKind, Role
from .._store.base import (
    Lease,
    RuntimeCommit,
    SessionStore,
    TurnRecord,
    lease_owner_id,
)

StoreOpener = Callable[[], Any]  # returns a SessionStore (or an awaitable of one)
StoreFactory = Callable[[Path], StoreOpener]
Check = Callable[[StoreOpener], Coroutine[Any, Any, None]]

OWNER_A = lease_owner_id("conformance-a")
OWNER_B = lease_owner_id("conformance-b")
EARLIEST = DeliveryPolicy.EARLIEST_SAFE_BOUNDARY
AFTER = DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT
EXCL, JOIN = SlotPolicy.EXCLUSIVE, SlotPolicy.JOIN


# ---------------------------------------------------------------------------- helpers
@asynccontextmanager
async def _opened(opener: StoreOpener) -> AsyncIterator[SessionStore]:
    """The store ``opener`` opens, closed when the block ends, a failed check's too."""
    opened = opener()
    store: SessionStore = await opened if inspect.isawaitable(opened) else opened
    try:
        yield store
    finally:
        await store.close()


def _eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


async def _raises(exc: type[BaseException], aw: Awaitable[Any], what: str) -> None:
    try:
        await aw
    except exc:
        return
    raise AssertionError(f"{what}: expected {exc.__name__}")


def node(node_id: str, parent: str | None, text: str, turn_id: str = "t1",
         role: Role = Role.USER) -> SessionNode:
    msg = Message(node_id, role, (Part(f"{node_id}.p0", PartKind.TEXT, text),))
    return SessionNode(node_id, parent, "message", msg, None, 1_700_000_000_000, turn_id)


def turn_record(turn_id: str, commit_hash: str = "h1") -> TurnRecord:
    return TurnRecord(turn_id, "finished", "assistant_message", 1_700_000_000_000, 12.5,
                      commit_hash, {"turn_id": turn_id, "outcome": {"finished": {}}})


def draft(sid: str, text: str, *, key: str | None = None, delivery: DeliveryPolicy = AFTER,
          slot: SlotPolicy = EXCL, merge: str | None = None,
          kind: str = "turn_input") -> QueuedWorkDraft:
    payload = {"items": [{"type": "text", "text": text}]} if kind == "turn_input" else {
        "command": text}
    return QueuedWorkDraft(sid, key, delivery, slot, merge, 0, ((kind, payload),))


async def _lease(store: SessionStore, sid: str, owner: str = OWNER_A) -> Lease:
    lease = await store.try_acquire_lease(sid, owner)
    if not isinstance(lease, Lease):
        raise AssertionError(f"expected to acquire the lease on {sid!r}, got {lease!r}")
    return lease


async def _texts(store: SessionStore, sid: str, **kw: Any) -> list[str]:
    return [b.text for b in await store.list_queued_work(sid, **kw)]


async def _claim_texts(store: SessionStore, lease: Lease, **kw: Any) -> list[str] | None:
    claim = await store.claim_queued_work(lease, **kw)
    return None if claim is None else [b.text for b in claim.batches]


async def _two_sessions(store: SessionStore) -> tuple[Lease, Lease]:
    """Sessions ``s1`` (node ``a``) and ``s2`` (node ``b``); their leases."""
    la, lb = await _lease(store, "s1"), await _lease(store, "s2")
    await store.commit(RuntimeCommit("s1", la, append_nodes=(node("a", None, "one"),),
                                     leaf_node_id="a"))
    await store.commit(RuntimeCommit("s2", lb, append_nodes=(node("b", None, "two"),),
                                     leaf_node_id="b"))
    return la, lb
