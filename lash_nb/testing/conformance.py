"""The public store conformance suite: checks every :class:`SessionStore` must pass.

A *store factory* takes a fresh folder and returns an *opener*; each call of the opener opens
a store over the same backing data (for an in-memory store, return the same instance), so
the suite can close a store and reopen it::

    def duckdb_factory(folder):
        return lambda: DuckDBStore(folder / "lash.duckdb")

    def memory_factory(folder):
        store = MemoryStore()
        return lambda: store

Run everything with ``await run_conformance(factory, folder)``, one check with
``await CHECKS["lease_rules"](factory(folder))``, or let pytest collect one test per check::

    from lash_nb.testing.conformance import store_conformance_tests
    globals().update(store_conformance_tests(duckdb_factory, prefix="duckdb"))

Expected values below are written by hand; a failing check raises ``AssertionError``
naming what differed.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from .._core.events import AssistantProseDelta, ToolCallStarted, TurnActivity
from .._core.graph import SessionNode
from .._core.queue import ClaimBoundary, DeliveryPolicy, QueuedWorkDraft, SlotPolicy
from .._core.records import Message, Part, PartKind, Role
from .._core.usage import LlmAttempt, LlmCallRecord, TokenLedgerEntry, TokenUsage
from .._errors import (
    ClaimSuperseded,
    HeadRevisionConflict,
    SessionExecutionLeaseExpired,
    SessionExecutionLeaseLost,
    TurnCommitConflict,
)
from .._store.base import (
    Lease,
    LeaseBusy,
    ReadScope,
    RuntimeCommit,
    SessionStore,
    TurnRecord,
    TurnStart,
    UsageDelta,
    lease_owner_id,
)
from .._store.retention import StoreMaintenance, maintains

__all__ = [
    "CHECKS",
    "Check",
    "StoreFactory",
    "StoreOpener",
    "draft",
    "node",
    "run_conformance",
    "store_conformance_tests",
    "turn_record",
]

StoreOpener = Callable[[], Any]  # returns a SessionStore (or an awaitable of one)
StoreFactory = Callable[[Path], StoreOpener]
Check = Callable[[StoreOpener], Coroutine[Any, Any, None]]

OWNER_A = lease_owner_id("conformance-a")
OWNER_B = lease_owner_id("conformance-b")
EARLIEST = DeliveryPolicy.EARLIEST_SAFE_BOUNDARY
AFTER = DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT
EXCL, JOIN = SlotPolicy.EXCLUSIVE, SlotPolicy.JOIN


# ---------------------------------------------------------------------------- helpers
async def _open(opener: StoreOpener) -> SessionStore:
    opened = opener()
    store: SessionStore = await opened if inspect.isawaitable(opened) else opened
    return store


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


# ---------------------------------------------------------------------------- graph + ledger
async def reopened_store_shows_same_graph_and_ledger(opener: StoreOpener) -> None:
    store = await _open(opener)
    lease = await _lease(store, "s1")
    a, b, c = node("a", None, "hi"), node("b", "a", "yes", role=Role.ASSISTANT), node("c", "b", "more")
    d = node("d", "a", "branch", turn_id="t2")
    u = [UsageDelta("t1", "turn", "m1", TokenUsage(10, 5)),
         UsageDelta("t1", "turn", "m2", TokenUsage(3, 1)),
         UsageDelta("t1", "turn", "m1", TokenUsage(1, 1, 0, 0, 1)),
         UsageDelta("t1", "tool", "m1", TokenUsage(0, 0, 0, 0, 7))]  # total 0: not in ledger
    await store.commit(RuntimeCommit("s1", lease, provider_id="offline", model="m1",
                                     append_nodes=(a, b, c), leaf_node_id="c",
                                     usage_deltas=tuple(u), turn_index=1))
    await store.commit(RuntimeCommit("s1", lease, append_nodes=(d,), leaf_node_id="d",
                                     turn_index=2))
    await store.close()
    store = await _open(opener)
    try:
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        path = await store.load_session("s1", ReadScope.ACTIVE_PATH)
        assert full is not None and path is not None
        _eq([n.node_id for n in full.nodes], ["a", "b", "c", "d"], "full graph order")
        _eq([n.node_id for n in path.nodes], ["a", "d"], "active path, root first")
        _eq(full.nodes[1], b, "a reloaded node")
        _eq((full.meta.head_revision, full.meta.leaf_node_id, full.meta.turn_index,
             full.meta.provider_id, full.meta.model), (2, "d", 2, "offline", "m1"), "head")
        _eq(list(full.ledger), [TokenLedgerEntry("turn", "m1", TokenUsage(11, 6, 0, 0, 1)),
                                TokenLedgerEntry("turn", "m2", TokenUsage(3, 1))], "ledger")
        _eq(path.ledger, full.ledger, "ledger of the active-path read")
        _eq([m.session_id for m in await store.list_sessions()], ["s1"], "sessions")
    finally:
        await store.close()


async def replace_graph_rewrites_all_nodes(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("a", None, "x"),
                                         node("b", "a", "y")), leaf_node_id="b"))
        await store.commit(RuntimeCommit("s1", lease, replace_graph=(node("z", None, "new"),),
                                         append_nodes=(node("z", None, "new"), node("y", "z", "n")),
                                         leaf_node_id="y"))
        got = await store.load_session("s1")
        assert got is not None
        _eq([n.node_id for n in got.nodes], ["z", "y"], "nodes after replace")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("y", "z", "n"),),
                                         leaf_node_id="y"))
        got = await store.load_session("s1")
        assert got is not None
        _eq([n.node_id for n in got.nodes], ["z", "y"], "an appended node stored once")
    finally:
        await store.close()


async def a_committed_config_patch_survives_a_reopen(opener: StoreOpener) -> None:
    """``session.configure(...)`` commits the session policy (model, prompt layer, the fields
    the patch set); a reopened store returns it unchanged, a later commit that carries the
    same policy keeps it, and a reset (an empty replacing graph) leaves no node behind."""
    policy = {"provider_id": "p2", "model": "large", "max_turns": 50, "system_prompt": None,
              "prompt": {"slots": {"guidance": {"reset": True, "contributions": [
                  {"slot": "guidance", "content": "Réponds en français.", "priority": 0,
                   "title": "Langue"}]}}},
              "configured": ["model", "prompt"]}
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, provider_id="p1", model="small",
                                         append_nodes=(node("a", None, "hi"),), leaf_node_id="a",
                                         policy={"provider_id": "p1", "model": "small"}))
        await store.commit(RuntimeCommit("s1", lease, provider_id="p2", model="large",
                                         policy=policy, leaf_node_id="a"))
    finally:
        await store.close()
    store = await _open(opener)
    try:
        got = await store.load_session("s1")
        assert got is not None
        _eq(dict(got.meta.policy), policy, "the committed policy after a reopen")
        _eq((got.meta.provider_id, got.meta.model), ("p2", "large"), "provider and model")
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, replace_graph=(), leaf_node_id=None,
                                         policy=policy))
        got = await store.load_session("s1")
        assert got is not None
        _eq((list(got.nodes), got.meta.leaf_node_id), ([], None), "nodes after a reset")
        _eq(dict(got.meta.policy), policy, "the policy after a reset")
    finally:
        await store.close()


async def every_turn_has_exactly_one_terminal_commit(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("a", None, "1"),),
                                         leaf_node_id="a", turn_started=TurnStart("t1", 1000)))
        got = await store.load_session("s1")
        assert got is not None
        _eq(got.open_turn_ids, ("t1",), "open turns after a progress commit")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("b", "a", "2", "t2"),),
                                         leaf_node_id="b", turn_started=TurnStart("t2", 2000),
                                         close_open_turns=True))
        turns = await store.load_turns("s1")
        _eq([(t.turn_id, t.outcome, t.stop_reason, t.commit_hash, t.started_at_ms)
             for t in turns], [("t1", "stopped", "runtime_error", "process_lost", 1000)],
            "the dead turn closed as process_lost")
        await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t2"), leaf_node_id="b"))
        await store.commit(RuntimeCommit("s1", lease, leaf_node_id="b", close_open_turns=True))
        got = await store.load_session("s1")
        assert got is not None
        _eq(got.open_turn_ids, (), "open turns after the terminal commit")
        turns = await store.load_turns("s1")
        _eq([t.turn_id for t in turns], ["t1", "t2"], "one terminal record per turn")
        _eq(turns[1], turn_record("t2"), "the terminal record as committed")
    finally:
        await store.close()


async def usage_totals_equal_sum_of_per_call_usage(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        calls = [(100, 20, 50, 0, 5), (130, 40, 100, 10, 0), (7, 3, 0, 0, 0)]
        recs = tuple(("t1", LlmCallRecord(f"c{i}", "m1", i, (
            LlmAttempt(1, 0, 5.0, "completed", TokenUsage(*u)),))) for i, u in enumerate(calls))
        deltas = tuple(UsageDelta("t1", "turn", "m1", TokenUsage(*u)) for u in calls)
        await store.commit(RuntimeCommit("s1", lease, llm_calls=recs, usage_deltas=deltas))
        got = await store.load_session("s1")
        assert got is not None
        _eq(list(got.ledger), [TokenLedgerEntry("turn", "m1", TokenUsage(237, 63, 150, 10, 5))],
            "ledger = sum of the three calls")
    finally:
        await store.close()


async def turn_commit_is_idempotent(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        first = await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t1", "h1"),
                                                 append_nodes=(node("a", None, "x"),),
                                                 leaf_node_id="a", release_lease=True))
        _eq((first.head_revision, first.duplicate), (1, False), "first commit")
        again = await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t1", "h1"),
                                                 append_nodes=(node("b", "a", "y"),),
                                                 leaf_node_id="b"))
        _eq((again.head_revision, again.duplicate), (1, True), "same hash, lease released")
        await _raises(TurnCommitConflict, store.commit(RuntimeCommit(
            "s1", None, turn=turn_record("t1", "h2"))), "same turn id, another hash")
        got = await store.load_session("s1")
        assert got is not None
        _eq(([n.node_id for n in got.nodes], got.meta.head_revision), (["a"], 1),
            "a duplicate writes nothing")
    finally:
        await store.close()


async def head_revision_cas(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        r = await store.commit(RuntimeCommit("s1", lease, expected_head_revision=0))
        _eq(r.head_revision, 1, "first commit on an empty head")
        await _raises(HeadRevisionConflict, store.commit(
            RuntimeCommit("s1", lease, expected_head_revision=0)), "stale expected revision")
        r = await store.commit(RuntimeCommit("s1", lease, expected_head_revision=1))
        _eq(r.head_revision, 2, "commit on the current revision")
    finally:
        await store.close()


async def session_head_commits_need_the_lease(opener: StoreOpener) -> None:
    """lash ``session_execution_lease_contract``: a session-head commit without the session
    execution lease raises ``SessionExecutionLeaseExpired`` and writes nothing; the
    idempotent replay of a committed turn returns without a lease."""
    store = await _open(opener)
    try:
        await _raises(SessionExecutionLeaseExpired, store.commit(RuntimeCommit(
            "s1", None, append_nodes=(node("a", None, "x"),), leaf_node_id="a")),
            "a commit with no lease")
        _eq(await store.load_session("s1"), None, "the refused commit wrote nothing")
        lease = await _lease(store, "s1")
        first = await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t1", "h1"),
                                                 release_lease=True))
        replay = await store.commit(RuntimeCommit("s1", None, turn=turn_record("t1", "h1")))
        _eq((replay.head_revision, replay.duplicate), (first.head_revision, True),
            "an idempotent replay needs no lease")
    finally:
        await store.close()


# ---------------------------------------------------------------------------- leases
async def lease_rules(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        a = await _lease(store, "s1", OWNER_A)
        _eq(a.fencing, 1, "first fencing")
        busy = await store.try_acquire_lease("s1", OWNER_B)
        _eq((type(busy), getattr(busy, "holder_owner_id", None)), (LeaseBusy, OWNER_A), "busy")
        again = await _lease(store, "s1", OWNER_A)
        _eq((again.token, again.fencing), (a.token, 1), "same owner extends")
        renewed = await store.renew_lease(again)
        _eq(renewed.token, a.token, "renewed token")
        await store.renew_lease(renewed, ttl_ms=0)  # expires now
        b = await _lease(store, "s1", OWNER_B)
        _eq(b.fencing, 2, "expired lease reacquired with fencing + 1")
        await _raises(SessionExecutionLeaseLost, store.renew_lease(a), "renew a lost lease")
        await store.release_lease(a)  # not the holder: no effect
        busy = await store.try_acquire_lease("s1", OWNER_A)
        _eq(type(busy), LeaseBusy, "release by a non-holder leaves the lease")
        await store.release_lease(b)
        c = await _lease(store, "s1", OWNER_A)
        _eq(c.fencing, 3, "released lease reacquired with fencing + 1")
    finally:
        await store.close()


async def commit_with_lost_lease_writes_nothing(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        a = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", a, append_nodes=(node("a", None, "x"),),
                                         leaf_node_id="a"))
        await store.renew_lease(a, ttl_ms=0)
        await _lease(store, "s1", OWNER_B)  # another owner takes the expired lease over
        lost = RuntimeCommit("s1", a, append_nodes=(node("b", "a", "y"),), leaf_node_id="b",
                             usage_deltas=(UsageDelta("t1", "turn", "m", TokenUsage(1, 1)),),
                             turn=turn_record("t1"))
        await _raises(SessionExecutionLeaseLost, store.commit(lost), "commit on a lost lease")
        got = await store.load_session("s1")
        assert got is not None
        _eq(([n.node_id for n in got.nodes], got.meta.head_revision, got.ledger),
            (["a"], 1, ()), "nothing of the rejected commit")
        _eq(await store.load_turns("s1"), [], "no turn record")
    finally:
        await store.close()


async def an_expired_lease_nobody_took_over_is_still_held(opener: StoreOpener) -> None:
    """A holder whose loop was blocked past the TTL: while no other owner acquired the
    session, its lease renews, claims and commits (same fencing); the batch it claimed is
    pending for others only while the lease is expired."""
    store = await _open(opener)
    try:
        a = await _lease(store, "s1", OWNER_A)
        await store.enqueue(draft("s1", "work"))
        claim = await store.claim_queued_work(a)
        assert claim is not None
        await store.renew_lease(a, ttl_ms=0)  # expired, nobody else came
        _eq(await _texts(store, "s1"), ["work"], "pending for others while expired")
        again = await store.renew_lease(a)
        _eq((again.token, again.fencing), (a.token, a.fencing), "re-acquired, same generation")
        _eq(await _texts(store, "s1"), [], "claimed again once live")
        await store.renew_lease(a, ttl_ms=0)
        mine = await _lease(store, "s1", OWNER_A)
        _eq((mine.token, mine.fencing), (a.token, a.fencing), "same owner re-acquires it")
        await store.renew_lease(a, ttl_ms=0)
        await store.enqueue(draft("s1", "more"))
        late = await store.claim_queued_work(a)
        _eq(late is not None and [b.text for b in late.batches], ["more"], "claims while expired")
        r = await store.commit(RuntimeCommit("s1", a, turn=turn_record("t1"),
                                             completed_claims=(claim,), release_lease=True))
        _eq(r.head_revision, 1, "commit on an expired lease nobody took")
        _eq([t.turn_id for t in await store.load_turns("s1")], ["t1"], "committed turn")
        _eq(await _texts(store, "s1"), ["more"], "released: the late claim is pending again")
        await _raises(SessionExecutionLeaseLost, store.renew_lease(a), "renew after release")
    finally:
        await store.close()


# ---------------------------------------------------------------------------- queue
async def source_keys_are_idempotent_until_the_batch_leaves(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        first = await store.enqueue(draft("s1", "original", key="k"))
        again = await store.enqueue(draft("s1", "changed", key="k"))
        _eq((again.batch_id, again.text), (first.batch_id, "original"), "replayed source key")
        other = await store.enqueue(draft("s2", "other session", key="k"))
        _eq(other.batch_id != first.batch_id, True, "a key is scoped to its session")
        lease = await _lease(store, "s1")
        claim = await store.claim_queued_work(lease)
        assert claim is not None
        await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t1"),
                                         completed_claims=(claim,)))
        after = await store.enqueue(draft("s1", "after completion", key="k"))
        _eq((after.batch_id != first.batch_id, after.text), (True, "after completion"),
            "key free after completion")
        cancelled = await store.cancel_queued_work_batch("s1", after.batch_id)
        _eq(cancelled is not None and cancelled.batch_id, after.batch_id, "cancel")
        fresh = await store.enqueue(draft("s1", "after cancel", key="k"))
        _eq((fresh.batch_id != after.batch_id, fresh.text), (True, "after cancel"),
            "key free after cancel")
    finally:
        await store.close()


async def queue_keeps_enqueue_order(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        batches = [await store.enqueue(draft("s1", t)) for t in ("one", "two", "three")]
        seqs = [b.enqueue_seq for b in batches]
        _eq(seqs == sorted(seqs) and len(set(seqs)) == 3, True, "increasing enqueue_seq")
        _eq(await _texts(store, "s1"), ["one", "two", "three"], "listed in enqueue order")
        lease = await _lease(store, "s1")
        _eq(await _claim_texts(store, lease), ["one"], "exclusive head claimed first")
    finally:
        await store.close()


async def claim_groups_follow_the_grouping_table(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        for text, slot, delivery, merge in [
            ("j1", JOIN, AFTER, "m"), ("j2", JOIN, AFTER, "m"), ("j3", JOIN, AFTER, "other"),
            ("j4", JOIN, EARLIEST, "other"), ("j5", JOIN, AFTER, "other"),
            ("x1", EXCL, AFTER, None), ("j6", JOIN, AFTER, None), ("j7", JOIN, AFTER, None),
            ("x2", EXCL, AFTER, None),
        ]:
            await store.enqueue(draft("s1", text, slot=slot, delivery=delivery, merge=merge))
        expected = [["j1", "j2"], ["j3"], ["j4"], ["j5"], ["x1"], ["j6", "j7"], ["x2"]]
        for group in expected:
            _eq(await _claim_texts(store, lease), group, "claim group")
        _eq(await _claim_texts(store, lease), None, "queue drained")
        for i in range(70):
            await store.enqueue(draft("s2", f"n{i}", slot=JOIN))
        lease2 = await _lease(store, "s2")
        got = await _claim_texts(store, lease2)
        _eq(got, [f"n{i}" for i in range(64)], "a join group stops at 64 batches")
        got = await _claim_texts(store, lease2, max_batches=3)
        _eq(got, ["n64", "n65", "n66"], "max_batches")
    finally:
        await store.close()


async def active_turn_checkpoint_takes_only_earliest_heads(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        checkpoint = ClaimBoundary.ACTIVE_TURN_CHECKPOINT
        after = await store.enqueue(draft("s1", "after", delivery=AFTER))
        await store.enqueue(draft("s1", "steer", delivery=EARLIEST))
        _eq(await _claim_texts(store, lease, boundary=checkpoint), None,
            "an after_current_turn_commit head blocks the checkpoint")
        await store.cancel_queued_work_batch("s1", after.batch_id)
        _eq(await _claim_texts(store, lease, boundary=checkpoint), ["steer"],
            "an earliest_safe_boundary head is taken")
    finally:
        await store.close()


async def by_id_claims_honour_the_delivery_boundary(opener: StoreOpener) -> None:
    """lash ``queued_work_exact_claim_uses_selected_batch_ids``: a claim of selected batch
    ids takes exactly those, and at an active turn's checkpoint only if they may be
    delivered there."""
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        checkpoint = ClaimBoundary.ACTIVE_TURN_CHECKPOINT
        first = await store.enqueue(draft("s1", "first", delivery=EARLIEST))
        after = await store.enqueue(draft("s1", "after", delivery=AFTER))
        _eq(await _claim_texts(store, lease, boundary=checkpoint, batch_ids=[after.batch_id]),
            None, "an after_current_turn_commit batch is not claimed at a checkpoint by id")
        _eq(await _claim_texts(store, lease, batch_ids=[after.batch_id]), ["after"],
            "the selected batch, not the head, is claimed when idle")
        _eq(await _texts(store, "s1"), ["first"], "the head stays pending")
        _eq(await _claim_texts(store, lease, boundary=checkpoint, batch_ids=[first.batch_id]),
            ["first"], "an earliest_safe_boundary batch is claimed at a checkpoint by id")
    finally:
        await store.close()


async def session_commands_are_claimed_first_and_alone(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        await store.enqueue(draft("s1", "refresh", kind="session_command"))
        await store.enqueue(draft("s1", "reload", kind="session_command"))
        await store.enqueue(draft("s1", "work", slot=JOIN))
        _eq(await _claim_texts(store, lease), None, "turn work waits behind commands")
        first = await store.claim_queued_work(lease, commands=True)
        assert first is not None
        _eq([c["command"] for c in first.commands()], ["refresh"], "one command per claim")
        second = await store.claim_queued_work(lease, commands=True)
        assert second is not None
        _eq([c["command"] for c in second.commands()], ["reload"], "then the next")
        _eq(await _claim_texts(store, lease, commands=True), None, "no command left")
        _eq(await _claim_texts(store, lease), ["work"], "then turn work")
    finally:
        await store.close()


async def claimed_batch_is_not_claimed_twice(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        b = await store.enqueue(draft("s1", "once"))
        claim = await store.claim_queued_work(lease)
        assert claim is not None
        _eq(await store.claim_queued_work(lease), None, "second claim, same generation")
        _eq(await store.claim_queued_work(lease, batch_ids=[b.batch_id]), None, "by id")
        _eq(await _texts(store, "s1"), [], "pending list hides live claims")
        listed = await store.list_queued_work("s1", include_claimed=True)
        _eq([(x.batch_id, x.claim_id) for x in listed], [(b.batch_id, claim.claim_id)],
            "claimed list")
        await store.abandon_claim(claim)
        _eq(await _texts(store, "s1"), ["once"], "an abandoned claim is pending again")
    finally:
        await store.close()


async def claims_of_an_expired_generation_are_reclaimable(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        a = await _lease(store, "s1", OWNER_A)
        b1 = await store.enqueue(draft("s1", "work"))
        stale = await store.claim_queued_work(a)
        assert stale is not None
        await store.renew_lease(a, ttl_ms=0)  # A's generation expires
        _eq(await _texts(store, "s1"), ["work"], "pending again without a live generation")
        _eq(await store.sessions_with_ready_work(), ["s1"], "ready again")
        b = await _lease(store, "s1", OWNER_B)
        fresh = await store.claim_queued_work(b)
        _eq(fresh is not None and fresh.batch_ids, (b1.batch_id,), "reclaimed by B")
        await _raises(ClaimSuperseded, store.commit(RuntimeCommit(
            "s1", b, turn=turn_record("t1"), completed_claims=(stale,))), "stale completion")
        assert fresh is not None
        await store.commit(RuntimeCommit("s1", b, turn=turn_record("t1"),
                                         completed_claims=(fresh,)))
        _eq(await store.list_queued_work("s1", include_claimed=True), [], "completed")
    finally:
        await store.close()


async def a_batch_failing_max_attempts_times_is_parked_failed(opener: StoreOpener) -> None:
    """Each claim counts an attempt; at ``max_attempts`` claims without completing, the batch
    is parked ``failed`` with its last error, listed, and never claimed again, whether its
    claims were abandoned with an error or their runtimes died silently."""
    store = await _open(opener)
    try:
        poison = await store.enqueue(draft("s1", "poison"))
        await store.enqueue(draft("s1", "next"))
        lease = await _lease(store, "s1", OWNER_A)
        for attempt in (1, 2, 3):
            claim = await store.claim_queued_work(lease, max_attempts=3)
            _eq(claim is not None and claim.batch_ids, (poison.batch_id,), f"claim {attempt}")
            assert claim is not None
            await store.abandon_claim(claim, error=f"boom {attempt}", max_attempts=3)
            head = (await store.list_queued_work("s1"))[0]
            want = "failed" if attempt == 3 else "pending"
            _eq((head.batch_id, head.status, head.attempts, head.error),
                (poison.batch_id, want, attempt, f"boom {attempt}"), f"after attempt {attempt}")
        _eq([(b.text, b.status) for b in await store.list_queued_work("s1")],
            [("poison", "failed"), ("next", "pending")], "the failed batch stays listed")
        _eq([(b.text, b.status) for b in await store.list_queued_work("s1", include_claimed=True)],
            [("poison", "failed"), ("next", "pending")], "with claimed ones too")
        nxt = await store.claim_queued_work(lease, max_attempts=3)
        _eq(nxt is not None and [b.text for b in nxt.batches], ["next"], "queue moves past it")
        assert nxt is not None
        await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t1"),
                                         completed_claims=(nxt,), release_lease=True))
        other = await _lease(store, "s1", OWNER_B)
        _eq(await store.claim_queued_work(other, max_attempts=99), None,
            "a failed batch is never claimed again, whatever the bound")
        _eq(await store.claim_queued_work(other, batch_ids=[poison.batch_id]), None, "by id")
        _eq(await store.sessions_with_ready_work(), [], "not ready work")
        await store.release_lease(other)
        # runtimes that die holding the claim never abandon it: the next claim parks it
        crashy = await store.enqueue(draft("s2", "crashy"))
        for i, owner in enumerate((OWNER_A, OWNER_B)):
            dying = await _lease(store, "s2", owner)
            _eq(await _claim_texts(store, dying, max_attempts=2), ["crashy"], f"claim {i + 1}")
            await store.renew_lease(dying, ttl_ms=0)  # its process died
        last = await _lease(store, "s2", OWNER_A)
        _eq(await store.claim_queued_work(last, max_attempts=2), None, "parked, not claimed")
        [parked] = await store.list_queued_work("s2")
        _eq((parked.batch_id, parked.status, parked.attempts),
            (crashy.batch_id, "failed", 2), "parked after two silent deaths")
        assert parked.error and "never completed" in parked.error, parked.error
        gone = await store.cancel_queued_work_batch("s2", crashy.batch_id)
        _eq(gone is not None and gone.batch_id, crashy.batch_id, "a failed batch can be cancelled")
        _eq(await store.list_queued_work("s2"), [], "cancelled")
    finally:
        await store.close()


async def cancel_rules(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        claimed = await store.enqueue(draft("s1", "claimed"))
        pending = await store.enqueue(draft("s1", "pending"))
        await store.claim_queued_work(lease)
        _eq(await store.cancel_queued_work_batch("s1", claimed.batch_id), None, "claimed")
        _eq(await store.cancel_queued_work_batch("s1", "qwb:unknown"), None, "unknown id")
        _eq(await store.cancel_queued_work_batch("s2", pending.batch_id), None, "other session")
        gone = await store.cancel_queued_work_batch("s1", pending.batch_id)
        _eq(gone is not None and gone.text, "pending", "pending batch cancelled")
        _eq(await store.cancel_queued_work_batch("s1", pending.batch_id), None, "twice")
        await store.release_lease(lease)
        lease = await _lease(store, "s1")
        _eq(await _claim_texts(store, lease), ["claimed"], "a cancelled batch never returns")
        _eq(await _claim_texts(store, lease), None, "nothing else")
    finally:
        await store.close()


async def _two_sessions(store: SessionStore) -> tuple[Lease, Lease]:
    """Sessions ``s1`` (node ``a``) and ``s2`` (node ``b``); their leases."""
    la, lb = await _lease(store, "s1"), await _lease(store, "s2")
    await store.commit(RuntimeCommit("s1", la, append_nodes=(node("a", None, "one"),),
                                     leaf_node_id="a"))
    await store.commit(RuntimeCommit("s2", lb, append_nodes=(node("b", None, "two"),),
                                     leaf_node_id="b"))
    return la, lb


async def sessions_are_isolated(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        la, _ = await _two_sessions(store)
        await store.enqueue(draft("s2", "for s2", delivery=EARLIEST))
        await store.enqueue(draft("s1", "for s1"))
        _eq(await store.sessions_with_ready_work(), ["s2", "s1"], "ordered by first enqueue")
        _eq(await _claim_texts(store, la), ["for s1"], "s1 claims its own work")
        _eq(await _texts(store, "s2"), ["for s2"], "s2 untouched")
        ev = TurnActivity("e1", "c1", AssistantProseDelta("hello"), "t1")
        await store.commit(RuntimeCommit("s1", la, events=(ev,), leaf_node_id="a"))
        await store.delete_session("s1")
        _eq(await store.load_session("s1"), None, "deleted session")
        _eq(await store.load_events("s1"), [], "deleted events")
        got = await store.load_session("s2")
        assert got is not None
        _eq([n.node_id for n in got.nodes], ["b"], "other session intact")
        _eq(await _texts(store, "s2"), ["for s2"], "other queue intact")
    finally:
        await store.close()


async def events_round_trip_in_order(opener: StoreOpener) -> None:
    store = await _open(opener)
    try:
        lease = await _lease(store, "s1")
        e1 = TurnActivity("a1", "p1", AssistantProseDelta("Hel"), "t1")
        e2 = TurnActivity("a2", "p1", AssistantProseDelta("lo"), "t1")
        e3 = TurnActivity("a3", "tool:c1", ToolCallStarted("c1", "add", {"a": 1}), "t2")
        await store.commit(RuntimeCommit("s1", lease, events=(e1, e2)))
        await store.commit(RuntimeCommit("s1", lease, events=(e3,)))
        _eq(await store.load_events("s1"), [e1, e2, e3], "all events in order")
        _eq(await store.load_events("s1", "t2"), [e3], "events of one turn")
    finally:
        await store.close()


# ---------------------------------------------------------------------------- children + retention
async def parent_session_is_recorded_durably(opener: StoreOpener) -> None:
    """lash ``SessionBuilder::parent``: the relation is part of the session row; a later
    commit without a parent keeps it."""
    store = await _open(opener)
    lease = await _lease(store, "child")
    await store.commit(RuntimeCommit("child", lease, parent_session_id="root",
                                     append_nodes=(node("a", None, "hi"),), leaf_node_id="a"))
    await store.commit(RuntimeCommit("child", lease, append_nodes=(node("b", "a", "more"),),
                                     leaf_node_id="b"))
    await store.close()
    store = await _open(opener)
    try:
        got = await store.load_session("child")
        assert got is not None
        _eq(got.meta.parent_session_id, "root", "parent after reopen")
        _eq({m.session_id: m.parent_session_id for m in await store.list_sessions()},
            {"child": "root"}, "listed with its parent")
    finally:
        await store.close()


def _keeper(store: SessionStore) -> StoreMaintenance | None:
    return store if maintains(store) else None


async def tombstoned_nodes_leave_reads_until_vacuum(opener: StoreOpener) -> None:
    """lash ``StoreMaintenance``: a tombstoned node is gone from every read at once, its row
    stays until ``vacuum()``, which removes exactly the tombstoned rows of every session."""
    store = await _open(opener)
    if _keeper(store) is None:  # an optional capability of third-party stores
        await store.close()
        return
    lease, other = await _lease(store, "s1"), await _lease(store, "s2")
    a, b, c = node("a", None, "hi"), node("b", "a", "old branch"), node("c", "b", "old reply")
    d = node("d", "a", "new branch", turn_id="t2")
    await store.commit(RuntimeCommit("s1", lease, append_nodes=(a, b, c), leaf_node_id="c"))
    await store.commit(RuntimeCommit("s1", lease, append_nodes=(d,), leaf_node_id="d"))
    await store.commit(RuntimeCommit("s2", other, append_nodes=(node("x", None, "keep"),),
                                     leaf_node_id="x"))
    try:
        keeper = _keeper(store)
        assert keeper is not None
        _eq(await keeper.tombstone_nodes("s1", ["b", "c", "nope"]), 2, "tombstoned count")
        _eq(await keeper.tombstone_nodes("s1", ["b"]), 0, "a tombstone is marked once")
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        path = await store.load_session("s1", ReadScope.ACTIVE_PATH)
        assert full is not None and path is not None
        _eq([n.node_id for n in full.nodes], ["a", "d"], "full graph without tombstones")
        _eq([n.node_id for n in path.nodes], ["a", "d"], "active path untouched")
        await store.close()
        store = await _open(opener)
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        assert full is not None
        _eq([n.node_id for n in full.nodes], ["a", "d"], "tombstones after reopen")
        keeper = _keeper(store)
        assert keeper is not None
        report = await keeper.vacuum()
        _eq(report.removed_node_count, 2, "vacuum removes the tombstoned rows")
        _eq((await keeper.vacuum()).removed_node_count, 0, "a second vacuum finds nothing")
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        kept = await store.load_session("s2", ReadScope.FULL_GRAPH)
        assert full is not None and kept is not None
        _eq([n.node_id for n in full.nodes], ["a", "d"], "live nodes after vacuum")
        _eq(full.nodes[1], d, "a live node after vacuum")
        _eq([n.node_id for n in kept.nodes], ["x"], "other session after vacuum")
        _eq(full.meta.head_revision, 2, "vacuum is no commit")
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("e", "d", "go on"),),
                                         leaf_node_id="e", expected_head_revision=2))
        path = await store.load_session("s1", ReadScope.ACTIVE_PATH)
        assert path is not None
        _eq([n.node_id for n in path.nodes], ["a", "d", "e"], "commits go on after vacuum")
    finally:
        await store.close()


async def deleting_a_session_takes_its_queued_work_and_nothing_else(opener: StoreOpener) -> None:
    """Deleting a session removes its pending and claimed batches and its lease; another
    session keeps its graph and queue; the id can start over from revision 0."""
    store = await _open(opener)
    try:
        la, _ = await _two_sessions(store)
        await store.enqueue(draft("s1", "claimed"))
        await store.enqueue(draft("s2", "kept"))
        _eq(await _claim_texts(store, la), ["claimed"], "s1 claims")
        await store.enqueue(draft("s1", "pending"))
        await store.delete_session("s1")
        _eq(await store.list_queued_work("s1", include_claimed=True), [], "s1 queue gone")
        _eq(await store.sessions_with_ready_work(), ["s2"], "only s2 has work")
        _eq(await _texts(store, "s2"), ["kept"], "s2 queue intact")
        got = await store.load_session("s2")
        assert got is not None
        _eq([n.node_id for n in got.nodes], ["b"], "s2 graph intact")
        fresh = await _lease(store, "s1", OWNER_B)  # no lease row survives the delete
        res = await store.commit(RuntimeCommit("s1", fresh, expected_head_revision=0,
                                               append_nodes=(node("n", None, "again"),),
                                               leaf_node_id="n"))
        _eq(res.head_revision, 1, "a deleted id starts over")
    finally:
        await store.close()


CHECKS: dict[str, Check] = {
    f.__name__: f
    for f in (
        reopened_store_shows_same_graph_and_ledger,
        replace_graph_rewrites_all_nodes,
        a_committed_config_patch_survives_a_reopen,
        every_turn_has_exactly_one_terminal_commit,
        usage_totals_equal_sum_of_per_call_usage,
        turn_commit_is_idempotent,
        head_revision_cas,
        session_head_commits_need_the_lease,
        lease_rules,
        commit_with_lost_lease_writes_nothing,
        an_expired_lease_nobody_took_over_is_still_held,
        source_keys_are_idempotent_until_the_batch_leaves,
        queue_keeps_enqueue_order,
        claim_groups_follow_the_grouping_table,
        active_turn_checkpoint_takes_only_earliest_heads,
        by_id_claims_honour_the_delivery_boundary,
        session_commands_are_claimed_first_and_alone,
        claimed_batch_is_not_claimed_twice,
        claims_of_an_expired_generation_are_reclaimable,
        a_batch_failing_max_attempts_times_is_parked_failed,
        cancel_rules,
        sessions_are_isolated,
        events_round_trip_in_order,
        parent_session_is_recorded_durably,
        tombstoned_nodes_leave_reads_until_vacuum,
        deleting_a_session_takes_its_queued_work_and_nothing_else,
    )
}


async def run_conformance(factory: StoreFactory, folder: str | os.PathLike[str] | None = None,
                          ) -> list[str]:
    """Run every check, each on a fresh subfolder; returns the names of the checks run."""
    base = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="lash-conf-"))
    for name, check in CHECKS.items():
        sub = base / name
        sub.mkdir(parents=True, exist_ok=True)
        try:
            await check(factory(sub))
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e
    return list(CHECKS)


def store_conformance_tests(factory: StoreFactory, prefix: str = "") -> dict[str, Any]:
    """One pytest test function per check (each takes pytest's ``tmp_path`` fixture)."""
    tests: dict[str, Any] = {}
    for name, check in CHECKS.items():
        def test(tmp_path: Path, _check: Check = check) -> None:
            asyncio.run(_check(factory(tmp_path)))

        test_name = f"test_{prefix}_{name}" if prefix else f"test_{name}"
        test.__name__ = test.__qualname__ = test_name
        tests[test_name] = test
    return tests
