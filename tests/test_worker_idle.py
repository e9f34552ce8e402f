"""``worker --exit-when-idle S`` leaves no ready work behind because a notebook was busy.

The queue notebook and scripts start a worker with ``--exit-when-idle`` next to a notebook. A
notebook turn that runs longer than S seconds keeps the session busy; the worker could not take
the pending batch yet, but it was not idle: it must wait for the session and run the batch,
not exit and leave the batch pending.
"""

from __future__ import annotations

import asyncio
import time

from lash_nb import LashCore
from lash_nb.providers import Completed, FunctionProvider, LlmResponse, TextDelta
from lash_nb.stores import DuckDBStore, MemoryStore


def test_a_worker_waits_for_a_busy_session_with_ready_work_instead_of_exiting_idle():
    from lash_nb._runtime.worker import Worker

    async def body():
        store = MemoryStore()
        release = asyncio.Event()

        async def notebook_model(request):
            yield TextDelta("thinking ")
            await release.wait()
            yield Completed(LlmResponse())

        notebook = LashCore.builder().provider(FunctionProvider(notebook_model)).model("m").store(
            store).build()
        worker_core = LashCore.builder().provider(FunctionProvider(lambda r: "worked")).model(
            "m").store(store).build()
        s = await notebook.session("shared").open()
        long_turn = asyncio.ensure_future(s.turn("a long notebook turn").run())
        cursor = s.observe().current_observation().cursor
        async for ev in s.observe().subscribe_from_cursor(cursor):
            if getattr(ev, "kind", "") == "turn_activity" and ev.activity.type == "assistant_prose_delta":
                break
        batch = await s.enqueue("queued while the notebook works").send()

        polls = 0
        original = store.sessions_with_ready_work

        async def counted():
            nonlocal polls
            polls += 1
            return await original()

        store.sessions_with_ready_work = counted
        worker = asyncio.ensure_future(
            Worker(worker_core, poll_s=0.01, log=lambda m: None).run(max_idle_s=0.05))
        # the notebook's turn outlasts many idle periods of the worker (or the worker gave up)
        while polls < 60 and not worker.done():
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.wait_for(long_turn, 30)
        stats = await asyncio.wait_for(worker, 30)
        assert stats.turns == 1, "the worker exited 'idle' with the batch still pending"
        assert [b.batch_id for b in await s.queued_work()] == []
        assert await s.cancel_queued_work_batch(batch.batch_id) is None  # it ran: nothing to cancel
        await notebook.close()

    asyncio.run(body())


# An idle pass of a worker waits poll_s at least once, so a worker that exits after
# ``max_idle_s`` of idleness makes at most max_idle_s / poll_s passes (plus the one that ends
# the turn and one for rounding) after its last turn, however loaded the machine: a slower
# machine only makes fewer. The counts below are that bound, not a measured time.
POLL_S, MAX_IDLE_S = 0.01, 0.05
PASS_BOUND = round(MAX_IDLE_S / POLL_S) + 3
GIVE_UP = 200  # the unfixed worker never stops on its own: the test stops it, then fails


def _count_after_turns(worker, store, name, counts, extra_ok=lambda: True):
    """Wrap ``store.<name>`` to count the calls made once the worker has run a turn (or any
    time, for a worker that should run none); stop the worker once it is clearly not exiting."""
    original = getattr(store, name)

    async def counted(*args, **kwargs):
        if worker.stats.turns >= counts["after_turns"]:
            counts[name] += 1
            if counts[name] > GIVE_UP:
                counts["stopped_by_test"] = True
                worker.stop()
        return await original(*args, **kwargs)

    setattr(store, name, counted)


def test_a_session_worker_writes_no_lease_after_its_last_turn_and_exits_when_idle(tmp_path):
    """The reported bug: ``run_worker(session_id=..., max_idle_s=...)`` on a DuckDB file ran its
    batch, then took and released the session's lease every poll and took 36 s to 13 min to
    count itself idle (a probe in flight counted as busy). An idle worker reads; it does not
    write, and it exits within its idle passes."""
    from lash_nb._runtime.worker import Worker

    path = str(tmp_path / "w.duckdb")

    async def body():
        core = LashCore.builder().provider(FunctionProvider(lambda r: "done")).model("m").store(
            path).build()
        async with await core.session("s").open() as s:  # the notebook queued it, then closed
            await s.enqueue("overnight job").send()
        worker = Worker(core, session_id="s", poll_s=POLL_S, log=lambda m: None)
        counts = {"after_turns": 1, "try_acquire_lease": 0, "list_queued_work": 0,
                  "stopped_by_test": False}
        _count_after_turns(worker, core.store, "try_acquire_lease", counts)
        _count_after_turns(worker, core.store, "list_queued_work", counts)
        stats = await asyncio.wait_for(worker.run(max_idle_s=MAX_IDLE_S), 120)
        assert stats.turns == 1
        assert not counts["stopped_by_test"], (
            f"the worker did not exit when idle: {counts['try_acquire_lease']} lease "
            f"acquisitions after its turn")
        assert counts["try_acquire_lease"] == 0
        assert 1 <= counts["list_queued_work"] <= PASS_BOUND

        check = DuckDBStore(path)
        try:
            assert [t.stop_reason for t in await check.load_turns("s")] == ["assistant_message"]
            assert await check.list_queued_work("s", include_claimed=True) == []
        finally:
            await check.close()

    asyncio.run(body())


def test_a_worker_exits_idle_past_a_batch_due_later_and_leaves_it_queued():
    """A batch enqueued with ``available_at_ms`` an hour ahead is pending but not claimable:
    the worker has nothing to run now. It must not count it as work it waits for (the unfixed
    worker did, and never exited); the batch stays queued for the worker that runs then."""
    from lash_nb._runtime.worker import Worker

    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(lambda r: "done")).model("m").store(
            store).build()
        s = await core.session("s").open()
        later = await s.enqueue("the morning report").available_at_ms(
            int(time.time() * 1000) + 3_600_000).send()
        worker = Worker(core, session_id="s", poll_s=POLL_S, log=lambda m: None)
        counts = {"after_turns": 0, "try_acquire_lease": 0, "list_queued_work": 0,
                  "stopped_by_test": False}
        _count_after_turns(worker, store, "try_acquire_lease", counts)
        _count_after_turns(worker, store, "list_queued_work", counts)
        stats = await asyncio.wait_for(worker.run(max_idle_s=MAX_IDLE_S), 120)
        assert not counts["stopped_by_test"], "the worker waited for a batch due in an hour"
        assert stats.turns == 0 and counts["try_acquire_lease"] == 0
        assert 1 <= counts["list_queued_work"] <= PASS_BOUND
        [kept] = await s.queued_work()
        assert (kept.batch_id, kept.status) == (later.batch_id, "pending")

    asyncio.run(body())
