"""The first call of an MCP tool that declares an output schema does not hold the event loop.

The mcp SDK checks such a result with ``jsonschema``, which it imports on the first call; that
import builds dozens of grammar parsers (1.5 s on a loaded 2-core machine), on the loop, so
Stop and the live widget waited and the notebook printed "tool 'shout' held the event loop ...
make it a plain def" under a tool the user never wrote (notebooks/05-tools-and-mcp.ipynb).
The server's start now loads it on a thread. Run in a fresh interpreter: another test of this
process may have imported it already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp_stdio import stdio_server

_SERVER = stdio_server(
    "shout",
    tools='[{"name": "shout", "inputSchema": {"type": "object", "properties": {"text": '
          '{"type": "string"}}}, "outputSchema": {"type": "object", "properties": {"result": '
          '{"type": "string"}}, "required": ["result"]}}]',
    on_call='send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", '
            '"text": "HI!"}], "structuredContent": {"result": "HI!"}}})')

_SCRIPT = '''
import asyncio, json, logging, sys

from lash_nb import LashCore, MCPServer
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

warnings = []
handler = logging.Handler()
handler.emit = lambda record: warnings.append(record.getMessage())
logging.getLogger("lash_nb").addHandler(handler)


def model(request):
    done = request.messages[-1].tool_results()
    return "done" if done else [tool_call("shout", '{"text": "hi"}', "c1")]


async def main():
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").build()
    session = await core.session("s").open()
    await session.tools().add_server(MCPServer.stdio("loud", sys.executable, sys.argv[1]))
    loaded_at_start = "jsonschema" in sys.modules
    out = (await session.turn("shout hi").run()).result
    await core.close()
    print(json.dumps({"loaded_at_start": loaded_at_start, "outcome": str(out.outcome),
                      "output": out.tool_calls[0].output, "warnings": warnings}))


asyncio.run(main())
'''


def test_the_first_call_of_a_tool_with_an_output_schema_finds_its_validator_loaded(
        tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    server = tmp_path / "shout_server.py"
    server.write_text(_SERVER)
    script = tmp_path / "first_call.py"
    script.write_text(_SCRIPT)
    run = subprocess.run([sys.executable, str(script), str(server)], capture_output=True,
                         text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["outcome"] == "finished: assistant_message"
    assert got["output"] == {"result": "HI!"}
    assert got["loaded_at_start"] is True  # loaded by the start, off the loop
    assert not [w for w in got["warnings"] if "held the event loop" in w], got["warnings"]
