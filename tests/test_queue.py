"""Enqueue and the queue through the session API: ordering, grouping, idempotency, cancel,
mid-turn injection, session commands, await, the in-kernel drainer."""

from __future__ import annotations

import asyncio

import pytest

from lash_nb import DeliveryPolicy, LashCore, SlotPolicy, TurnInput
from lash_nb._errors import ConfigurationError, InvalidTurnInput
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, TextDelta
from lash_nb.stores import MemoryStore

E, J = SlotPolicy.EXCLUSIVE, SlotPolicy.JOIN
EARLY, AFTER = DeliveryPolicy.EARLIEST_SAFE_BOUNDARY, DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT


def run(coro):
    return asyncio.run(coro)


class Recorder:
    """A model that records the user texts it was shown in each call."""

    def __init__(self):
        self.prompts: list[list[str]] = []

    def __call__(self, request):
        users = [m.text() for m in request.messages if m.role.value == "user" and m.text()]
        self.prompts.append(users)
        return "ok"


@pytest.fixture(params=["memory", "duckdb"])
def store_factory(request, tmp_path):
    if request.param == "memory":
        return MemoryStore
    pytest.importorskip("lash_nb._store.duckdb")
    from lash_nb.stores import DuckDBStore

    return lambda: DuckDBStore(str(tmp_path / "q.duckdb"))


async def open_session(store, model=None, sid="s"):
    provider = FunctionProvider(model or Recorder())
    core = LashCore.builder().provider(provider).model("m").store(store).build()
    return await core.session(sid).open(), provider


def test_enqueue_returns_a_batch_with_defaults_and_a_host_source_key(store_factory):
    async def body():
        s, _ = await open_session(store_factory())
        batch = await s.enqueue(TurnInput.text("later")).id("k1").send()
        assert batch.session_id == "s" and batch.source_key == "host:k1"
        assert batch.delivery_policy is AFTER and batch.slot_policy is E
        assert batch.merge_key is None and batch.available_at_ms == 0
        assert batch.items[0].turn_input.joined_text() == "later"
        assert batch.delivery_policy.value == "after_current_turn_commit"
    run(body())


def test_the_same_id_returns_the_original_batch_until_it_completes(store_factory):
    async def body():
        s, _ = await open_session(store_factory())
        first = await s.enqueue("one").id("k").send()
        again = await s.enqueue("different text").id("k").send()
        assert again.batch_id == first.batch_id and again.text == "one"
        assert len(await s.queued_work()) == 1
        await s.queued_turn().run()
        reused = await s.enqueue("two").id("k").send()
        assert reused.batch_id != first.batch_id
    run(body())


def test_a_drain_runs_exactly_one_turn_with_the_queued_text_then_returns_none(store_factory):
    async def body():
        rec = Recorder()
        s, provider = await open_session(store_factory(), rec)
        await s.enqueue("queued hello").send()
        out = await s.queued_turn().run()
        assert provider.calls == 1 and rec.prompts == [["queued hello"]]
        assert str(out.result.outcome) == "finished: assistant_message"
        assert await s.queued_turn().run() is None
        assert await s.queued_work() == []
    run(body())


@pytest.mark.parametrize("plan, groups, checkpoint_takes", [
    # (slot, delivery, merge key) per batch -> batches in each idle claim group, and whether a
    # running turn's checkpoint may take the head of the queue
    ([(E, AFTER, None), (E, AFTER, None)], [["b0"], ["b1"]], False),
    ([(J, AFTER, None), (J, AFTER, None), (J, AFTER, None)], [["b0", "b1", "b2"]], False),
    ([(J, AFTER, None), (E, AFTER, None), (J, AFTER, None)], [["b0"], ["b1"], ["b2"]], False),
    ([(E, AFTER, None), (J, AFTER, None), (J, AFTER, None)], [["b0"], ["b1", "b2"]], False),
    ([(J, AFTER, "a"), (J, AFTER, "a"), (J, AFTER, "b")], [["b0", "b1"], ["b2"]], False),
    ([(J, AFTER, None), (J, EARLY, None), (J, EARLY, None)], [["b0"], ["b1", "b2"]], False),
    ([(J, EARLY, "x"), (J, EARLY, "x"), (J, AFTER, "x")], [["b0", "b1"], ["b2"]], True),
    ([(E, EARLY, None), (E, EARLY, None)], [["b0"], ["b1"]], True),
])
def test_claim_groups_follow_the_slot_delivery_and_merge_key_table(
        store_factory, plan, groups, checkpoint_takes):
    from lash_nb._core.queue import ClaimBoundary
    from lash_nb.stores import RuntimeCommit

    async def body():
        store = store_factory()
        s, _ = await open_session(store)
        for i, (slot, delivery, key) in enumerate(plan):
            await s.enqueue(f"b{i}").slot_policy(slot).delivery_policy(delivery).merge_key(key).send()
        lease = await s.writer.acquire_lease()
        probe = await store.claim_queued_work(lease, boundary=ClaimBoundary.ACTIVE_TURN_CHECKPOINT)
        assert (probe is not None) == checkpoint_takes
        if probe is not None:
            await store.abandon_claim(probe)
        got = []
        while (claim := await store.claim_queued_work(lease, boundary=ClaimBoundary.IDLE)) is not None:
            got.append([b.text for b in claim.batches])
            await store.commit(RuntimeCommit(session_id="s", lease=lease, completed_claims=(claim,)))
        assert got == groups
    run(body())


