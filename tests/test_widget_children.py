"""The turn view of a tool call that runs a child session (``run_child``): the child's turn
nests under that tool row, live (the fold the widget syncs) and in the saved HTML snapshot
(ADR 18), with the child's text escaped like any other outside text."""

from __future__ import annotations

import asyncio

from lash_nb import LashCore, TokenUsage, ToolContext, run_child, tool
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._notebook.widgets.turn import TurnWidget
from lash_nb.providers import FunctionProvider, LlmPart, LlmResponse
from lash_nb.stores import MemoryStore
from lash_nb.testing import tool_call

CHILD_SAYS = "child <b>bold</b> answer"


@tool
async def ask_helper(question: str, context: ToolContext) -> str:
    """Ask a helper agent."""
    result = await run_child(context, f"sub: {question}")
    return result.assistant_output.safe_text


def agent(request):
    first = request.messages[0].text() if request.messages else ""
    if first.startswith("sub: "):
        return LlmResponse(parts=(LlmPart.text_part(CHILD_SAYS),), usage=TokenUsage(5, 2))
    if any(m.tool_results() for m in request.messages):
        return LlmResponse(parts=(LlmPart.text_part("parent done"),), usage=TokenUsage(9, 1))
    return LlmResponse(parts=(tool_call("ask_helper", '{"question": "q"}', "call_7"),),
                       usage=TokenUsage(9, 1))


def parent_activities():
    async def body():
        core = LashCore.builder().provider(FunctionProvider(agent, kind="function")) \
            .model("m").store(MemoryStore()).tools(ask_helper).build()
        s = await core.session("p").open()
        out = await s.turn("go").run()
        return [a.to_json() for a in out.activities]
    return asyncio.run(body())


def test_child_turn_folds_under_the_tool_row_that_ran_it():
    f = TurnFold()
    f.apply_all(parent_activities())
    (row,) = f.tool_rows()
    assert row["name"] == "ask_helper" and row["status"] == "done"
    child = row["child"]
    assert child["session_id"] == "p.call_7"
    assert child["outcome"] == "finished: assistant_message"
    assert [b["text"] for b in child["blocks"] if b["kind"] == "prose"] == [CHILD_SAYS]
    assert f.prose == "parent done"  # the child's prose is not the parent's
    assert "child session `p.call_7` · finished: assistant_message: " + CHILD_SAYS \
        in f.to_markdown()


def test_saved_snapshot_keeps_the_nested_child_turn_escaped():
    w = TurnWidget(session_id="p", prompt="go")
    w.push_all(parent_activities())
    w.finish()
    html = w._repr_mimebundle_()["text/html"]
    tool_at, child_at = html.index('class="lash-tool '), html.index('class="lash-child"')
    assert tool_at < child_at < html.index("parent done")
    assert "child session p.call_7 · finished: assistant_message" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_a_replayed_turn_from_a_duckdb_file_still_nests_its_child(tmp_path):
    """The next morning: the parent turn's stored events (read back from the file, as
    ``%lash replay`` does) fold into the same nested child turn."""
    from lash_nb.stores import DuckDBStore

    path = str(tmp_path / "replay.duckdb")

    async def write():
        core = LashCore.builder().provider(FunctionProvider(agent, kind="function")) \
            .model("m").store(DuckDBStore(path)).tools(ask_helper).build()
        s = await core.session("p").open()
        await s.turn("go").run()
        await core.close()

    async def read():
        store = DuckDBStore(path)
        (record,) = await store.load_turns("p")
        events = await store.load_events("p", record.turn_id)
        await store.close()
        return events

    asyncio.run(write())
    w = TurnWidget(session_id="p", prompt="go")
    w.push_all(asyncio.run(read()))
    w.finish()
    (row,) = w.fold.tool_rows()
    assert row["child"]["session_id"] == "p.call_7"
    assert [b["text"] for b in row["child"]["blocks"] if b["kind"] == "prose"] == [CHILD_SAYS]
