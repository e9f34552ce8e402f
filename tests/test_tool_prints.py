"""What a tool prints during its call is kept with that call (docs/adr/0197).

A data scientist's tool prints progress lines, a small table, a warning (``print``,
``sys.stderr``, ``warnings``, ``logging``). The call's record (``ToolCallRecord.printed``), its
completion activity and the store's ``tool_calls.printed`` hold that text, cleaned, without a
key the process knows, bounded like a tool's output; the model is not sent it. Two calls
running at once (async tools on the loop, plain ones on their threads) each keep only what they
printed, and what other code prints meanwhile is not taken. Before, the text went to whatever
``sys.stdout`` was and nothing kept it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.reports import tool_calls_frame
from lash_nb.stores import DuckDBStore
from lash_nb.testing import tool_call

KEY = "envkey-printed-9Qm4Lx7Tz2Wd"  # in the environment only; shaped like no known key


class Script:
    """A model that calls the given tools once, then answers; keeps every request's text."""

    def __init__(self, *calls: Any) -> None:
        self.replies: list[Any] = [list(calls)]
        self.sent: list[str] = []

    def __call__(self, request: Any) -> Any:
        self.sent.append("\n".join(p.content for m in request.messages for p in m.parts))
        return self.replies.pop(0) if self.replies else "done"


def _run(tools: list[Any], calls: list[Any], *, store: Any = None,
         during: Any = None) -> tuple[Any, Script]:
    model = Script(*calls)

    async def body() -> Any:
        builder = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(*tools)
        core = (builder.store(store) if store is not None else builder).build()
        s = await core.session("s").open()
        if during is None:
            out = await s.turn("go").run()
        else:  # other code of the process prints while the turn runs
            out, _ = await asyncio.gather(s.turn("go").run(), during())
        await core.close()
        return out

    return asyncio.run(body()), model


@tool
def crunch(job: str) -> str:
    """Crunch a job, telling how it goes."""
    print("step 1/2", job)
    print(f"{'col':>5} | n\n{'a':>5} | 1")
    sys.stderr.write(f"careful with {job}\n")
    logging.getLogger("crunch").warning("%s took long", job)
    print("step 2/2", job)
    return f"done {job}"


def test_what_a_plain_tool_prints_is_kept_with_its_call_and_not_sent_to_the_model(
        tmp_path: Path) -> None:
    """The notebook's ``logging.basicConfig()`` made its handler on the stderr of the time
    (pytest's own capture of logging and warnings is not what a kernel has: the kernel test
    shows ``warnings`` and an unconfigured ``logging`` taken too)."""
    stdout, stderr = sys.stdout, sys.stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("crunch").addHandler(handler)
    store = DuckDBStore(tmp_path / "p.duckdb", idle_release_s=None)
    try:
        out, model = _run([crunch], [tool_call("crunch", '{"job": "alpha"}', "c1")], store=store)
    finally:
        logging.getLogger("crunch").removeHandler(handler)
    # once the call ended, the streams and the handler's stream are what they were
    assert (sys.stdout, sys.stderr, handler.stream) == (stdout, stderr, stderr)
    (call,) = out.result.tool_calls
    assert call.output == "done alpha"
    printed = call.printed
    assert printed is not None
    for line in ("step 1/2 alpha", "  col | n\n    a | 1", "careful with alpha",
                 "WARNING crunch: alpha took long", "step 2/2 alpha"):
        assert line in printed, printed
    assert printed.index("step 1/2") < printed.index("careful") < printed.index("step 2/2")
    # the model reads the tool's result, not what it printed
    assert "done alpha" in model.sent[1]
    assert "step 1/2" not in "".join(model.sent)
    # the completion activity carries it; the store's row and events hold it after a reopen
    (done,) = [a for a in out.activities if a.event.type == "tool_call_completed"]
    assert done.event.printed == printed
    con = duckdb.connect(str(tmp_path / "p.duckdb"), read_only=True)
    try:
        (row,) = con.execute("SELECT call_id, printed FROM tool_calls").fetchall()
        (payload,) = con.execute("SELECT payload FROM turn_events "
                                 "WHERE type = 'tool_call_completed'").fetchall()
    finally:
        con.close()
    assert row == ("c1", printed)
    assert json.loads(payload[0])["printed"] == printed


