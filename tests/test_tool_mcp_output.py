"""An MCP server's successful results: its ``--env`` secrets never reach the model, the store or
the notebook, and a huge result is bounded like any tool's (docs/adr/0174).

The servers here are hand-written stdio JSON-RPC scripts (like a vendor's server that echoes
its configuration); the model is a scripted ``FunctionProvider`` or the offline one.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp_stdio import stdio_server
from notebook_harness import lash_shell

from lash_nb import LashCore, MCPServer
from lash_nb._errors import ConfigurationError
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore
from lash_nb.testing import tool_call

TOKEN = "zq7-Wm2pLx9Rt4Kv8Nc3"  # the server's API_TOKEN; no credential shape the scrubber knows
OTHER = "hunter2hunter2"  # another password, in a secret-named assignment the server prints

_SERVER = stdio_server(  # its tools answer successfully with what it was given
    "cfg",
    prelude="""
        token = os.environ["API_TOKEN"]
        TOOLS = {
            "config_dump": lambda: {"content": [{"type": "text", "text": (
                f"endpoint = https://api.example.test/v2?key={token}\\n"
                f"api_token = {token}\\n"
                f"db = postgresql://etl:{os.environ['OTHER']}@db.internal/sales\\n"
                "region = eu-north-1")}]},
            "structured": lambda: {"content": [{"type": "text", "text": "see structured"}],
                                   "structuredContent": {"auth": {"token": token},
                                                         "headers": [f"X-Token: {token}"],
                                                         "rows": 3}},
            "whoami": lambda: {"content": [{"type": "text", "text":
                f"started as {' '.join(sys.argv[1:])}; connecting with {sys.argv[-1]}"}]},
            "big_dump": lambda: {"content": [{"type": "text", "text":
                "".join(f"row {i:06d} value={i * 7}\\n" for i in range(60_000))
                + f"last line names {token}\\n"}]},
        }
    """,
    tools='[{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]',
    on_call='send({"jsonrpc": "2.0", "id": rid, "result": TOOLS[name]()})')
MARKER = re.compile(r"\[… lash left out ([\d,]+) of the ([\d,]+) characters \(([\d,]+) lines\) "
                    r"this tool returned; max_output=([\d,]+) …\]")


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    pytest.importorskip("mcp")
    script = tmp_path / "cfg_server.py"
    script.write_text(_SERVER)
    return script


def _session_run(script: Path, path: Path, calls: list[str], **server_kw: Any) -> tuple[Any, list[str]]:
    """One turn calling ``calls`` (one response each), on a DuckDB file; the tool results
    the model was sent."""
    seen: list[Any] = []
    pending = list(calls)

    def model(request: Any) -> Any:
        seen.extend(r.content for r in request.messages[-1].tool_results())
        return [tool_call(pending.pop(0), "{}", f"c{len(pending)}")] if pending else "done"

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").store(
            DuckDBStore(path, idle_release_s=None)).build()
        s = await core.session("s").open()
        server = MCPServer.stdio("cfg", sys.executable, str(script),
                                 env={"API_TOKEN": TOKEN, "OTHER": OTHER}, **server_kw)
        await s.tools().add_server(server)
        out = (await s.turn("show the config").run()).result
        await core.close()
        return out

    return asyncio.run(body()), seen


def _stored_text(path: Path) -> str:
    async def body() -> str:
        store = DuckDBStore(path, idle_release_s=None)
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m").store(
            store).build()
        s = await core.session("s").open()
        texts = [json.dumps([e.to_json() for e in await store.load_events("s")], default=str),
                 store.query("SELECT * FROM tool_calls").to_json(date_format="iso"),
                 store.query("SELECT * FROM graph_nodes").to_json(date_format="iso"),
                 json.dumps([n.message.text() if n.message else "" for n in s.read_view().nodes()])]
        await core.close()
        return "\n".join(texts)

    return asyncio.run(body())


def test_a_servers_result_echoing_its_env_token_reaches_no_model_store_or_record(
        server_script: Path, tmp_path: Path) -> None:
    """``%lash mcp add cfg --env API_TOKEN=...``: its config tool answers with the token in a
    URL, in an assignment and in structured content. Before, the token was in the model's
    request, the store and the file as the server sent it."""
    path = tmp_path / "mcp.duckdb"
    out, seen = _session_run(server_script, path, ["config_dump", "structured"])
    dump, structured = seen
    assert dump == ("endpoint = https://api.example.test/v2?key=[redacted]\n"
                    "api_token = [redacted]\n"
                    "db = postgresql://etl:[redacted]@db.internal/sales\n"
                    "region = eu-north-1")
    assert json.loads(structured) == {"auth": {"token": "[redacted]"},
                                      "headers": ["X-Token: [redacted]"], "rows": 3}
    assert [c.success for c in out.tool_calls] == [True, True]
    stored = _stored_text(path)
    assert "eu-north-1" in stored  # the rest of the result is kept
    for text in (repr(out), json.dumps(seen), stored):
        assert TOKEN not in text and OTHER not in text
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*.duckdb*") if p.is_file())
    assert TOKEN.encode() not in raw and OTHER.encode() not in raw


def test_a_huge_server_result_is_bounded_and_its_token_at_the_tail_scrubbed(
        server_script: Path, tmp_path: Path) -> None:
    out, (text,) = _session_run(server_script, tmp_path / "big.duckdb", ["big_dump"],
                                max_output=4_000)
    m = MARKER.search(text)
    assert m is not None
    assert _n(m.group(4)) == 4_000
    assert text.startswith("row 000000 value=0\nrow 000001 value=7\n")
    assert text.endswith("row 059999 value=419993\nlast line names [redacted]\n")
    assert len(text) < 4_200
    assert TOKEN not in text and out.tool_calls[0].output == text


ARG_TOKEN = "Qp4-arg-77Hx2Lw9"  # handed on the command line: --token ARG_TOKEN


def test_a_secret_handed_as_an_option_is_not_echoed_back(server_script: Path, tmp_path: Path) -> None:
    """``%lash mcp add cfg -- python server.py --token X``: the server says what it was
    started with, and the value alone, with no shape around it."""
    seen: list[str] = []

    def model(request: Any) -> Any:
        seen.extend(r.content for r in request.messages[-1].tool_results())
        return [tool_call("whoami", "{}", "c1")] if not seen else "done"

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").build()
        s = await core.session("s").open()
        server = MCPServer.stdio("cfg", sys.executable, str(server_script), "--token",
                                 ARG_TOKEN, env={"API_TOKEN": TOKEN, "OTHER": OTHER})
        await s.tools().add_server(server)
        out = (await s.turn("who are you?").run()).result
        await core.close()
        return out

    out = asyncio.run(body())
    assert seen == ["started as --token [redacted]; connecting with [redacted]"]
    assert ARG_TOKEN not in repr(out)


def test_max_output_of_a_server_must_be_a_positive_int() -> None:
    with pytest.raises(ConfigurationError, match="max_output"):
        MCPServer.stdio("x", "true", max_output=0)


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def test_mcp_add_with_env_and_max_output_in_a_notebook(server_script: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook user's way: ``%lash mcp add --env API_TOKEN=... --max-output N``; the
    offline model calls the tool and echoes what it returned in its answer, which the record
    shows: neither holds the token."""
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = ':memory:'") as sh:
        sh.run_cell("%lash open s1 --no-tools")
        sh.run_cell(f"tok = {TOKEN!r}")
        sh.run_cell(f"srv = %lash mcp add cfg --env API_TOKEN={{tok}} --env OTHER=x "
                    f"--max-output 3000 -- {sys.executable} {server_script}")
        assert sh.user_ns["srv"].max_output == 3_000
        sh.run_cell("r = %lash turn Run config_dump please")
        r = sh.user_ns["r"]
        assert "api_token = [redacted]" in r.tool_calls[0].output
        assert "api_token = [redacted]" in r.assistant_output.safe_text
        sh.run_cell("r2 = %lash turn Run big_dump please")
        r2 = sh.user_ns["r2"]
        assert MARKER.search(r2.tool_calls[0].output) is not None
        assert len(r2.tool_calls[0].output) < 3_200
        from IPython.core.error import UsageError

        with pytest.raises(UsageError, match="--max-output 0 is not"):
            sh.run_cell(f"%lash mcp add c2 --max-output 0 -- {sys.executable} {server_script}")
        for shown in (repr(r), repr(r2), r.assistant_output.safe_text):
            assert TOKEN not in shown


def test_an_http_servers_url_secrets_are_taken_out_of_what_it_says() -> None:
    """``%lash mcp add web --url 'https://me:PASSWORD@host/mcp?api_key=KEY'``: a result naming
    the key or the password alone (no URL around it) reads ``[redacted]`` there."""
    server = MCPServer.http("web", "https://me:pw-55aa77bb@mcp.example.test/mcp?api_key=K3y-991122")
    assert server.scrub_result("key K3y-991122, password pw-55aa77bb, region eu") == (
        "key [redacted], password [redacted], region eu")
