"""Cancellation: tokens, the per-handle registry, asyncio cancellation, random cancel points."""

from __future__ import annotations

import asyncio
import random
import threading

from lash_nb import CancellationToken, LashCore, tool
from lash_nb._core.records import PartKind, Role
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, TextDelta
from lash_nb.testing import scripted, tool_call


def run(coro):
    return asyncio.run(coro)


async def hung_stream(request):
    yield TextDelta("started ")
    await asyncio.sleep(3600)
    yield Completed(LlmResponse())


def hung_core():
    return LashCore.builder().provider(FunctionProvider(lambda r: hung_stream(r))).model("m").build()


async def wait_for_activity(session, type_: str):
    """Return once the session's live replay has shown an activity of this type."""
    cursor = session.observe().current_observation().cursor
    async for ev in session.observe().subscribe_from_cursor(cursor):
        if getattr(ev, "kind", "") == "turn_activity" and ev.activity.type == type_:
            return


def test_a_pre_cancelled_token_still_runs_the_pipeline_and_ends_cancelled():
    async def body():
        s = await LashCore.builder().provider(scripted("never")).model("m").build().session("s").open()
        token = CancellationToken()
        token.cancel()
        out = await s.turn("hi").cancel(token).run()
        assert str(out.result.outcome) == "stopped: cancelled"
        # lash records origin/reason None here; lash_nb never stores a cancel without both
        assert out.result.cancellation == {
            "request_id": f"internal:{out.result.turn_id}", "origin": "token",
            "reason": "the turn's CancellationToken was cancelled without an origin"}
        roles = [m.role for m in s.read_view().messages()]
        assert roles == [Role.USER]  # the user message is committed
    run(body())


def test_cancel_running_turns_stops_a_hung_provider_and_the_next_turn_works():
    async def body():
        core = hung_core()
        s = await core.session("s").open()
        task = asyncio.ensure_future(s.turn("wait").run())
        await wait_for_activity(s, "assistant_prose_delta")
        assert s.cancel_running_turns("user") == 1
        out = await asyncio.wait_for(task, 5)
        assert str(out.result.outcome) == "stopped: cancelled"
        assert out.result.cancellation["origin"] == "user"
        assert s.cancel_running_turns() == 0
        last = s.read_view().messages()[-1]
        assert last.role is Role.ASSISTANT and last.parts[0].interrupted
        assert last.parts[0].content == "started "
        s.provider = scripted("back")
        assert (await s.turn("again").run()).result.assistant_message() == "back"
    run(body())


def test_a_sweep_reaches_turns_waiting_for_the_writer_lock():
    async def body():
        s = await hung_core().session("s").open()
        first = asyncio.ensure_future(s.turn("one").run())
        await wait_for_activity(s, "assistant_prose_delta")
        second = asyncio.ensure_future(s.turn("two").run())
        await asyncio.sleep(0)
        assert s.cancel_running_turns() == 2
        outs = await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert [str(o.result.outcome) for o in outs] == ["stopped: cancelled"] * 2
        assert s.cancel_running_turns() == 0
    run(body())


def test_separately_opened_handles_do_not_cancel_each_others_turns():
    async def body():
        core = hung_core()
        a = await core.session("shared").open()
        b = await core.session("shared").open()
        task = asyncio.ensure_future(a.turn("wait").run())
        await wait_for_activity(a, "assistant_prose_delta")
        assert b.cancel_running_turns() == 0
        assert a.cancel_running_turns() == 1
        await asyncio.wait_for(task, 5)
    run(body())


def test_cancelling_the_awaiting_task_ends_the_turn_cancelled_and_committed():
    async def body():
        s = await hung_core().session("s").open()
        task = asyncio.ensure_future(s.turn("wait").turn_id("t-int").run())
        await wait_for_activity(s, "assistant_prose_delta")
        task.cancel()  # what a kernel interrupt does to an awaited cell
        out = await asyncio.wait_for(task, 5)
        assert str(out.result.outcome) == "stopped: cancelled"
        assert out.result.cancellation["origin"] == "asyncio"
        turns = {t.turn_id: t.stop_reason for t in await s.store.load_turns("s")}
        assert turns == {"t-int": "cancelled"}
    run(body())


def test_cancel_from_another_thread_reaches_the_turn():
    async def body():
        s = await hung_core().session("s").open()
        task = asyncio.ensure_future(s.turn("wait").run())
        await wait_for_activity(s, "assistant_prose_delta")
        counts = []
        t = threading.Thread(target=lambda: counts.append(s.cancel_running_turns("widget")))
        t.start()
        out = await asyncio.wait_for(task, 5)
        t.join()
        assert counts == [1]
        assert out.result.cancellation["origin"] == "widget"
    run(body())


def test_a_stop_during_a_slow_sync_tool_ends_the_turn_without_waiting_for_the_tool():
    release = threading.Event()

    @tool
    def blocking() -> str:
        """Blocks until released."""
        release.wait(10)
        return "late"

    async def body():
        provider = scripted([tool_call("blocking", "{}", "b1")], "after")
        s = await LashCore.builder().provider(provider).model("m").tools(blocking).build().session("s").open()
        task = asyncio.ensure_future(s.turn("block").run())
        await wait_for_activity(s, "tool_call_started")
        s.cancel_running_turns()
        out = await asyncio.wait_for(task, 5)  # the tool itself blocks for 10 s
        release.set()
        assert str(out.result.outcome) == "stopped: cancelled"
        results = s.read_view().messages()[-1].tool_results()
        assert [(r.tool_call_id, r.interrupted) for r in results] == [("b1", True)]
    run(body())


