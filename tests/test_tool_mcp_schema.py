"""An MCP server with a tool whose ``inputSchema`` is not an object schema (``{"type":
"string"}``, an array, missing): the tool is left out with a one-line warning naming the
server and the tool and saying what to do, and the server's other tools work.

Before, the SDK refused the whole ``tools/list`` answer, so the server did not start at all,
with a pydantic ``ValidationError`` of several lines (and a link) as the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest
from mcp_stdio import stdio_server
from notebook_harness import ReraisingShell

from lash_nb import LashCore, MCPServer
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

pytestmark = pytest.mark.slow  # starts servers

# a hand-written stdio server with one good tool and tools whose inputSchema is not an
# object schema; every call answers 'called <name>'
_SERVER = stdio_server(
    "odd", prelude="""
    TOOLS = [
        {"name": "good", "description": "fine", "inputSchema": {
            "type": "object", "properties": {"x": {"type": "string"}}}},
        {"name": "shout", "inputSchema": {"type": "string"}},
        {"name": "many", "inputSchema": [{"type": "object"}]},
        {"name": "bare"},
        {"name": "list\\u202eit", "inputSchema": {"type": "array", "items": {}}},
        "not a tool at all",
    ]
    """,
    tools="TOOLS", on_call='answer(rid, "called " + name)')


@pytest.fixture
def odd(tmp_path):
    pytest.importorskip("mcp")
    script = tmp_path / "odd.py"
    script.write_text(_SERVER)
    return script


def test_tools_without_an_object_schema_are_left_out_and_the_rest_work(odd, caplog):
    offered: list[list[str]] = []
    results: list[tuple[str, bool]] = []
    replies = [[tool_call("good", '{"x": "a"}', "c1")]]

    def model(request):
        offered.append(sorted(t.name for t in request.tools))
        results.extend((r.content, r.is_error) for r in request.messages[-1].tool_results())
        return replies.pop(0) if replies else "done"

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").build()
        s = await core.session("s").open()
        server = MCPServer.stdio("odd", sys.executable, str(odd))
        await s.tools().add_server(server)
        out = await s.turn("use good").run()
        await s.close()
        await core.close()
        return out, server

    with caplog.at_level(logging.WARNING, logger="lash_nb.mcp"):
        out, server = asyncio.run(body())
    assert str(out.result.outcome) == "finished: assistant_message"
    assert offered == [["good"], ["good"]]
    assert results == [("called good", False)]
    assert sorted(server.left_out) == ["bare", "list_it", "many", "shout"]
    shout = server.left_out["shout"]
    assert shout == ("MCP server 'odd': tool 'shout' left out: its inputSchema is "
                     '{"type": "string"}, not an object schema ({"type": "object", ...}); '
                     "its other tools work; the server must declare the tool's arguments as "
                     "an object to be usable")
    assert "its inputSchema is [{\"type\": \"object\"}]" in server.left_out["many"]
    assert "it has no inputSchema" in server.left_out["bare"]
    for message in server.left_out.values():
        assert "\n" not in message and "\u202e" not in message
    warned = [r.getMessage() for r in caplog.records if r.name == "lash_nb.mcp"]
    assert sorted(warned) == sorted([*server.left_out.values(),
                                     ("MCP server 'odd': an entry of its tool list is not a "
                                      'tool ("not a tool at all"); left out')])


def test_lash_mcp_add_names_the_tools_it_left_out(odd, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.store = ':memory:'")
        sh.run_cell("%lash open s1 --no-tools")
        sh.run_cell(f"%lash mcp add odd -- {sys.executable} {odd}")
        out = capsys.readouterr().out
        assert ("MCP server 'odd' started (stdio): good; left out (their inputSchema is not an "
                "object schema): bare, list_it, many, shout") in out
        listing = sh.run_cell("%lash mcp list").data
        assert "| odd | stdio |" in listing and "| good |" in listing
        assert json.dumps(listing).count("left out") == 1
        sh.run_cell("%lash mcp remove odd")
    finally:
        sh.close()


# a hand-written stdio server whose tool names collide once cut to what a model API takes
# ('a.b' and 'a_b'), with a tool whose description is 2 MB and one whose schema is 1 MB
_CROWDED_SERVER = stdio_server(
    "crowded", prelude="""
    TOOLS = [
        {"name": "a.b", "inputSchema": {"type": "object"}},
        {"name": "a_b", "inputSchema": {"type": "object"}},
        {"name": "wordy", "description": "Does a thing. " + "x" * 2_000_000,
         "inputSchema": {"type": "object"}},
        {"name": "vast", "inputSchema": {"type": "object", "properties": {
            "p": {"type": "string", "description": "y" * 1_000_000}}}},
    ]
    """,
    tools="TOOLS", on_call='answer(rid, "called " + name)')


def test_colliding_names_and_oversized_tools_leave_out_one_tool_each_not_the_server(tmp_path,
                                                                                      caplog):
    # before: the server was refused whole ("lists two tools named 'a_b'; give one another
    # name (@tool(name=...))", which cannot rename a server's tool), and once it was not,
    # 3 MB of description and schema went with every model call
    pytest.importorskip("mcp")
    script = tmp_path / "crowded.py"
    script.write_text(_CROWDED_SERVER)
    offered: list[dict[str, int]] = []
    replies = [[tool_call("a_b", "{}", "c1")]]
    results: list[str] = []

    def model(request):
        offered.append({t.name: len(t.description) + len(json.dumps(dict(t.input_schema)))
                        for t in request.tools})
        results.extend(r.content for r in request.messages[-1].tool_results())
        return replies.pop(0) if replies else "done"

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").build()
        s = await core.session("s").open()
        server = MCPServer.stdio("crowded", sys.executable, str(script))
        await s.tools().add_server(server)
        await s.turn("go").run()
        await s.close()
        await core.close()
        return server

    with caplog.at_level(logging.WARNING, logger="lash_nb.mcp"):
        server = asyncio.run(body())
    assert sorted(offered[0]) == ["a_b", "wordy"]
    assert results == ["called a.b"]  # the first of the two names keeps it
    assert offered[0]["wordy"] < 5000  # the description is cut
    assert server.left_out == {
        "a_b": ("MCP server 'crowded': tool 'a_b' left out: its name reads 'a_b' for a model, "
                "as tool 'a.b' does, which keeps it; the server must name its tools apart"),
        "vast": ("MCP server 'crowded': tool 'vast' left out: its inputSchema is 1000078 "
                 "characters of JSON, more than the 65536 a model is sent for one tool; its "
                 "other tools work"),
    }
    assert sorted(r.getMessage() for r in caplog.records if r.name == "lash_nb.mcp") == sorted(
        server.left_out.values())