def test_a_tool_that_prints_nothing_keeps_no_printed_text(tmp_path: Path) -> None:
    @tool
    def quiet(job: str) -> str:
        """Say nothing."""
        return job

    store = DuckDBStore(tmp_path / "q.duckdb", idle_release_s=None)
    out, _ = _run([quiet], [tool_call("quiet", '{"job": "x"}', "c1")], store=store)
    assert out.result.tool_calls[0].printed is None
    assert "printed" not in out.result.tool_calls[0].to_json()
    con = duckdb.connect(str(tmp_path / "q.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT printed FROM tool_calls").fetchall() == [(None,)]
    finally:
        con.close()


def test_calls_running_at_once_keep_only_their_own_lines_and_other_code_keeps_its_own(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two async tools and two plain ones (on their threads) print interleaved, in one reply;
    a task of the same loop and a thread of the process print meanwhile."""
    both = threading.Barrier(2, timeout=30)

    @tool
    async def slow_a(n: int) -> str:
        """A."""
        for i in range(n):
            print(f"A{i}")
            await asyncio.sleep(0.01)
        return "a"

    @tool
    async def slow_b(n: int) -> str:
        """B."""
        for i in range(n):
            print(f"B{i}", file=sys.stderr)
            await asyncio.sleep(0.01)
        return "b"

    def on_thread(letter: str) -> Any:
        def lines(n: int) -> str:
            """Print n lines (both threads at once)."""
            both.wait()
            for i in range(n):
                print(f"{letter}{i}")
            return letter.lower()

        return tool(lines, name=f"thread_{letter.lower()}")

    thread_c, thread_d = on_thread("C"), on_thread("D")

    async def bystanders() -> None:
        def elsewhere() -> None:
            for i in range(5):
                print(f"THREAD{i}")

        t = threading.Thread(target=elsewhere)
        t.start()
        for i in range(5):
            print(f"TASK{i}")
            await asyncio.sleep(0.01)
        t.join()

    out, _ = _run([slow_a, slow_b, thread_c, thread_d],
                  [tool_call("slow_a", '{"n": 5}', "a"), tool_call("slow_b", '{"n": 5}', "b"),
                   tool_call("thread_c", '{"n": 200}', "c"),
                   tool_call("thread_d", '{"n": 200}', "d")], during=bystanders)
    printed = {c.call_id: c.printed for c in out.result.tool_calls}
    assert printed["a"] == "".join(f"A{i}\n" for i in range(5))
    assert printed["b"] == "".join(f"B{i}\n" for i in range(5))
    assert printed["c"] == "".join(f"C{i}\n" for i in range(200))
    assert printed["d"] == "".join(f"D{i}\n" for i in range(200))
    # the bystanders' lines went where they always go; no widget shows this turn (a script),
    # so each call's lines went there too, to their own stream. print() writes a line's text
    # and its newline apart, so two threads printing at once interleave there as they would
    # without lash ("C7D7\n\n"): every character arrives, once
    seen = capsys.readouterr()
    lines = ([f"TASK{i}" for i in range(5)] + [f"THREAD{i}" for i in range(5)]
             + [f"{x}{i}" for x, n in (("A", 5), ("C", 200), ("D", 200)) for i in range(n)])
    assert Counter(seen.out) == Counter("".join(f"{line}\n" for line in lines))
    assert seen.err.splitlines() == [f"B{i}" for i in range(5)]


def test_a_turn_no_widget_shows_still_prints_its_tools_lines_and_a_widgets_turn_does_not(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's log, a script's terminal, a Python-API cell's output: a tool's prints were
    written there before ADR 197 and still are (a script author whose prints vanished would
    think the tool never ran), every known key taken out. A turn on a live widget (%%lash)
    shows them on the tool's row instead, so there they leave the stream."""
    from lash_nb._store.waits import not_shown, shown_to_a_person

    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    @tool
    def leaky() -> str:
        """Print a line with a key in it."""
        print("using", os.environ["OPENAI_API_KEY"], "for the upload")
        return "ok"

    out, _ = _run([leaky], [tool_call("leaky", "{}", "k")])
    assert out.result.tool_calls[0].printed == "using [redacted] for the upload\n"
    assert capsys.readouterr().out == "using [redacted] for the upload\n"

    token = shown_to_a_person(True)  # what the notebook's runner marks around a %%lash turn
    try:
        out, _ = _run([leaky], [tool_call("leaky", "{}", "k")])
    finally:
        not_shown(token)
    assert out.result.tool_calls[0].printed == "using [redacted] for the upload\n"
    assert capsys.readouterr().out == ""


def test_a_tool_printing_megabytes_keeps_its_start_and_end_around_a_line_saying_so(
        tmp_path: Path) -> None:
    @tool
    def chatty() -> str:
        """Print a lot."""
        for i in range(200_000):
            print(f"{i:06d} processed a batch of rows")  # 33 characters a line
        return "ok"

    store = DuckDBStore(tmp_path / "big.duckdb", idle_release_s=None)
    out, _ = _run([chatty], [tool_call("chatty", "{}", "c1")], store=store)
    printed = out.result.tool_calls[0].printed
    assert printed.startswith("000000 processed a batch of rows\n")
    assert printed.endswith("199999 processed a batch of rows\n")
    # 992 whole lines kept at each end (32,736 of the 32,768 characters each half may hold)
    assert ("[… lash left out 6,534,528 of the 6,600,000 characters (198,016 lines) this tool "
            "printed; max_output=65,536 …]") in printed
    assert len(printed) < 65_536 + 200
    assert (tmp_path / "big.duckdb").stat().st_size < 3_000_000


def test_a_key_the_process_knows_and_odd_characters_leave_what_a_tool_printed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    @tool
    def leaky() -> str:
        """Print the environment badly."""
        print(f"using key {KEY} \x00 and \ud800 done")
        return "ok"

    out, _ = _run([leaky], [tool_call("leaky", "{}", "c1")])
    printed = out.result.tool_calls[0].printed
    assert KEY not in printed
    assert printed == "using key [redacted] \ufffd and \ufffd done\n"


def test_a_call_cut_by_a_stop_keeps_what_it_printed_and_its_row_showed_it_live() -> None:
    """The tool printed a line, then waited; the user stopped the turn. The interrupted call
    keeps the line, and a ``tool_call_printed`` activity showed it on the row meanwhile."""
    from lash_nb import CancellationToken

    started = asyncio.Event()

    @tool
    async def waits() -> str:
        """Print, then wait for ever."""
        print("loading 3 files")
        print("file 1 of 3")
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(Script(tool_call("waits", "{}", "c1")))
                                           ).model("m").tools(waits).build()
        s = await core.session("s").open()
        token = CancellationToken()
        turn = asyncio.ensure_future(s.turn("go").cancel(token).run())
        await started.wait()
        await asyncio.sleep(0.6)  # past the live rows' flush (0.2 s)
        token.cancel()
        out = await turn
        await core.close()
        return out

    out = asyncio.run(body())
    (call,) = out.result.tool_calls
    assert call.interrupted is True
    assert call.printed == "loading 3 files\nfile 1 of 3\n"
    live = [a.event.text for a in out.activities if a.event.type == "tool_call_printed"]
    assert "".join(live) == "loading 3 files\nfile 1 of 3\n"
    assert all(a.correlation_id == "tool:c1" for a in out.activities
               if a.event.type == "tool_call_printed")


def test_printed_text_on_a_row_is_shown_as_text_in_the_record_and_its_markdown() -> None:
    """What a tool printed is outside text: markup in it is shown, not run, and a fence in
    it does not end the record markdown's code block."""
    from lash_nb._notebook.widgets.fold import TurnFold
    from lash_nb._notebook.widgets.snapshot import tool_row_html

    fold = TurnFold()
    cid = "tool:c1"
    fold.apply({"type": "tool_call_started", "id": "a1", "correlation_id": cid,
                "call_id": "c1", "name": "t", "args": {}})
    fold.apply({"type": "tool_call_printed", "id": "a2", "correlation_id": cid,
                "call_id": "c1", "name": "t", "text": "half <b>way</b>\n"})
    assert fold.blocks[0]["printed"] == "half <b>way</b>\n"  # live, before the completion
    done = "half <b>way</b>\n<script>alert(1)</script>\n```\nafter the fence\n"
    fold.apply({"type": "tool_call_completed", "id": "a3", "correlation_id": cid,
                "call_id": "c1", "name": "t", "args": {}, "output": "ok", "duration_ms": 1.0,
                "success": True, "printed": done})
    html = tool_row_html(fold.blocks[0])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "· printed" in html
    markdown = fold.to_markdown()
    assert "  printed:\n````\nhalf <b>way</b>\n<script>alert(1)</script>\n```\nafter the fence\n````" \
        in markdown


def test_a_file_written_before_the_printed_column_opens_read_only_and_gains_it_when_written(
        tmp_path: Path) -> None:
    """Yesterday's file (main's schema: no ``tool_calls.printed``) is still read with
    ``read_only=True`` (before, a missing added column refused that open); the next writable
    open adds the column, its old rows read NULL and the new call's lines are kept."""
    path = tmp_path / "old.duckdb"
    writer = DuckDBStore(path, idle_release_s=None)
    _run([crunch], [tool_call("crunch", '{"job": "old"}', "c1")], store=writer)
    writer.close_sync()
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE tool_calls DROP COLUMN printed")
    con.close()

    reader = DuckDBStore(path, read_only=True)
    try:
        assert reader.query("SELECT call_id FROM tool_calls")["call_id"].tolist() == ["c1"]
        # its tool-calls frame reads too, with nothing known printed (ADR 210)
        frame = tool_calls_frame(reader)
        assert frame["call_id"].tolist() == ["c1"] and frame["printed"].isna().all()
    finally:
        reader.close_sync()

    _run([crunch], [tool_call("crunch", '{"job": "new"}', "c2")],
         store=DuckDBStore(path, idle_release_s=None))
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT call_id, printed FROM tool_calls ORDER BY seq").fetchall()
    finally:
        con.close()
    assert rows[0] == ("c1", None)
    assert rows[1][0] == "c2" and rows[1][1].startswith("step 1/2 new\n")


@pytest.mark.postgres
def test_a_postgresql_store_keeps_what_a_tool_printed_and_an_older_database_gains_the_column(
        pg_dsn: str) -> None:
    """A database a lash_nb before this column made (``printed`` dropped here) gains it at the
    next open; the call's lines are in the row."""
    import psycopg

    from lash_nb._store.postgres import PostgresStore

    _run([crunch], [tool_call("crunch", '{"job": "old"}', "c1")], store=PostgresStore(pg_dsn))
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        (kept,) = con.execute("SELECT printed FROM tool_calls").fetchone()
        assert kept.startswith("step 1/2 old\n") and kept.endswith("step 2/2 old\n")
        con.execute("ALTER TABLE tool_calls DROP COLUMN printed")  # as an older lash_nb made it
    _run([crunch], [tool_call("crunch", '{"job": "new"}', "c2")], store=PostgresStore(pg_dsn))
    with psycopg.connect(pg_dsn) as con:
        rows = con.execute("SELECT call_id, printed FROM tool_calls ORDER BY seq").fetchall()
    assert rows[0] == ("c1", None)
    assert rows[1][0] == "c2" and rows[1][1].startswith("step 1/2 new\n")
    assert "WARNING crunch" not in rows[1][1]  # no handler of this test on that logger now
