"""MCP servers as tool sources, against real servers started by the test (no network):
``server-everything`` over stdio and streamable HTTP, ``mcp-server-time`` over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mcp_servers import need
from mcp_stdio import stdio_server

from lash_nb import LashCore, MCPServer
from lash_nb._errors import ToolNameConflict, ToolServerError
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

pytestmark = pytest.mark.slow  # installs and starts servers


def run(coro):
    return asyncio.run(coro)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def wait_until(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Script:
    """A FunctionProvider model that sends the given calls one response at a time, records
    what it saw (tool names offered, tool results), then answers "done"."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.offered: list[list[str]] = []
        self.results: list[tuple[str, bool]] = []

    def __call__(self, request):
        self.offered.append(sorted(t.name for t in request.tools))
        self.results.extend((r.content, r.is_error) for r in request.messages[-1].tool_results())
        return self.responses.pop(0) if self.responses else "done"


async def open_session(model, *tools):
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(*tools).build()
    return core, await core.session("s").open()


@pytest.mark.floor  # the mcp SDK's client over stdio / HTTP: no quick test reaches it
def test_stdio_server_tools_join_the_catalog_and_answer_with_text_and_structured_results(mcp_servers):
    js = need(mcp_servers, "everything")
    model = Script([tool_call("echo", '{"message": "hi there"}', "c1")],
                   [tool_call("get-structured-content", '{"location": "Chicago"}', "c2")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("everything", "node", js, "stdio")
        source = await s.tools().add_server(server)
        rows = {r["name"]: r for r in s.tools().all_tools()}
        assert rows["echo"]["id"] == "mcp:everything:echo" and rows["echo"]["source"] == source
        assert rows["echo"]["input_schema"]["properties"]["message"]["type"] == "string"
        out = await s.turn("go").run()
        assert [c.success for c in out.result.tool_calls] == [True, True]
        assert s.tools().servers() == [(source, server)]
        await s.close()
        assert not server.running
    run(body())
    assert "echo" in model.offered[0] and "get-structured-content" in model.offered[0]
    assert model.results[0] == ("Echo: hi there", False)
    assert json.loads(model.results[1][0]) == {"temperature": 36, "conditions": "Light rain / drizzle",
                                               "humidity": 82}


@pytest.mark.floor  # the mcp SDK's client over stdio / HTTP: no quick test reaches it
def test_server_errors_are_tool_errors_the_model_sees(mcp_servers):
    js = need(mcp_servers, "everything")
    model = Script([tool_call("get-sum", '{"a": "one", "b": 2}', "c1"),
                    tool_call("get-sum", '{"a": 1, "b": 2}', "c2")])

    async def body():
        _core, s = await open_session(model)
        await s.tools().add_server(MCPServer.stdio("everything", "node", js, "stdio"))
        out = await s.turn("add").run()
        assert {c.call_id: c.success for c in out.result.tool_calls} == {"c1": False, "c2": True}
        await s.close()
    run(body())
    (bad, bad_err), (good, good_err) = model.results
    assert bad_err and "MCP server 'everything'" in bad and "expected number" in bad
    assert not good_err and "3" in good


def test_membership_toggles_and_remove_source_act_on_server_tools(mcp_servers):
    js = need(mcp_servers, "everything")
    model = Script([tool_call("echo", '{"message": "x"}', "c1")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("everything", "node", js, "stdio")
        source = await s.tools().add_server(server)
        s.tools().set_membership("echo", False)
        out = await s.turn("echo").run()
        assert not out.result.tool_calls[0].success  # not a member: it does not exist
        assert "echo" not in model.offered[0]
        pid_before = set(server._pids)
        s.tools().remove_source(source)
        assert all(r["name"] != "echo" for r in s.tools().all_tools())
        assert await asyncio.to_thread(wait_until, lambda: not server.running)
        assert pid_before and await asyncio.to_thread(
            wait_until, lambda: not any(alive(p) for p in pid_before))
        await s.close()
    run(body())
    assert "unknown tool 'echo'" in model.results[0][0]


def test_mcp_server_time_over_stdio(mcp_servers):
    exe = need(mcp_servers, "time")
    model = Script([tool_call("get_current_time", '{"timezone": "UTC"}', "c1"),
                    tool_call("get_current_time", '{"timezone": "Mars/Base"}', "c2")])

    async def body():
        _core, s = await open_session(model)
        await s.tools().add_server(MCPServer.stdio("time", exe))
        assert {"get_current_time", "convert_time"} <= {r["name"] for r in s.tools().all_tools()}
        out = await s.turn("time?").run()
        assert {c.call_id: c.success for c in out.result.tool_calls} == {"c1": True, "c2": False}
        await s.close()
    run(body())
    now = json.loads(model.results[0][0])
    assert now["timezone"] == "UTC" and now["datetime"].endswith("+00:00")
    assert model.results[1][1] and "Mars/Base" in model.results[1][0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.floor  # the mcp SDK's client over stdio / HTTP: no quick test reaches it
def test_streamable_http_server(mcp_servers):
    js = need(mcp_servers, "everything")
    port = _free_port()
    proc = subprocess.Popen(["node", js, "streamableHttp"], env={**os.environ, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    model = Script([tool_call("echo", '{"message": "over http"}', "c1")])

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None  # a dead server: stop waiting, the start fails

    try:
        assert wait_until(listening, 60) and proc.poll() is None, proc.stderr and proc.stderr.read()

        async def body():
            _core, s = await open_session(model)
            server = MCPServer.http("web", f"http://127.0.0.1:{port}/mcp")
            await s.tools().add_server(server)
            assert server.transport == "http"
            out = await s.turn("echo").run()
            assert out.result.tool_calls[0].success
            await s.close()
            assert not server.running
        run(body())
    finally:
        proc.terminate()
        proc.wait(30)
    assert model.results == [("Echo: over http", False)]


def test_a_server_that_does_not_start_is_a_one_line_error_and_adds_nothing():
    pytest.importorskip("mcp")

    async def body():
        _core, s = await open_session(Script())
        before = s.tools().state()
        bad = MCPServer.stdio("broken", sys.executable, "-c",
                              "import sys; print('cannot open the database', file=sys.stderr)")
        with pytest.raises(ToolServerError) as err:
            await s.tools().add_server(bad)
        msg = str(err.value)
        assert "'broken'" in msg and "cannot open the database" in msg and "\n" not in msg
        assert s.tools().state() == before
        await s.close()
    run(body())


def test_a_server_that_dies_printing_a_credential_is_an_error_without_it():
    # a server that logs its failed request on the way out: the error is shown in the
    # notebook (and saved with it), so the credential must not be in its text
    pytest.importorskip("mcp")

    async def body():
        _core, s = await open_session(Script())
        bad = MCPServer.stdio("crm", sys.executable, "-c",
                              "import sys; print('login failed: Authorization: Bearer "
                              "sk-proj-MCPLEAK0123456789abcdef', file=sys.stderr)")
        with pytest.raises(ToolServerError) as err:
            await s.tools().add_server(bad)
        await s.close()
        return str(err.value)

    msg = run(body())
    assert "login failed: Authorization: [redacted]" in msg
    assert "MCPLEAK" not in msg


def test_a_node_server_that_does_not_start_shows_its_error_not_nodes_version():
    # most MCP servers run on node (npx ...); an uncaught error ends with a stack and
    # "Node.js v20.x": the one line of error output shown was that version line
    import shutil
    pytest.importorskip("mcp")
    if shutil.which("node") is None:
        pytest.skip("needs node")

    async def body():
        _core, s = await open_session(Script())
        bad = MCPServer.stdio("gh", "node", "-e", "throw new Error("
                              "'GITHUB_PERSONAL_ACCESS_TOKEN environment variable is not set')")
        with pytest.raises(ToolServerError) as err:
            await s.tools().add_server(bad)
        await s.close()
        return str(err.value)

    msg = run(body())
    assert msg.endswith("(its last error output: Error: GITHUB_PERSONAL_ACCESS_TOKEN environment "
                        "variable is not set); check the command or URL (run it in a terminal "
                        "to see)")


def test_an_unstarted_server_given_as_a_tool_is_a_one_line_error():
    from lash_nb._errors import ConfigurationError

    server = MCPServer.stdio("later", "node", "server.js")
    with pytest.raises(ConfigurationError, match=r"'later' is not started.*add_server"):
        LashCore.builder().provider(FunctionProvider(Script())).model("m").tools(server)


def test_two_servers_with_one_tool_name_are_refused_unless_prefixed(mcp_servers):
    js = need(mcp_servers, "everything")

    async def body():
        _core, s = await open_session(Script())
        await s.tools().add_server(MCPServer.stdio("a", "node", js, "stdio"))
        second = MCPServer.stdio("b", "node", js, "stdio")
        with pytest.raises(ToolNameConflict):
            await s.tools().add_server(second)
        assert not second.running  # refused: stopped again
        await s.tools().add_server(MCPServer.stdio("b", "node", js, "stdio", prefix="b_"))
        assert "b_echo" in {r["name"] for r in s.tools().all_tools()}
        await s.close()
    run(body())


_LIST_CHANGING = textwrap.dedent("""
    # a server on the official SDK whose 'grow' tool adds a tool (list_changed)
    from mcp.server.mcpserver import Context, MCPServer
    app = MCPServer("grower")

    @app.tool()
    async def grow(name: str, ctx: Context) -> str:
        def added() -> str:
            return "new tool " + name
        app.add_tool(added, name=name)
        await ctx.session.send_tool_list_changed()
        return "added " + name

    app.run()
""")


def test_a_tool_list_change_refreshes_the_catalog(tmp_path):
    pytest.importorskip("mcp")
    script = tmp_path / "grower.py"
    script.write_text(_LIST_CHANGING)
    model = Script([tool_call("grow", '{"name": "fresh"}', "c1")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("grower", sys.executable, str(script))
        await s.tools().add_server(server)
        gen = s.tools().state()["generation"]
        await s.turn("grow").run()
        for _ in range(600):  # the notification arrives after the call's answer
            if "fresh" in {r["name"] for r in s.tools().all_tools()}:
                break
            await asyncio.sleep(0.05)
        assert "fresh" in {r["name"] for r in s.tools().all_tools()}
        assert s.tools().state()["generation"] > gen
        await s.close()
    run(body())


def test_servers_die_with_the_process_that_started_them(mcp_servers, tmp_path):
    exe = need(mcp_servers, "time")
    code = textwrap.dedent(f"""
        import asyncio, os, sys
        from lash_nb import MCPServer

        async def main():
            server = await MCPServer.stdio("time", {exe!r}).start()
            print(",".join(map(str, server._pids)), flush=True)
            os._exit(0) if sys.argv[1] == "hard" else sys.exit(0)  # no close: a kernel dying

        asyncio.run(main())
    """)
    for how in ("exit", "hard"):
        out = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
        pids = [int(p) for p in out.stdout.split(",") if p.strip()]
        assert pids, out.stderr
        assert wait_until(lambda pids=pids: not any(alive(p) for p in pids), 60), how


_CRASHING_SERVER = textwrap.dedent("""
    # a server on the official SDK whose 'export' tool dies mid-call, saying why on stderr
    import os, sys, time
    time.sleep(float(os.environ.get("SLOW_START_S", "0")))  # a launcher fetching the server
    from mcp.server.mcpserver import MCPServer
    app = MCPServer("crasher")

    @app.tool()
    def export(table: str) -> str:
        print("fatal: database is locked (Authorization: Bearer sk-proj-CRASHLEAK0123456789)",
              file=sys.stderr, flush=True)
        os._exit(3)

    @app.tool()
    def count(table: str) -> int:
        return 3

    @app.tool()
    async def wait(table: str) -> str:
        import asyncio
        await asyncio.sleep(3600)
        return "never"

    app.run()
""")


def _crasher(tmp_path):
    """The crashing server's script in ``tmp_path`` (skips without the mcp SDK)."""
    pytest.importorskip("mcp")
    script = tmp_path / "crasher.py"
    script.write_text(_CRASHING_SERVER)
    return script


def test_a_server_that_dies_mid_call_says_why_and_reads_stopped_afterwards(tmp_path):
    # before: every call answered "Connection closed" (no reason, nothing to do) and the
    # server still showed "running" in %lash mcp list
    script = _crasher(tmp_path)
    model = Script([tool_call("export", '{"table": "sales"}', "c1")],
                   [tool_call("count", '{"table": "sales"}', "c2")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("db", sys.executable, str(script), timeout_s=30)
        await s.tools().add_server(server)
        out = await s.turn("export sales").run()
        await s.close()
        return out, server

    out, server = run(body())
    (died, died_error), (later, later_error) = model.results
    assert died_error and later_error
    assert "MCP server 'db' stopped during the call" in died
    assert "fatal: database is locked" in died and "add it again" in died
    assert "MCP server 'db' is not running" in later and "database is locked" in later
    assert not server.running
    assert "database is locked" in server.error  # what %lash mcp list shows as its state
    for text in (died, later, server.error, repr(out)):
        assert "CRASHLEAK" not in text


def test_a_server_removed_during_a_call_ends_the_call_saying_so(tmp_path):
    # %lash mcp remove (or aclose) while a turn waits on one of its tools: the call ends
    # at once as stopped by us, and the server does not read as having crashed
    script = _crasher(tmp_path)
    model = Script([tool_call("wait", '{"table": "sales"}', "c1")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("db", sys.executable, str(script), timeout_s=600)
        await s.tools().add_server(server)
        stream = s.turn("wait for sales").stream()
        async for activity in stream:
            if activity.type == "tool_call_started":
                [(sid, _)] = s.tools().servers()
                s.tools().remove_source(sid)
                await server.aclose()
        out = await stream.finish()
        await s.close()
        return out, server

    out, server = run(body())
    assert str(out.outcome) == "finished: assistant_message"
    assert model.results == [("ToolServerError: MCP server 'db' was stopped during the call", True)]
    assert not server.running and server.error is None


def test_a_call_past_the_servers_timeout_says_how_long_and_how_to_wait_longer(tmp_path):
    # it said only "Request 'tools/call' timed out": not after how long, nor what to change
    script = _crasher(tmp_path)
    model = Script([tool_call("wait", '{"table": "sales"}', "c1")],
                   [tool_call("count", '{"table": "sales"}', "c2")])

    async def body():
        _core, s = await open_session(model)
        # the start takes longer than a call may: a call's timeout is not the start's (npx
        # fetching a server takes seconds); it failed "did not start: no answer in 1.5 s"
        server = MCPServer.stdio("db", sys.executable, str(script), timeout_s=1.5,
                                 env={**os.environ, "SLOW_START_S": "3"})
        await s.tools().add_server(server)
        await s.turn("wait for sales").run()
        await s.close()

    run(body())
    (late, late_error), (count, count_error) = model.results
    assert late_error and late == (
        "ToolServerError: MCP server 'db': tool 'wait' gave no answer in 1.5 s; a slower tool "
        "needs a longer timeout (%lash mcp add db --timeout S ..., or "
        "MCPServer.stdio(..., timeout_s=S))")
    assert (count, count_error) == ('{"result": 3}', False)  # the server still answers


# a hand-written stdio server whose 'latin1' tool answers with a Latin-1 byte (a file read
# as bytes and passed on), not UTF-8
_LATIN1_SERVER = stdio_server(
    "raw", tools='[{"name": n, "inputSchema": {"type": "object"}} for n in ("latin1", "ok")]',
    on_call=r"""
        if name == "latin1":
            sys.stdout.buffer.write(b'{"jsonrpc":"2.0","id":%d,"result":{"content":'
                                    b'[{"type":"text","text":"caf\xe9 au lait"}]}}\n' % rid)
            sys.stdout.buffer.flush()
        else:
            answer(rid, "fine")
    """)


def test_a_server_answering_with_bytes_that_are_not_utf8_answers_and_keeps_answering(tmp_path):
    # before, the SDK's strict decoding stopped reading the server at that byte: the call
    # waited for its timeout, every later call too, and the server still showed "running"
    pytest.importorskip("mcp")
    script = tmp_path / "latin1.py"
    script.write_text(_LATIN1_SERVER)
    model = Script([tool_call("latin1", "{}", "c1")], [tool_call("ok", "{}", "c2")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("raw", sys.executable, str(script), timeout_s=30)
        await s.tools().add_server(server)
        out = await s.turn("read the menu").run()
        await s.close()
        return out

    out = run(body())
    assert model.results == [("caf\ufffd au lait", False), ("fine", False)]
    assert [c.status for c in out.result.tool_calls] == ["success", "success"]


# a hand-written stdio server (like a chat-API server) whose 'post' tool fails naming the
# token it was given in its environment, in its error result and on stderr
_ECHOING_SERVER = stdio_server(
    "chat", prelude='token = os.environ["SLACK_BOT_TOKEN"]',
    tools='[{"name": "post", "inputSchema": {"type": "object"}}]',
    on_call="""
        print(f"chat.postMessage failed: invalid_auth for {token}", file=sys.stderr, flush=True)
        answer(rid, f"invalid_auth: the token {token} was revoked", is_error=True)
    """)
SLACK_TOKEN = "xoxb-1234-5678-QWERTYqwerty"  # no credential shape the scrubber knows


def test_a_server_error_naming_a_secret_from_its_env_reaches_no_model_or_record(tmp_path):
    # MCPServer.stdio(..., env={"SLACK_BOT_TOKEN": ...}): the value is a secret lash was
    # handed; the server's error result put it in the model's request and the store
    pytest.importorskip("mcp")
    script = tmp_path / "chat.py"
    script.write_text(_ECHOING_SERVER)
    model = Script([tool_call("post", "{}", "c1")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("chat", sys.executable, str(script),
                                 env={"SLACK_BOT_TOKEN": SLACK_TOKEN, "CHANNEL": "general"})
        await s.tools().add_server(server)
        out = await s.turn("post hello").run()
        await s.close()
        return out, server

    out, server = run(body())
    [(text, is_error)] = model.results
    assert is_error
    assert text == ("ToolServerError: MCP server 'chat', tool 'post': invalid_auth: the token "
                    "[redacted] was revoked")
    for shown in (repr(out), repr(server), str(server.error)):
        assert SLACK_TOKEN not in shown


# a hand-written server whose 'storm' tool sends 300 tools/list_changed notifications at
# once; 'lists' says how many times it was asked for its tool list
_STORM_SERVER = stdio_server(
    "storm", prelude="lists = 0", on_list="lists += 1", list_changed=True,
    tools='[{"name": n, "inputSchema": {"type": "object"}} for n in ("storm", "lists")]',
    on_call=r"""
        if name == "storm":
            for _ in range(300):
                sys.stdout.write('{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n')
            answer(rid, "ok")
        else:
            answer(rid, str(lists))
    """)


def test_a_burst_of_tool_list_changes_lists_the_tools_again_a_few_times_not_once_each(tmp_path):
    # each notification started its own tools/list and catalog rebuild: a server (or a loop
    # in one) could keep the kernel busy rebuilding the catalog
    pytest.importorskip("mcp")
    script = tmp_path / "storm.py"
    script.write_text(_STORM_SERVER)

    async def body():
        _core, s = await open_session(Script())
        server = MCPServer.stdio("storm", sys.executable, str(script))
        await s.tools().add_server(server)
        from lash_nb._core.tools import ToolContext
        ctx = ToolContext("s", "t", "c")
        await server.execute("storm", {}, ctx)
        counts = [await server.execute("lists", {}, ctx)]
        while True:  # until the relisting has settled
            await asyncio.sleep(0.3)
            counts.append(await server.execute("lists", {}, ctx))
            if counts[-1] == counts[-2]:
                break
        await s.close()
        return int(counts[-1])

    lists = run(body())
    assert 2 <= lists <= 4  # the start's, then one or two for the whole burst


_LAUNCHER = textwrap.dedent("""\
    #!/bin/sh
    # a launcher like npx or a wrapper script: starts a helper, then the server, and waits
    sleep 600 </dev/null >/dev/null 2>&1 &
    echo $! > "$1"
    "$2" "$3"
""")
_QUIET_SERVER = textwrap.dedent("""
    from mcp.server.mcpserver import MCPServer
    app = MCPServer("quiet")

    @app.tool()
    def ping() -> str:
        return "pong"

    app.run()
""")


def test_a_servers_helper_processes_die_with_the_process_that_started_it(tmp_path):
    # the kernel exits (shut down, restarted) without closing the session: the server's
    # whole process group goes, not only the launcher lash started (a helper it spawned, a
    # browser of a browsing server, was left running before)
    pytest.importorskip("mcp")
    launcher, server, helper = tmp_path / "launch.sh", tmp_path / "quiet.py", tmp_path / "helper.pid"
    launcher.write_text(_LAUNCHER)
    launcher.chmod(0o755)
    server.write_text(_QUIET_SERVER)
    code = textwrap.dedent(f"""
        import asyncio, sys
        from lash_nb import MCPServer

        async def main():
            await MCPServer.stdio("quiet", {str(launcher)!r}, {str(helper)!r}, sys.executable,
                                  {str(server)!r}).start()
            sys.exit(0)  # no close: a kernel shutting down

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert out.returncode == 0, out.stderr
    pid = int(helper.read_text())
    try:
        assert wait_until(lambda: not alive(pid), 30)
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_stop_during_an_mcp_call_ends_the_turn_and_the_server_still_answers(mcp_servers):
    js = need(mcp_servers, "everything")
    model = Script([tool_call("trigger-long-running-operation", '{"duration": 60, "steps": 2}',
                              "long")])

    async def body():
        _core, s = await open_session(model)
        server = MCPServer.stdio("everything", "node", js, "stdio")
        await s.tools().add_server(server)
        stream = s.turn("wait for it").stream()
        async for activity in stream:
            if activity.type == "tool_call_started":
                s.cancel_running_turns()
        out = await asyncio.wait_for(stream.finish(), 30)  # not the 60 s the call would take
        assert str(out.outcome).startswith("stopped: cancelled")
        [call] = out.tool_calls
        assert call.status == "cancelled"
        from lash_nb._core.tools import ToolContext
        again = await server.execute("echo", {"message": "after"}, ToolContext("s", "t2", "c"))
        assert again == "Echo: after"
        await s.close()
    run(body())
