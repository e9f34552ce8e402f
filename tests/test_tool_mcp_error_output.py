"""The error output (stderr) of a stdio MCP server, as lash_nb keeps it: bounded in lines and
characters, saying how many earlier lines it dropped, without the secrets the server was given
in its environment (``--env SLACK_BOT_TOKEN``), and readable with ``server.error_output`` and
``%lash mcp log NAME``.

The user's situation: a chatty server (debug logging on, a node server printing each request)
or one that logs in a loop. Its stderr went to a temporary file that grew for as long as the
server ran (the disk of a long-lived kernel filled), and what it said could not be read.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import pytest
from mcp_stdio import stdio_server
from notebook_harness import ReraisingShell

from lash_nb import MCPServer

pytestmark = pytest.mark.slow  # starts servers

TOKEN = "xoxb-9876-5432-ChattyToken"  # no credential shape: only its value gives it away

# a hand-written stdio server that logs LINES lines to stderr when started (every 10th naming
# its token), one line of LONG characters with no newline when LONG is set, and 'called <n>'
# on stderr at each call of its tool 'ping'; SPINNER redraws of a spinner on one line with
# '\r' ending in an error, when SPINNER is set
_CHATTY_SERVER = stdio_server(
    "chatty", prelude="""
    token = os.environ.get("SLACK_BOT_TOKEN", "")
    err = sys.stderr
    for i in range(int(os.environ.get("LINES", "0"))):
        err.write(f"debug {i}: polling with {token}\\n" if i % 10 == 0 else f"debug {i}: idle\\n")
    if os.environ.get("SPINNER"):
        for i in range(int(os.environ["SPINNER"])):
            err.write("\\r" + "|/-\\\\"[i % 4] + " fetching")
        err.write(f"\\rnpm error 404 Not Found - GET https://registry.example/nope {token}\\r\\n")
    if os.environ.get("LONG"):
        err.write("x" * int(os.environ["LONG"]) + token + "\\n")
    err.write("ready\\n")
    err.flush()
    calls = 0
    """,
    tools='[{"name": "ping", "inputSchema": {"type": "object"}}]',
    on_call="""
        calls += 1
        print(f"called {calls} with {token}", file=err, flush=True)
        answer(rid, "pong")
    """)


@pytest.fixture
def chatty(tmp_path):
    pytest.importorskip("mcp")
    script = tmp_path / "chatty.py"
    script.write_text(_CHATTY_SERVER)
    return script


def _deleted_temp_bytes() -> int:
    """Bytes in the files this process holds open that were deleted from the temp folder
    (where ``tempfile.TemporaryFile`` puts its anonymous files)."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(tempfile.gettempdir()) and target.endswith("(deleted)"):
                total += os.fstat(int(fd)).st_size
        except OSError:
            pass
    return total


async def _wait_for(predicate, what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never saw {what}")


def test_a_chatty_servers_error_output_is_bounded_says_what_it_dropped_and_loses_its_token(
        chatty):
    async def body():
        before = _deleted_temp_bytes()
        server = MCPServer.stdio("chatty", sys.executable, str(chatty),
                                 env={"SLACK_BOT_TOKEN": TOKEN, "LINES": "60000"})
        await server.start()
        try:
            await server.execute("ping", {}, None)
            await _wait_for(lambda: "called 1 with" in server.error_output, "the call's line")
            return server.error_output, _deleted_temp_bytes() - before
        finally:
            await server.aclose()

    log, on_disk = asyncio.run(body())
    lines = log.splitlines()
    # 60000 debug lines (about 1.5 MB), "ready" and the call's line were written; the last
    # 500 lines at most are kept, the first line says how many came before them
    assert len(log) <= 64 * 1024 and len(lines) <= 501
    dropped = 60002 - (len(lines) - 1)
    assert lines[0] == f"[{dropped} earlier lines dropped]"
    assert lines[-2:] == ["ready", "called 1 with [redacted]"]
    assert lines[-3] == "debug 59999: idle" and lines[-12] == "debug 59990: polling with [redacted]"
    assert TOKEN not in log
    assert on_disk < 256 * 1024  # nothing the size of what it wrote was kept on disk


def test_a_line_with_no_end_is_cut_and_the_token_at_its_end_stays_out(chatty):
    async def body():
        server = MCPServer.stdio("chatty", sys.executable, str(chatty),
                                 env={"SLACK_BOT_TOKEN": TOKEN, "LONG": str(3 * 2**20)})
        await server.start()
        try:
            await _wait_for(lambda: "ready" in server.error_output, "ready")
            return server.error_output
        finally:
            await server.aclose()

    log = asyncio.run(body())
    first, ready = log.splitlines()
    assert first.startswith("xxxx") and first.endswith(" [line cut]") and len(first) < 8192
    assert ready == "ready"
    assert TOKEN not in log


def test_lash_mcp_log_shows_the_servers_error_output(chatty, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.store = ':memory:'")
        sh.run_cell("%lash open s1 --no-tools")
        sh.run_cell(f"%lash mcp add chatty --env SLACK_BOT_TOKEN --env LINES=3000 -- "
                    f"{sys.executable} {chatty}")
        capsys.readouterr()
        sh.run_cell("import time\nfor _ in range(400):\n"
                    "    if 'ready' in server_log():\n        break\n    time.sleep(0.025)"
                    .replace("server_log()", "__import__('lash_nb._notebook.extension', "
                             "fromlist=['x'])._magics().ctx.bindings['s1'].session.tools()"
                             ".servers()[0][1].error_output"))
        sh.run_cell("%lash mcp log chatty")
        shown = capsys.readouterr().out
        lines = shown.splitlines()
        assert lines[0].startswith("[") and lines[0].endswith(" earlier lines dropped]")
        assert lines[-1] == "ready" and "debug 2990: polling with [redacted]" in lines
        assert TOKEN not in shown
        sh.run_cell("%lash mcp remove chatty")
    finally:
        sh.close()


def test_a_spinner_redrawn_with_carriage_returns_keeps_what_the_line_ends_with(chatty):
    # npx draws its download spinner with '\r' on one line; the error a terminal shows last
    # on that line is what the error output keeps, not 8 KB of spinner cut short
    async def body():
        server = MCPServer.stdio("chatty", sys.executable, str(chatty),
                                 env={"SLACK_BOT_TOKEN": TOKEN, "SPINNER": "3000"})
        await server.start()
        try:
            await _wait_for(lambda: "ready" in server.error_output, "ready")
            return server.error_output
        finally:
            await server.aclose()

    assert asyncio.run(body()).splitlines() == [
        "npm error 404 Not Found - GET https://registry.example/nope [redacted]", "ready"]