def test_earliest_safe_boundary_batches_queued_behind_a_drain_join_that_turn():
    async def body():
        rec = Recorder()
        s, _ = await open_session(MemoryStore(), rec)
        await s.enqueue("b0").slot_policy(J).send()
        await s.enqueue("b1").slot_policy(J).delivery_policy(EARLY).send()
        out = await s.queued_turn().run()
        assert rec.prompts == [["b0"], ["b0", "b1"]]  # b1 taken at the turn's checkpoint
        assert len(out.result.queued_batch_ids) == 2
        assert await s.queued_turn().run() is None
    run(body())


def test_a_join_group_stops_at_64_batches():
    async def body():
        s, _ = await open_session(MemoryStore())
        for i in range(70):
            await s.enqueue(f"m{i}").slot_policy("join").send()
        first = await s.queued_turn().run()
        assert len(first.result.queued_batch_ids) == 64
        second = await s.queued_turn().run()
        assert len(second.result.queued_batch_ids) == 6
    run(body())


def test_cancel_removes_a_pending_batch_and_unknown_ids_give_none(store_factory):
    async def body():
        rec = Recorder()
        s, _provider = await open_session(store_factory(), rec)
        a = await s.enqueue("keep").send()
        b = await s.enqueue("drop").send()
        cancelled = await s.cancel_queued_work_batch(b.batch_id)
        assert cancelled.batch_id == b.batch_id
        assert await s.cancel_queued_work_batch(b.batch_id) is None
        assert await s.cancel_queued_work_batch("qwb:unknown") is None
        assert [x.batch_id for x in await s.queued_work()] == [a.batch_id]
        while await s.queued_turn().run() is not None:
            pass
        assert rec.prompts == [["keep"]]  # the cancelled batch never became a turn
    run(body())


def test_cancel_racing_a_claim_has_exactly_one_winner():
    async def body():
        for _ in range(30):
            rec = Recorder()
            s, _ = await open_session(MemoryStore(), rec)
            batch = await s.enqueue("race").send()
            drained, cancelled = await asyncio.gather(
                s.queued_turn().run(), s.cancel_queued_work_batch(batch.batch_id))
            assert (drained is None) != (cancelled is None)
            assert len(rec.prompts) == (1 if drained is not None else 0)
    run(body())


def test_earliest_safe_boundary_input_is_shown_to_the_running_turn_at_its_next_checkpoint():
    gate, started = asyncio.Event(), asyncio.Event()
    seen: list[list[str]] = []

    def model(request):
        users = [m.text() for m in request.messages if m.role.value == "user"]
        seen.append(users)

        async def gen():
            if len(seen) == 1:
                yield TextDelta("thinking")
                started.set()
                await gate.wait()
                yield Completed(LlmResponse(parts=(LlmPart.text_part("first answer"),)))
            else:
                yield Completed(LlmResponse(parts=(LlmPart.text_part("saw it"),)))
        return gen()

    async def body():
        s, _ = await open_session(MemoryStore(), model)
        task = asyncio.ensure_future(s.turn("start").run())
        await started.wait()  # the turn is inside its first model call
        steer = await s.enqueue("also consider this").id("steer-1").delivery_policy("earliest_safe_boundary").send()
        later = await s.enqueue("after commit").id("later-1").send()
        gate.set()
        out = await task
        accepted = [a.event for a in out.activities if a.type == "queued_input_accepted"]
        assert accepted[0].checkpoint == "before_completion"
        assert accepted[0].inputs == [{"id": "steer-1", "message": "also consider this"}]
        assert seen[1] == ["start", "also consider this"]  # the model saw it in the same turn
        assert out.result.assistant_message() == "saw it"
        assert steer.batch_id in out.result.queued_batch_ids
        assert [b.batch_id for b in await s.queued_work()] == [later.batch_id]
    run(body())


def test_session_commands_drain_before_turn_work_and_never_become_prompt_text():
    async def body():
        rec = Recorder()
        s, _ = await open_session(MemoryStore(), rec)
        command = await s.tools().refresh_catalog("test", "k1")
        same = await s.tools().refresh_catalog("test", "k1")
        assert command.source_key == "command:refresh_tool_catalog:k1"
        assert same.batch_id == command.batch_id
        await s.enqueue("user work").send()
        out = await s.queued_turn().run()  # applies the leading command, then runs the turn
        assert rec.prompts == [["user work"]]
        assert out is not None and await s.queued_work() == []
    run(body())


