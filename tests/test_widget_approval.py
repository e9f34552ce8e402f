"""Approve / Deny on the live widget's tool row, through the widget protocol (Python side):
the notebook runner's widget gets the messages the buttons send (``{"type": "approve" |
"deny", "call_id"}``, here from another thread as a comm-over-subshell handler would) and the
turn goes on; Stop while the row waits ends the turn; the finished record (static HTML and
markdown, and a replay of the stored events) says who decided.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from lash_nb import LashCore, tool
from lash_nb._notebook.runner import run_turn
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._notebook.widgets.snapshot import turn_html
from lash_nb._notebook.widgets.turn import TurnWidget
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def shown(monkeypatch):
    """The widgets ``run_turn`` shows (no display outside a kernel)."""
    widgets: list[TurnWidget] = []

    def show(self):
        widgets.append(self)
        return self

    monkeypatch.setattr(TurnWidget, "show", show)
    return widgets


def open_session(ran):
    @tool(approval="ask")
    def drop_table(name: str) -> str:
        ran.append(name)
        return f"dropped {name}"

    def model(request):
        results = request.messages[-1].tool_results()
        if results:
            return "model read: " + results[0].content
        return [tool_call("drop_table", '{"name": "sales"}', "c1")]

    core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(drop_table).build()
    return core.session("s").open()


async def until(predicate, what):
    for _ in range(3000):  # generous: a loaded machine
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def waiting_widget(s, shown):
    turn = asyncio.ensure_future(run_turn(s, "clean up", interval_s=0.01))
    await s.approvals().next(timeout=30)
    await until(lambda: shown and any(r["status"] == "waiting" for r in shown[0].fold.tool_rows()),
                "the widget shows the waiting row")
    return turn, shown[0]


def click(widget, message):
    """A button's message, handled on another thread (comms over subshells)."""
    t = threading.Thread(target=widget._on_custom, args=(widget, message, []))
    t.start()
    t.join()


def test_approve_on_the_row_runs_the_tool_and_the_record_says_who(shown):
    ran = []

    async def body():
        s = await open_session(ran)
        turn, w = await waiting_widget(s, shown)
        [row] = w.fold.tool_rows()
        assert row["approval"] == {"state": "pending", "policy": "ask"}
        assert ran == []
        click(w, {"type": "approve", "call_id": "c1"})
        result = await asyncio.wait_for(turn, 30)
        assert result.assistant_message() == "model read: dropped sales"
        assert w.status == "done" and w.decisions == [("c1", True)]
        [row] = w.fold.tool_rows()
        assert row["status"] == "done"
        assert (row["approval"]["state"], row["approval"]["by"]) == ("approved", "user")
        html = turn_html(w.state())
        assert '<span class="lash-tool-approval">approved by user</span>' in html
        assert "- tool `drop_table` done" in w.to_markdown() and "(approved by user)" in w.to_markdown()
        assert w.decide("c1", False) is False  # a finished turn takes no decision
    run(body())
    assert ran == ["sales"]


def test_deny_on_the_row_returns_a_denial_and_the_row_says_denied(shown):
    ran = []

    async def body():
        s = await open_session(ran)
        turn, w = await waiting_widget(s, shown)
        click(w, {"type": "deny", "call_id": "nope"})  # no such waiting call: ignored
        assert w.decisions == []
        click(w, {"type": "deny", "call_id": "c1"})
        result = await asyncio.wait_for(turn, 30)
        assert result.assistant_message().startswith(
            "model read: the call to tool 'drop_table' was denied by the user;")
        [row] = w.fold.tool_rows()
        assert row["status"] == "denied"
        assert "denied by user" in turn_html(w.state())
        # the record read back from the store folds to the same row (``%lash replay``)
        fold = TurnFold()
        fold.apply_all(a.to_json() for a in await s.store.load_events("s", result.turn_id))
        [replayed] = fold.tool_rows()
        assert (replayed["status"], replayed["approval"]["by"]) == ("denied", "user")
    run(body())
    assert ran == []


