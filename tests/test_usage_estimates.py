"""A stopped turn is billed: the usage of a cut stream is what the provider reported, else an
estimate marked ``estimated`` (request characters / 4 in, streamed characters / 4 out), never
a silent zero."""

from __future__ import annotations

import asyncio

import duckdb
import pytest

from lash_nb import LashCore, reports
from lash_nb._core.usage import TokenUsage
from lash_nb._errors import StoreSchemaError
from lash_nb._reports.frames import estimated_usage_flags
from lash_nb.providers import Completed, FunctionProvider, LlmResponse, TextDelta, UsageReported
from lash_nb.stores import DuckDBStore


async def _silent_then_hang(request):
    yield TextDelta("started ")  # 8 characters streamed, no usage reported
    await asyncio.sleep(3600)
    yield Completed(LlmResponse())


async def _reports_then_hang(request):
    yield UsageReported(TokenUsage(input_tokens=1234, cache_read_input_tokens=100))
    yield TextDelta("started ")
    await asyncio.sleep(3600)
    yield Completed(LlmResponse())


async def _wait_for(session, type_: str) -> None:
    cursor = session.observe().current_observation().cursor
    async for ev in session.observe().subscribe_from_cursor(cursor):
        if getattr(ev, "kind", "") == "turn_activity" and ev.activity.type == type_:
            return


async def _stopped_turn(path, stream, prompt: str):
    core = LashCore.builder().provider(FunctionProvider(stream)).model("m").store(path).build()
    s = await core.session("s").open()
    task = asyncio.ensure_future(s.turn(prompt).turn_id("t1").run())
    await _wait_for(s, "assistant_prose_delta")
    s.cancel_running_turns()
    out = await asyncio.wait_for(task, 10)
    return core, s, out


def test_a_stream_cut_without_reported_usage_is_stored_as_an_estimate(tmp_path):
    async def body():
        # the request is the one user message, 20 characters: ceil(20 / 4) = 5 input tokens;
        # "started " is 8 characters: 2 output tokens
        core, s, out = await _stopped_turn(str(tmp_path / "e.duckdb"), _silent_then_hang,
                                           "count to five please")
        assert (out.result.usage.input_tokens, out.result.usage.output_tokens) == (5, 2)
        rows = s.store.query("SELECT input_tokens, output_tokens, estimated FROM usage_deltas")
        assert rows.to_dict("records") == [
            {"input_tokens": 5, "output_tokens": 2, "estimated": True}]
        calls = s.store.query("SELECT outcome, input_tokens, estimated FROM llm_calls")
        assert calls.to_dict("records") == [
            {"outcome": "interrupted", "input_tokens": 5, "estimated": True}]
        assert s.usage_report().usage.input_tokens == 5
        frame = reports.usage_frame(s, by="turn")
        assert frame[["turn_id", "input_tokens", "estimated"]].to_dict("records") == [
            {"turn_id": "t1", "input_tokens": 5, "estimated": True}]
        usage_events = [a.event for a in out.activities if a.type == "usage"]
        assert [(e.usage.input_tokens, e.estimated) for e in usage_events] == [(5, True)]
        await core.close()

    asyncio.run(body())


def test_a_stream_cut_after_the_provider_reported_usage_counts_the_reported_usage(tmp_path):
    async def body():
        core, s, out = await _stopped_turn(str(tmp_path / "r.duckdb"), _reports_then_hang, "hi")
        assert (out.result.usage.input_tokens, out.result.usage.cache_read_input_tokens) == (1234, 100)
        rows = s.store.query(
            "SELECT input_tokens, cache_read_input_tokens, estimated FROM usage_deltas")
        assert rows.to_dict("records") == [
            {"input_tokens": 1234, "cache_read_input_tokens": 100, "estimated": False}]
        frame = reports.llm_calls_frame(s)
        assert frame[["outcome", "input_tokens", "estimated"]].to_dict("records") == [
            {"outcome": "interrupted", "input_tokens": 1234, "estimated": False}]
        await core.close()

    asyncio.run(body())


def test_a_finished_turn_stores_reported_usage_not_marked_estimated(tmp_path):
    async def body():
        from lash_nb.testing import scripted

        core = (LashCore.builder().provider(scripted("done")).model("m")
                .store(str(tmp_path / "f.duckdb")).build())
        s = await core.session("s").open()
        await s.turn("hello").run()
        assert s.store.query("SELECT estimated FROM usage_deltas")["estimated"].tolist() in ([False], [])
        assert s.store.query("SELECT estimated FROM llm_calls")["estimated"].tolist() == [False]
        await core.close()

    asyncio.run(body())


