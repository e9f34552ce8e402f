"""A committed record says what happened: who stopped a turn and why, how long a cancelled
tool call ran, and that it was cancelled (not failed)."""

from __future__ import annotations

import asyncio
import json
import threading

from lash_nb import LashCore, tool
from lash_nb.providers import Completed, FunctionProvider, LlmResponse, TextDelta
from lash_nb.testing import scripted, tool_call


async def _hung(request):
    yield TextDelta("started ")
    await asyncio.sleep(3600)
    yield Completed(LlmResponse())


async def _wait_for(session, type_: str) -> None:
    cursor = session.observe().current_observation().cursor
    async for ev in session.observe().subscribe_from_cursor(cursor):
        if getattr(ev, "kind", "") == "turn_activity" and ev.activity.type == type_:
            return


async def _stopped_record(store_path, stop) -> dict:
    core = LashCore.builder().provider(FunctionProvider(_hung)).model("m").store(store_path).build()
    s = await core.session("s").open()
    task = asyncio.ensure_future(s.turn("wait").turn_id("t1").run())
    await _wait_for(s, "assistant_prose_delta")
    stop(s)
    await asyncio.wait_for(task, 10)
    [rec] = [t for t in await s.store.load_turns("s") if t.turn_id == "t1"]
    await core.close()
    return rec.result["cancellation"]


def test_cancel_running_turns_without_arguments_is_stored_as_an_api_cancel(tmp_path):
    got = asyncio.run(_stopped_record(str(tmp_path / "a.duckdb"), lambda s: s.cancel_running_turns()))
    assert got == {"request_id": "internal:t1", "origin": "api",
                   "reason": "session.cancel_running_turns() was called"}


def test_the_stop_origins_lash_nb_uses_store_their_standard_reasons(tmp_path):
    expected = {
        "widget_stop": "the Stop button of the turn widget was pressed",
        "kernel_interrupt": "the kernel was interrupted (the notebook's interrupt button or SIGINT)",
        "magic": "%lash stop was run",
    }
    for i, (origin, reason) in enumerate(expected.items()):
        got = asyncio.run(_stopped_record(str(tmp_path / f"{i}.duckdb"),
                                          lambda s, o=origin: s.cancel_running_turns(o)))
        assert (got["origin"], got["reason"]) == (origin, reason)


def test_a_caller_given_reason_is_stored_as_written(tmp_path):
    got = asyncio.run(_stopped_record(
        str(tmp_path / "w.duckdb"),
        lambda s: s.cancel_running_turns("worker_shutdown", "grace of 5 s ran out")))
    assert (got["origin"], got["reason"]) == ("worker_shutdown", "grace of 5 s ran out")


def test_a_cancelled_tool_call_keeps_its_running_time_and_is_recorded_cancelled(tmp_path):
    entered, release = threading.Event(), threading.Event()

    @tool
    def slow() -> str:
        """Blocks until released."""
        entered.set()
        release.wait(30)
        return "late"

    async def body():
        core = (LashCore.builder().provider(scripted([tool_call("slow", "{}", "c1")], "after"))
                .model("m").tools(slow).store(str(tmp_path / "t.duckdb")).build())
        s = await core.session("s").open()
        task = asyncio.ensure_future(s.turn("run slow").turn_id("t1").run())
        await asyncio.to_thread(entered.wait, 30)
        await asyncio.sleep(0.3)  # the tool has now run at least 300 ms
        s.cancel_running_turns()
        out = await asyncio.wait_for(task, 10)
        release.set()
        [call] = out.result.tool_calls
        assert call.status == "cancelled"
        assert call.duration_ms >= 300
        rows = s.store.query(
            "SELECT success, interrupted, duration_ms FROM tool_calls WHERE call_id = 'c1'")
        assert rows["success"].tolist() == [False]
        assert rows["interrupted"].tolist() == [True]
        assert rows["duration_ms"].iloc[0] >= 300
        events = s.store.query(
            "SELECT payload FROM turn_events WHERE type = 'tool_call_completed'")
        payload = json.loads(events["payload"].iloc[0])
        assert payload["status"] == "cancelled"
        assert payload["duration_ms"] >= 300
        [rec] = await s.store.load_turns("s")
        assert rec.result["tool_calls"][0]["status"] == "cancelled"
        from lash_nb import reports

        turns = reports.turns_frame(s)
        assert turns[["failed_tool_calls", "cancelled_tool_calls", "cancelled_by"]].to_dict(
            "records") == [{"failed_tool_calls": 0, "cancelled_tool_calls": 1, "cancelled_by": "api"}]
        assert reports.tool_calls_frame(s)["status"].tolist() == ["cancelled"]
        await core.close()

    asyncio.run(body())


def test_a_finished_tool_call_is_recorded_success_and_a_raising_one_failure():
    @tool
    def ok() -> str:
        """Fine."""
        return "fine"

    @tool
    def bad() -> str:
        """Raises."""
        raise RuntimeError("nope")

    async def body():
        provider = scripted([tool_call("ok", "{}", "c1"), tool_call("bad", "{}", "c2")], "done")
        s = await LashCore.builder().provider(provider).model("m").tools(ok, bad).build().session("s").open()
        out = await s.turn("go").run()
        assert [(c.call_id, c.status) for c in out.result.tool_calls] == [("c1", "success"), ("c2", "failure")]
        done = [a.event for a in out.activities if a.type == "tool_call_completed"]
        assert sorted((e.call_id, e.status) for e in done) == [("c1", "success"), ("c2", "failure")]

    asyncio.run(body())


def test_a_worker_stopped_mid_turn_records_worker_shutdown_and_its_grace(tmp_path):
    from lash_nb._runtime.worker import Worker

    async def body():
        core = (LashCore.builder().provider(FunctionProvider(_hung)).model("m")
                .store(str(tmp_path / "w.duckdb")).build())
        s = await core.session("s").open()
        await s.enqueue("long job").id("k1").send()
        worker = Worker(core, session_id="s", poll_s=0.05, grace_s=0, log=lambda msg: None)
        running = asyncio.ensure_future(worker.run())
        await _wait_for(s, "assistant_prose_delta")
        worker.stop()
        await asyncio.wait_for(running, 30)  # the worker closes the store when it ends
        reopened = LashCore.builder().provider(FunctionProvider(_hung)).model("m").store(
            str(tmp_path / "w.duckdb")).build()
        [rec] = await reopened.store.load_turns("s")
        await reopened.close()
        assert rec.stop_reason == "cancelled"
        c = rec.result["cancellation"]
        assert (c["origin"], c["reason"]) == (
            "worker_shutdown", ("the worker was asked to stop and the turn outlived --grace 0 s; "
                                "its queued batch went back to the queue"))

    asyncio.run(body())
