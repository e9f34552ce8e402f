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
import os
import tempfile
from pathlib import Path
from typing import Any

from .._core.events import AssistantProseDelta, ToolCallStarted, TurnActivity
from .._core.records import Role
from .._core.usage import LlmAttempt, LlmCallRecord, TokenLedgerEntry, TokenUsage
from .._errors import (
    HeadRevisionConflict,
    SessionDeleted,
    SessionExecutionLeaseExpired,
    SessionExecutionLeaseLost,
    TurnCommitConflict,
)
from .._store.base import (
    LeaseBusy,
    ReadScope,
    RuntimeCommit,
    TurnStart,
    UsageDelta,
)
from ._conformance_kit import (
    EARLIEST,
    OWNER_A,
    OWNER_B,
    Check,
    StoreFactory,
    StoreOpener,
    _claim_texts,
    _eq,
    _lease,
    _opened,
    _raises,
    _texts,
    _two_sessions,
    draft,
    node,
    turn_record,
)
from ._conformance_queue import (
    a_batch_failing_max_attempts_times_is_parked_failed,
    a_claim_handed_back_leaves_the_batch_as_it_was,
    active_turn_checkpoint_takes_only_earliest_heads,
    by_id_claims_honour_the_delivery_boundary,
    cancel_rules,
    claim_groups_follow_the_grouping_table,
    claimed_batch_is_not_claimed_twice,
    claims_of_an_expired_generation_are_reclaimable,
    queue_keeps_enqueue_order,
    session_commands_are_claimed_first_and_alone,
    source_keys_are_idempotent_until_the_batch_leaves,
)
from ._conformance_retention import (
    blobs_are_stored_once_and_pruned_when_unreferenced,
    deleting_a_session_takes_its_queued_work_and_nothing_else,
    parent_session_is_recorded_durably,
    tombstoned_nodes_leave_reads_until_vacuum,
)

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


# ---------------------------------------------------------------------------- graph + ledger
async def reopened_store_shows_same_graph_and_ledger(opener: StoreOpener) -> None:
    a, b, c = node("a", None, "hi"), node("b", "a", "yes", role=Role.ASSISTANT), node("c", "b", "more")
    d = node("d", "a", "branch", turn_id="t2")
    u = [UsageDelta("t1", "turn", "m1", TokenUsage(10, 5)),
         UsageDelta("t1", "turn", "m2", TokenUsage(3, 1)),
         UsageDelta("t1", "turn", "m1", TokenUsage(1, 1, 0, 0, 1)),
         UsageDelta("t1", "tool", "m1", TokenUsage(0, 0, 0, 0, 7))]  # total 0: not in ledger
    async with _opened(opener) as store:
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, provider_id="offline", model="m1",
                                         append_nodes=(a, b, c), leaf_node_id="c",
                                         usage_deltas=tuple(u), turn_index=1))
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(d,), leaf_node_id="d",
                                         turn_index=2))
    async with _opened(opener) as store:
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


async def replace_graph_rewrites_all_nodes(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def a_committed_config_patch_survives_a_reopen(opener: StoreOpener) -> None:
    """``session.configure(...)`` commits the session policy (model, prompt layer, the fields
    the patch set); a reopened store returns it unchanged, a later commit that carries the
    same policy keeps it, and a reset (an empty replacing graph) leaves no node behind."""
    policy = {"provider_id": "p2", "model": "large", "max_turns": 50, "system_prompt": None,
              "prompt": {"slots": {"guidance": {"reset": True, "contributions": [
                  {"slot": "guidance", "content": "Réponds en français.", "priority": 0,
                   "title": "Langue"}]}}},
              "configured": ["model", "prompt"]}
    async with _opened(opener) as store:
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, provider_id="p1", model="small",
                                         append_nodes=(node("a", None, "hi"),), leaf_node_id="a",
                                         policy={"provider_id": "p1", "model": "small"}))
        await store.commit(RuntimeCommit("s1", lease, provider_id="p2", model="large",
                                         policy=policy, leaf_node_id="a"))
    async with _opened(opener) as store:
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