def _strip_estimated(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE usage_deltas DROP COLUMN estimated")
    con.execute("ALTER TABLE llm_calls DROP COLUMN estimated")
    con.close()


def test_a_store_written_before_the_estimated_column_gains_it_at_a_writable_open(tmp_path):
    path = tmp_path / "old.duckdb"

    async def write():
        from lash_nb.testing import scripted

        core = LashCore.builder().provider(scripted("one", "two")).model("m").store(str(path)).build()
        s = await core.session("s").open()
        await s.turn("first").run()
        await core.close()

    asyncio.run(write())
    _strip_estimated(path)  # what a file of the previous lash_nb looks like
    with pytest.raises(StoreSchemaError, match="lacks the usage 'estimated' columns; open it once "
                                               "without read_only=True"):
        DuckDBStore(path, read_only=True).query("SELECT 1")

    async def reopen():
        core, s, _out = await _stopped_turn(str(path), _silent_then_hang, "count to five please")
        got = s.store.query(
            "SELECT turn_id, estimated FROM llm_calls ORDER BY seq").to_dict("records")
        await core.close()
        return got

    got = asyncio.run(reopen())
    # the old turn's row is kept and reads false; the stopped turn's estimate is marked
    assert [g["estimated"] for g in got] == [False, True]
    assert got[1]["turn_id"] == "t1"


def test_a_logged_commit_without_the_estimated_field_folds_with_false(tmp_path):
    from lash_nb._store.duckdb import rows
    from lash_nb._store.duckdb.schema import DDL

    con = duckdb.connect()
    con.execute(DDL)
    cols = {"session_id": ["s"], "turn_id": ["t"], "seq": [1], "source": ["turn"],
            "model": ["m"], "input_tokens": [3], "output_tokens": [1],
            "cache_read_input_tokens": [0], "cache_write_input_tokens": [0],
            "reasoning_output_tokens": [0], "created_at": [0]}  # a row logged before the column
    rows.insert(con, "usage_deltas", cols)
    assert con.execute("SELECT input_tokens, estimated FROM usage_deltas").fetchall() == [(3, False)]




def test_postgres_stores_the_estimate_and_an_older_database_gains_the_column(pg_dsn):
    import psycopg

    from lash_nb._store.postgres import PostgresStore

    asyncio.run(PostgresStore(pg_dsn).close())  # creates the schema
    with psycopg.connect(pg_dsn, autocommit=True) as con:  # as the previous lash_nb made it
        con.execute("ALTER TABLE usage_deltas DROP COLUMN estimated")
        con.execute("ALTER TABLE llm_calls DROP COLUMN estimated")

    async def body():
        core, s, _out = await _stopped_turn(pg_dsn, _silent_then_hang, "count to five please")
        frame = reports.llm_calls_frame(s)
        usage = reports.usage_frame(s, by="turn")
        flags = estimated_usage_flags(s)
        await core.close()
        return frame, usage, flags

    frame, usage, flags = asyncio.run(body())
    assert flags == {("turn", "m"): True}
    assert usage[["turn_id", "input_tokens", "output_tokens", "estimated"]].to_dict("records") == [
        {"turn_id": "t1", "input_tokens": 5, "output_tokens": 2, "estimated": True}]
    assert frame[["outcome", "input_tokens", "estimated"]].to_dict("records") == [
        {"outcome": "interrupted", "input_tokens": 5, "estimated": True}]
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        got = con.execute("SELECT input_tokens, output_tokens, estimated FROM usage_deltas").fetchall()
    assert got == [(5, 2, True)]


def test_lash_usage_marks_the_ledger_row_that_holds_estimated_tokens(tmp_path, monkeypatch):
    from notebook_harness import ReraisingShell

    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell("s = %lash open s1 --store u.duckdb")
        sh.run_cell("r = %lash turn hello")
        frame = sh.run_cell("%lash usage")
        assert frame[["source", "model", "estimated"]].to_dict("records") == [
            {"source": "turn", "model": "lash-offline", "estimated": False}]
        sh.user_ns["hang"] = FunctionProvider(_silent_then_hang)
        sh.run_cell(  # a turn on a provider that reports no usage, stopped mid-stream
            "import asyncio\n"
            "async def stop_one():\n"
            "    cursor = s.observe().current_observation().cursor\n"
            "    task = asyncio.ensure_future(s.turn('count to five please').provider(hang).run())\n"
            "    async for ev in s.observe().subscribe_from_cursor(cursor):\n"
            "        if ev.kind == 'turn_activity' and ev.activity.type == 'assistant_prose_delta':\n"
            "            break\n"
            "    s.cancel_running_turns()\n"
            "    return await task\n"
            "out = await stop_one()\n")
        frame = sh.run_cell("%lash usage")
        assert frame[["source", "model", "estimated"]].to_dict("records") == [
            {"source": "turn", "model": "lash-offline", "estimated": True}]
    finally:
        sh.close()
