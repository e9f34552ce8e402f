"""Who stopped a queued turn decides what becomes of its batch (docs/adr/0158). A worker asked
to stop (cancel origin ``worker_shutdown``) hands the batch back to the queue, its attempt
uncounted, and the next drain answers it once. A person stopping that turn (``%lash stop``,
the Stop button, ``cancel_running_turns()``, a kernel interrupt, ``request_turn_cancel``)
ends it for good: its batch is completed, as in lash. Every store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb._runtime.worker import Worker
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, TextDelta
from lash_nb.stores import MemoryStore
from lash_nb.testing import tool_call


def _provider(hang: dict[str, bool], started: asyncio.Event | None = None) -> FunctionProvider:
    """Hangs mid-answer while ``hang["on"]`` (``started`` set then), else answers at once."""

    async def fn(request: Any) -> Any:
        prompt = request.messages[-1].text()
        if hang["on"]:
            yield TextDelta("started ")
            if started is not None:
                started.set()
            await asyncio.sleep(3600)
        answer = f"answered: {prompt}"
        yield TextDelta(answer)
        yield Completed(LlmResponse((LlmPart.text_part(answer),)))

    return FunctionProvider(fn)


@pytest.fixture(params=["memory", "duckdb"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    return MemoryStore() if request.param == "memory" else str(tmp_path / "q.duckdb")


async def _started(session: Any) -> None:
    cursor = session.observe().current_observation().cursor
    async for ev in session.observe().subscribe_from_cursor(cursor):
        if getattr(ev, "kind", "") == "turn_activity" and ev.activity.type == "assistant_prose_delta":
            return


async def _cut(store: Any, origin: str) -> tuple[Any, Any, str, dict[str, bool]]:
    hang = {"on": True}
    core = LashCore.builder().provider(_provider(hang)).model("m").store(store).build()
    s = await core.session("s").open()
    batch = await s.enqueue("the question").send()
    task = asyncio.ensure_future(s.queued_turn().run())
    await _started(s)
    assert s.cancel_running_turns(origin) == 1
    await asyncio.wait_for(task, 30)
    return core, s, batch.batch_id, hang


def test_a_queued_turn_cut_by_a_workers_stop_goes_back_to_the_queue_and_runs_once(store):
    async def body() -> None:
        core, s, batch_id, hang = await _cut(store, "worker_shutdown")
        [cut] = await s.store.load_turns("s")
        assert (cut.outcome, cut.stop_reason) == ("stopped", "cancelled")
        assert cut.result["cancellation"]["origin"] == "worker_shutdown"
        assert cut.result["queued_batch_ids"] == []
        [back] = await s.queued_work()
        assert (back.batch_id, back.status, back.attempts, back.error) == (
            batch_id, "pending", 0, None)
        hang["on"] = False
        out = await s.queued_turn().run()
        assert out is not None and str(out.result.outcome) == "finished: assistant_message", out.result.errors
        assert out.result.queued_batch_ids == (batch_id,) and out.returned_batch_ids == ()
        assert out.result.assistant_output.safe_text == "answered: the question"
        assert await s.queued_work(include_claimed=True) == []
        # the model saw the prompt once; the cut turn stays on a side branch
        assert [(m.role.value, m.text()) for m in s.state.graph.view()] == [
            ("user", "the question"), ("assistant", "answered: the question")]
        await core.close()

    asyncio.run(body())


@pytest.mark.parametrize("origin", ["magic", "widget_stop", "api", "kernel_interrupt", "remote"])
def test_a_person_stopping_a_queued_turn_still_completes_its_batch(store, origin):
    async def body() -> None:
        core, s, batch_id, _ = await _cut(store, origin)
        [cut] = await s.store.load_turns("s")
        assert (cut.outcome, cut.stop_reason) == ("stopped", "cancelled")
        assert cut.result["cancellation"]["origin"] == origin
        assert cut.result["queued_batch_ids"] == [batch_id]
        assert await s.queued_work(include_claimed=True) == []
        await core.close()

    asyncio.run(body())


def test_a_worker_stopped_in_process_lists_what_it_returned():
    async def body() -> None:
        hang, started = {"on": True}, asyncio.Event()
        store = MemoryStore()
        core = LashCore.builder().provider(_provider(hang, started)).model("m").store(store).build()
        batch = await (await core.session("s").open()).enqueue("the question").send()
        worker = Worker(core, grace_s=0, poll_s=0.01, log=lambda line: None)
        running = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(started.wait(), 30)
        worker.stop()
        stats = await asyncio.wait_for(running, 30)
        assert stats.returned == [("s", batch.batch_id)]
        assert stats.outcomes == {"stopped: cancelled": 1}

    asyncio.run(body())


def test_input_a_cut_turn_took_at_a_checkpoint_goes_back_too_and_keeps_its_order(store):
    """An ``earliest_safe_boundary`` prompt joined the running turn at a checkpoint (after a
    tool call); a worker's stop then cut the turn: both batches are back, in order, uncounted,
    and the next drain answers both in one turn."""
    gate, started, hang = asyncio.Event(), asyncio.Event(), {"on": True}

    @tool
    async def wait_here() -> str:
        """Waits until the test lets it go."""
        await gate.wait()
        return "done waiting"

    async def fn(request: Any) -> Any:
        last = request.messages[-1]
        if last.role.value == "user" and last.text() == "the question":
            yield Completed(LlmResponse((tool_call("wait_here", "{}"),)))
            return
        if hang["on"]:
            yield TextDelta("started ")
            started.set()
            await asyncio.sleep(3600)
        answer = f"answered: {last.text()}"
        yield TextDelta(answer)
        yield Completed(LlmResponse((LlmPart.text_part(answer),)))

    async def body() -> None:
        core = (LashCore.builder().provider(FunctionProvider(fn)).model("m").tools(wait_here)
                .store(store).build())
        s = await core.session("s").open()
        first = await s.enqueue("the question").send()
        task = asyncio.ensure_future(s.queued_turn().run())
        while not s.is_running():
            await asyncio.sleep(0.01)
        joined = await s.enqueue("also this").delivery_policy("earliest_safe_boundary").send()
        gate.set()
        await asyncio.wait_for(started.wait(), 30)
        s.cancel_running_turns("worker_shutdown")
        cut = await asyncio.wait_for(task, 30)
        assert cut is not None and cut.returned_batch_ids == (first.batch_id, joined.batch_id)
        assert [(b.batch_id, b.status, b.attempts) for b in await s.queued_work()] == [
            (first.batch_id, "pending", 0), (joined.batch_id, "pending", 0)]
        hang["on"] = False
        out = await s.queued_turn().run()
        assert out is not None and str(out.result.outcome) == "finished: assistant_message"
        assert out.result.queued_batch_ids == (first.batch_id, joined.batch_id)
        assert await s.queued_work(include_claimed=True) == []
        users = [m.text() for m in s.state.graph.view()
                 if m.role.value == "user" and not m.tool_results()]
        assert users == ["the question", "also this"]
        assert out.result.assistant_output.safe_text == "answered: also this"
        await core.close()

    asyncio.run(body())