async def every_turn_has_exactly_one_terminal_commit(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def usage_totals_equal_sum_of_per_call_usage(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def turn_commit_is_idempotent(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def head_revision_cas(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
        lease = await _lease(store, "s1")
        r = await store.commit(RuntimeCommit("s1", lease, expected_head_revision=0))
        _eq(r.head_revision, 1, "first commit on an empty head")
        await _raises(HeadRevisionConflict, store.commit(
            RuntimeCommit("s1", lease, expected_head_revision=0)), "stale expected revision")
        r = await store.commit(RuntimeCommit("s1", lease, expected_head_revision=1))
        _eq(r.head_revision, 2, "commit on the current revision")


async def session_head_commits_need_the_lease(opener: StoreOpener) -> None:
    """lash ``session_execution_lease_contract``: a session-head commit without the session
    execution lease raises ``SessionExecutionLeaseExpired`` and writes nothing; the
    idempotent replay of a committed turn returns without a lease."""
    async with _opened(opener) as store:
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


# ---------------------------------------------------------------------------- leases
async def lease_rules(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def commit_with_lost_lease_writes_nothing(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def an_expired_lease_nobody_took_over_is_still_held(opener: StoreOpener) -> None:
    """A holder whose loop was blocked past the TTL: while no other owner acquired the
    session, its lease renews, claims and commits (same fencing); the batch it claimed is
    pending for others only while the lease is expired."""
    async with _opened(opener) as store:
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


async def sessions_are_isolated(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def _refused_as(store: Any, commit: RuntimeCommit, elsewhere: str, what: str) -> None:
    try:
        await store.commit(commit)
    except SessionDeleted as e:
        _eq(e.elsewhere, elsewhere, f"{what}: SessionDeleted.elsewhere")
        return
    except Exception as e:  # the runtime retries a HeadRevisionConflict: the old failure
        raise AssertionError(f"{what}: expected SessionDeleted, got {e!r}") from e
    raise AssertionError(f"{what}: expected SessionDeleted")


async def a_commit_on_a_session_deleted_or_recreated_elsewhere_is_refused(
        opener: StoreOpener) -> None:
    """ADR 0148: a handle read ``s1`` at head revision 2; another handle deletes it. The
    handle's next turn (the lease taken again, its commit expecting revision 2 and hanging
    its node from its leaf ``a``) raises ``SessionDeleted`` and writes nothing, not a
    ``HeadRevisionConflict`` (on which the runtime reloads the empty store and recreates the
    session with only its new turns). Deleted and created anew by another owner with as many
    commits: the revision matches, but the leaf is not the new graph's; refused too."""
    def next_turn(lease: Any) -> RuntimeCommit:
        return RuntimeCommit("s1", lease, expected_head_revision=2,
                             append_nodes=(node("b", "a", "mine", "t2"),), leaf_node_id="b",
                             turn_started=TurnStart("t2", 2000))

    async with _opened(opener) as store:
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("a", None, "one"),),
                                         leaf_node_id="a", turn_started=TurnStart("t1", 1000)))
        await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t1"), leaf_node_id="a",
                                         release_lease=True))
        await store.delete_session("s1")
        await _refused_as(store, next_turn(await _lease(store, "s1")), "deleted",
                          "the next turn on a deleted session")
        _eq(await store.load_session("s1"), None, "the refused commit wrote no session")
        _eq((await store.load_turns("s1"), await store.load_events("s1")), ([], []),
            "the refused commit wrote no turn or event")
        again = await _lease(store, "s1")
        await _raises(SessionDeleted, store.commit(next_turn(again)),
                      "the turn after the refused one")
        _eq(await store.load_session("s1"), None, "still no session")
        await store.release_lease(again)  # the old handle gives up; another owner starts s1
        theirs = await _lease(store, "s1", OWNER_B)
        await store.commit(RuntimeCommit("s1", theirs, expected_head_revision=0,
                                         append_nodes=(node("x", None, "theirs", "t1"),),
                                         leaf_node_id="x", turn_started=TurnStart("t1", 3000)))
        await store.commit(RuntimeCommit("s1", theirs, turn=turn_record("t1", "hx"),
                                         leaf_node_id="x", release_lease=True))
        await _refused_as(store, next_turn(await _lease(store, "s1")), "recreated",
                          "the next turn on a session deleted and created anew")
        got = await store.load_session("s1")
        assert got is not None
        _eq(([n.node_id for n in got.nodes], got.meta.head_revision, got.meta.leaf_node_id),
            (["x"], 2, "x"), "the new session's graph and head, untouched")
        _eq([(t.turn_id, t.commit_hash) for t in await store.load_turns("s1")], [("t1", "hx")],
            "the new session's turns only")


async def events_round_trip_in_order(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
        lease = await _lease(store, "s1")
        e1 = TurnActivity("a1", "p1", AssistantProseDelta("Hel"), "t1")
        e2 = TurnActivity("a2", "p1", AssistantProseDelta("lo"), "t1")
        e3 = TurnActivity("a3", "tool:c1", ToolCallStarted("c1", "add", {"a": 1}), "t2")
        await store.commit(RuntimeCommit("s1", lease, events=(e1, e2)))
        await store.commit(RuntimeCommit("s1", lease, events=(e3,)))
        _eq(await store.load_events("s1"), [e1, e2, e3], "all events in order")
        _eq(await store.load_events("s1", "t2"), [e3], "events of one turn")


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
        a_claim_handed_back_leaves_the_batch_as_it_was,
        cancel_rules,
        sessions_are_isolated,
        a_commit_on_a_session_deleted_or_recreated_elsewhere_is_refused,
        events_round_trip_in_order,
        parent_session_is_recorded_durably,
        tombstoned_nodes_leave_reads_until_vacuum,
        deleting_a_session_takes_its_queued_work_and_nothing_else,
        blobs_are_stored_once_and_pruned_when_unreferenced,
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