@tool
async def work(n: int) -> str:
    """Does some async work."""
    await asyncio.sleep(0.001 * n)
    return f"worked {n}"


def _tool_rounds_this_turn(messages) -> int:
    rounds = 0
    for m in reversed(messages):
        if m.role is Role.USER and any(p.kind is PartKind.TEXT for p in m.parts):
            break
        rounds += bool(m.tool_results())
    return rounds


def _streaming_tool_model(request):
    """Streams four words, then asks for two tool calls, twice per turn; then answers."""
    async def gen():
        words = ["alpha ", "beta ", "gamma ", "delta "]
        for w in words:
            yield TextDelta(w)
            await asyncio.sleep(0.001)
        if _tool_rounds_this_turn(request.messages) < 2:
            n = len(request.messages)
            parts = (LlmPart.text_part("".join(words)), LlmPart.tool_call(f"c{n}a", "work", '{"n": 2}'),
                     LlmPart.tool_call(f"c{n}b", "work", '{"n": 3}'))
        else:
            parts = (LlmPart.text_part("".join(words)),)
        yield Completed(LlmResponse(parts=parts))

    return gen()


def _graph_is_consistent(messages) -> bool:
    calls = {p.tool_call_id for m in messages for p in m.parts if p.kind is PartKind.TOOL_CALL}
    results = {p.tool_call_id for m in messages for p in m.parts if p.kind is PartKind.TOOL_RESULT}
    return calls == results


def test_cancel_at_100_random_points_always_commits_cancelled_and_keeps_the_graph_consistent():
    """Each run cancels at the k-th activity of a turn that streams prose and runs two tool
    batches, k drawn at random over the whole turn."""
    rng = random.Random(20261121)

    async def body():
        core = LashCore.builder().provider(FunctionProvider(_streaming_tool_model)).model("m").tools(work).build()
        s = await core.session("s").open()
        full = await s.turn("measure").run()
        points = len(full.activities) - 1  # the last one (turn_outcome) comes after the commit
        cancelled = 0
        for i in range(100):
            k = rng.randrange(points)
            stream = s.turn(f"turn {i}").turn_id(f"t{i}").stream()
            signalled = 0
            n = 0
            async for _activity in stream:
                if n == k:
                    signalled = s.cancel_running_turns()
                n += 1
            result = await stream.finish()
            if signalled:
                assert str(result.outcome) == "stopped: cancelled", (i, k)
                cancelled += 1
            else:
                assert result.is_success(), (i, k)
            assert _graph_is_consistent(s.read_view().messages()), (i, k)
        assert cancelled >= 90  # the consumer keeps pace, so nearly every point lands
        turns = await s.store.load_turns("s")
        assert len({t.turn_id for t in turns}) == 101
        assert sum(t.stop_reason == "cancelled" for t in turns) == cancelled
        out = await s.turn("final").run()
        assert out.result.is_success()
    run(body())


def test_an_interrupted_cell_stops_its_own_turn_not_the_background_drain():
    """A kernel interrupt arrives as a cancel of the cell's task awaiting ``stream.follow``:
    the cell's turn ends ``stopped: cancelled``; the queued drain running in the background
    on the same session is not touched and finishes normally."""
    async def body():
        gate = asyncio.Event()

        async def model(request):
            text = request.messages[-1].text()
            if text == "queued work":  # the drain's turn waits until released
                yield TextDelta("draining ")
                await gate.wait()
            yield Completed(LlmResponse(parts=(LlmPart.text_part(f"done: {text}"),)))

        core = LashCore.builder().provider(FunctionProvider(model)).model("m").build()
        s = await core.session("s").open()
        s.drainer.enable()
        await s.enqueue("queued work").send()
        await wait_for_activity(s, "assistant_prose_delta")  # the drain is running
        seen = []
        stream = s.turn("cell prompt").stream()
        stream.consumer_cancel_origin = ("kernel_interrupt", None)
        cell = asyncio.ensure_future(stream.follow(seen.append))
        for _ in range(20):  # the cell consumes; its turn waits for the lock behind the drain
            await asyncio.sleep(0)
        assert s.is_running() and not cell.done()
        cell.cancel()  # the kernel interrupt
        for _ in range(20):  # let the interrupt reach the cell before the drain may finish
            await asyncio.sleep(0)
        gate.set()
        result = await asyncio.wait_for(cell, 10)
        assert str(result.outcome) == "stopped: cancelled"
        assert result.cancellation["origin"] == "kernel_interrupt"
        while s.drainer.running:
            await asyncio.sleep(0.01)
        assert [str(o.result.outcome) for o in s.drainer.drained] == ["finished: assistant_message"]
        assert s.drainer.drained[0].result.assistant_output.safe_text == "done: queued work"
    run(body())


def test_stream_starts_the_turn_at_once_and_cancel_running_turns_stops_it():
    """Mirrors lash ``turn_streaming.rs::cancel_running_turns_stops_inflight_turn``: the
    provider is reached without iterating the stream; a sweep then stops the turn."""
    async def body():
        started = asyncio.Event()

        async def hang(request):
            started.set()
            await asyncio.sleep(3600)
            yield Completed(LlmResponse())

        core = LashCore.builder().provider(FunctionProvider(hang)).model("m").build()
        s = await core.session("s").open()
        stream = s.turn("wait").stream()
        await asyncio.wait_for(started.wait(), 10)  # nobody iterated the stream
        assert s.cancel_running_turns("user") == 1
        result = await asyncio.wait_for(stream.finish(), 10)
        assert str(result.outcome) == "stopped: cancelled"
    run(body())