def test_a_command_queued_behind_turn_work_waits_its_turn_and_a_command_only_drain_returns_none():
    async def body():
        rec = Recorder()
        s, _ = await open_session(MemoryStore(), rec)
        await s.enqueue("first").send()
        await s.tools().refresh_catalog("test", "k2")
        assert (await s.queued_turn().run()) is not None
        assert [b.source_key for b in await s.queued_work()] == ["command:refresh_tool_catalog:k2"]
        assert await s.queued_turn().run() is None
        assert await s.queued_work() == []
        assert rec.prompts == [["first"]]
    run(body())


def test_await_queued_work_batch_waits_for_a_drain_and_unknown_ids_resolve_at_once(store_factory):
    async def body():
        s, _ = await open_session(store_factory())
        batch = await s.enqueue("wait for me").send()
        await s.await_queued_work_batch("qwb:never-seen", timeout=1)
        waiter = asyncio.ensure_future(s.await_queued_work_batch(batch.batch_id))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await s.queued_turn().run()
        await asyncio.wait_for(waiter, 2)
        with pytest.raises(TimeoutError):
            other = await s.enqueue("stays").send()
            await s.await_queued_work_batch(other.batch_id, timeout=0.1)
    run(body())


def test_queue_changes_appear_in_observations():
    async def body():
        s, _ = await open_session(MemoryStore())
        cursor = s.observe().current_observation().cursor
        a = await s.enqueue("x").send()
        b = await s.enqueue("y").send()
        await s.cancel_queued_work_batch(b.batch_id)
        await s.queued_turn().run()
        changes = [(e.queue_kind, e.batch_ids) for e in s.observe().resume_from_cursor(cursor)
                   if e.kind == "queue_changed"]
        assert changes == [("enqueued", (a.batch_id,)), ("enqueued", (b.batch_id,)),
                           ("cancelled", (b.batch_id,)), ("claimed", (a.batch_id,)),
                           ("completed", (a.batch_id,))]
    run(body())


def test_the_in_kernel_drainer_runs_queued_work_after_enqueue_and_can_be_paused():
    async def body():
        rec = Recorder()
        s, _ = await open_session(MemoryStore(), rec)
        s.drainer.enable()
        batch = await s.enqueue("auto").send()
        await asyncio.wait_for(s.await_queued_work_batch(batch.batch_id), 2)
        while s.drainer.running:
            await asyncio.sleep(0.01)
        assert rec.prompts == [["auto"]]
        s.drainer.pause()
        await s.enqueue("held").send()
        await asyncio.sleep(0.05)
        assert len(await s.queued_work()) == 1
        s.drainer.resume()
        while s.drainer.running or await s.queued_work():
            await asyncio.sleep(0.01)
        assert rec.prompts[-1][-1] == "held"
    run(body())


def test_a_claim_held_by_a_dead_runtime_is_run_once_by_the_next_one(monkeypatch):
    """The store's clock is moved on past the lease instead of sleeping through a short one:
    at load 40 a 150 ms lease ran out between the claim and the busy check."""
    import lash_nb._store.memory as memory

    async def body():
        store = MemoryStore()
        rec = Recorder()
        core = LashCore.builder().provider(FunctionProvider(rec)).model("m").store(store) \
            .lease_ttl_ms(60_000).build()
        dead = await core.session("s").open()
        batch = await dead.enqueue("survive me").send()
        lease = await dead.writer.acquire_lease()
        claim = await store.claim_queued_work(lease)
        assert claim.batch_ids == (batch.batch_id,)
        live = await core.session("s").open()
        assert await live.queued_turn().run() is None  # lease still held: busy, no-op
        later = memory.now_ms() + 120_000  # the dead runtime never renews: its lease expires
        monkeypatch.setattr(memory, "now_ms", lambda: later)
        out = await live.queued_turn().run()
        assert out.result.queued_batch_ids == (batch.batch_id,)
        assert rec.prompts == [["survive me"]]
        with pytest.raises(Exception, match=r"no longer held|expired|taken over"):
            from lash_nb.stores import RuntimeCommit

            await store.commit(RuntimeCommit(session_id="s", lease=lease, completed_claims=(claim,)))
    run(body())


def test_bad_queue_input_gets_clear_errors_and_leaves_the_queue_alone():
    async def body():
        s, _ = await open_session(MemoryStore())
        await s.enqueue("fine").send()
        with pytest.raises(ValueError, match="unknown delivery policy 'soon'; use one of"):
            s.enqueue("x").delivery_policy("soon")
        with pytest.raises(ValueError, match="unknown slot policy"):
            s.enqueue("x").slot_policy("shared")
        with pytest.raises(InvalidTurnInput, match="cannot enqueue an empty input"):
            await s.enqueue("   ").send()
        with pytest.raises(ConfigurationError, match="enqueue id must be a non-empty str"):
            s.enqueue("x").id(42)
        with pytest.raises(TypeError, match="batch_id must be a str"):
            await s.cancel_queued_work_batch(7)
        assert [b.text for b in await s.queued_work()] == ["fine"]
    run(body())