def test_stop_while_the_row_waits_cancels_the_turn_and_closes_the_question(shown):
    ran = []

    async def body():
        s = await open_session(ran)
        turn, w = await waiting_widget(s, shown)
        click(w, {"type": "stop"})
        result = await asyncio.wait_for(turn, 30)
        assert str(result.outcome) == "stopped: cancelled"
        assert w.status == "stopped"
        [row] = w.fold.tool_rows()
        assert row["status"] == "cancelled"
        assert (row["approval"]["state"], row["approval"]["by"]) == ("cancelled", "widget_stop")
        assert s.approvals().pending() == []
        click(w, {"type": "approve", "call_id": "c1"})  # a late click changes nothing
        assert w.decisions == []
    run(body())
    assert ran == []


def test_a_widget_without_a_decide_callback_takes_no_decision():
    w = TurnWidget()
    w.push({"type": "tool_call_started", "correlation_id": "tool:c1", "call_id": "c1",
            "name": "t", "args": {}})
    w.push({"type": "tool_approval", "correlation_id": "tool:c1", "call_id": "c1", "name": "t",
            "state": "pending", "policy": "ask"})
    assert w.fold.tool_rows()[0]["status"] == "waiting"
    assert w.decide("c1", True) is False
    w.finish(outcome="stopped: cancelled")
    row = w.fold.tool_rows()[0]
    assert (row["status"], row["approval"]["state"]) == ("cancelled", "cancelled")


def test_the_tools_widget_groups_tools_by_source_and_shows_non_default_approval():
    from types import SimpleNamespace

    from lash_nb import MCPServer
    from lash_nb._notebook.widgets.tools import ToolCatalogWidget

    @tool
    def weather(city: str) -> str:
        """Current weather."""
        return city

    @tool(approval="ask")
    def drop_table(name: str) -> str:
        """Drop a table."""
        return name

    fs = MCPServer.stdio("files", "true", approval={"write_file": "never"})
    fs._tools = [SimpleNamespace(name=n, description=f"{n} on disk", input_schema={"type": "object"})
                 for n in ("read_file", "write_file")]  # as a started server lists them

    async def body():
        core = LashCore.builder().provider(FunctionProvider(lambda r: "hi")).model("m").tools(
            weather).build()
        s = await core.session("s").open()
        s.state.registry.add_source(fs)  # what add_server does once the server runs
        s.tools().add_provider(drop_table)
        rows = s.tools().all_tools()
        assert [(r["name"], r["group"], r["approval"]) for r in rows] == [
            ("read_file", "MCP server files", "always"),
            ("write_file", "MCP server files", "never"),
            ("drop_table", "Python functions", "ask"),
            ("weather", "Python functions", "always"),
        ]
        w = ToolCatalogWidget(load=s.tools().all_tools)
        assert w.snapshot_text().splitlines() == [
            "MCP server files:",
            "[x] read_file(): read_file on disk",
            "[x] write_file() [never]: write_file on disk",
            "Python functions:",
            "[x] drop_table(name: string) [ask]: Drop a table.",
            "[x] weather(city: string): Current weather.",
        ]
        html = w.snapshot_html()
        assert html.count('class="lash-group"') == 2
        assert html.index("MCP server files") < html.index("read_file") < html.index(
            "Python functions") < html.index("drop_table")
        assert '<code>drop_table</code> <span class="lash-tool-approval">ask</span>' in html
    run(body())


def test_tool_groups_name_the_source():
    from lash_nb import MCPServer
    from lash_nb._runtime.tool_admin import source_group

    @tool
    def f(x: int) -> int:
        return x

    assert source_group("tool:f", f, "base:0") == "Python functions"
    assert source_group("tool:f", f, "plugin:units:0") == "plugin units"
    assert source_group("mcp:fs:read", MCPServer.stdio("fs", "true"), "live:1") == "MCP server fs"
    assert source_group("mcp:fs:read", None) == "MCP server fs"  # orphaned: still its server's
    assert source_group("tool:f", None) == "Python functions"
