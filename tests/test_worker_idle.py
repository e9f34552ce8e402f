"""``worker --exit-when-idle S`` leaves no ready work behind because a notebook was busy.

The queue notebook and scripts start a worker with ``--exit-when-idle`` next to a notebook. A
notebook turn that runs longer than S seconds keeps the session busy; the worker could not take
the pending batch yet, but it was not idle: it must wait for the session and run the batch,
not exit and leave the batch pending.
"""

from __future__ import annotations

import asyncio

from lash_nb import LashCore
from lash_nb.providers import Completed, FunctionProvider, LlmResponse, TextDelta
from lash_nb.stores import MemoryStore


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
