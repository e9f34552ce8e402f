"""Store conformance checks for queued work: source keys, order, claim groups, delivery
boundaries, commands, claims and their generations, parking, cancel; registered in
``conformance.CHECKS``."""

from __future__ import annotations

from .._core.queue import ClaimBoundary
from .._errors import (
    ClaimSuperseded,
)
from .._store.base import (
    RuntimeCommit,
)
from ._conformance_kit import (
    AFTER,
    EARLIEST,
    EXCL,
    JOIN,
    OWNER_A,
    OWNER_B,
    StoreOpener,
    _claim_texts,
    _eq,
    _lease,
    _opened,
    _raises,
    _texts,
    draft,
    turn_record,
)


# ---------------------------------------------------------------------------- queue
async def source_keys_are_idempotent_until_the_batch_leaves(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def queue_keeps_enqueue_order(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
        batches = [await store.enqueue(draft("s1", t)) for t in ("one", "two", "three")]
        seqs = [b.enqueue_seq for b in batches]
        _eq(seqs == sorted(seqs) and len(set(seqs)) == 3, True, "increasing enqueue_seq")
        _eq(await _texts(store, "s1"), ["one", "two", "three"], "listed in enqueue order")
        lease = await _lease(store, "s1")
        _eq(await _claim_texts(store, lease), ["one"], "exclusive head claimed first")


async def claim_groups_follow_the_grouping_table(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def active_turn_checkpoint_takes_only_earliest_heads(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
        lease = await _lease(store, "s1")
        checkpoint = ClaimBoundary.ACTIVE_TURN_CHECKPOINT
        after = await store.enqueue(draft("s1", "after", delivery=AFTER))
        await store.enqueue(draft("s1", "steer", delivery=EARLIEST))
        _eq(await _claim_texts(store, lease, boundary=checkpoint), None,
            "an after_current_turn_commit head blocks the checkpoint")
        await store.cancel_queued_work_batch("s1", after.batch_id)
        _eq(await _claim_texts(store, lease, boundary=checkpoint), ["steer"],
            "an earliest_safe_boundary head is taken")


async def by_id_claims_honour_the_delivery_boundary(opener: StoreOpener) -> None:
    """lash ``queued_work_exact_claim_uses_selected_batch_ids``: a claim of selected batch
    ids takes exactly those, and at an active turn's checkpoint only if they may be
    delivered there."""
    async with _opened(opener) as store:
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


async def session_commands_are_claimed_first_and_alone(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def claimed_batch_is_not_claimed_twice(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def claims_of_an_expired_generation_are_reclaimable(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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


async def a_batch_failing_max_attempts_times_is_parked_failed(opener: StoreOpener) -> None:
    """Each claim counts an attempt; at ``max_attempts`` claims without completing, the batch
    is parked ``failed`` with its last error, listed, and never claimed again, whether its
    claims were abandoned with an error or their runtimes died silently."""
    async with _opened(opener) as store:
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


async def a_claim_handed_back_leaves_the_batch_as_it_was(opener: StoreOpener) -> None:
    """``abandon_claim(claim, count_attempt=False)`` (a worker asked to stop hands its turn's
    batch back, docs/adr/0158): the batch is pending again with the attempts and error it had
    before that claim, however often it happens, and it is never parked for it. Handed back
    right after the claim, and after a progress commit under the claim's lease."""
    from .._store.base import TurnStart

    async with _opened(opener) as store:
        b = await store.enqueue(draft("s1", "deploy-proof"))
        for i, owner in enumerate((OWNER_A, OWNER_B, OWNER_A, OWNER_B)):
            lease = await _lease(store, "s1", owner)
            claim = await store.claim_queued_work(lease, max_attempts=2)
            _eq(claim is not None and claim.batch_ids, (b.batch_id,), f"claim {i + 1}")
            assert claim is not None
            if i % 2:  # the turn's user message was made durable under the claim
                await store.commit(RuntimeCommit("s1", lease, turn_started=TurnStart(
                    f"t{i}", 1_700_000_000_000)))
            await store.abandon_claim(claim, max_attempts=2, count_attempt=False)
            [head] = await store.list_queued_work("s1", include_claimed=True)
            _eq((head.batch_id, head.status, head.attempts, head.error),
                (b.batch_id, "pending", 0, None), f"handed back {i + 1} time(s)")
            _eq(await store.sessions_with_ready_work(), ["s1"], "ready again")
            await store.release_lease(lease)
        lease = await _lease(store, "s1", OWNER_A)
        claim = await store.claim_queued_work(lease, max_attempts=2)
        assert claim is not None
        await store.abandon_claim(claim, error="boom", max_attempts=2)
        claim = await store.claim_queued_work(lease, max_attempts=2)
        assert claim is not None
        await store.abandon_claim(claim, error="ignored", max_attempts=2, count_attempt=False)
        [head] = await store.list_queued_work("s1")
        _eq((head.status, head.attempts, head.error), ("pending", 1, "boom"),
            "a hand-back keeps a failed attempt's count and error")
        claim = await store.claim_queued_work(lease, max_attempts=2)
        assert claim is not None
        await store.commit(RuntimeCommit("s1", lease, turn=turn_record("t9"),
                                         completed_claims=(claim,), release_lease=True))
        _eq(await store.list_queued_work("s1", include_claimed=True), [], "then it completes")


async def cancel_rules(opener: StoreOpener) -> None:
    async with _opened(opener) as store:
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
