"""Tool dispatch overhead per call: a ``@tool`` with argument validation (goal: under 50 us
for a small model), the same call without validation for comparison, the approval check
(``always`` should cost next to nothing; ``ask`` answered by a callback), a whole tool round
trip in a turn, and an MCP call over stdio (mcp-server-time, or server-everything). Prints
numbers; asserts nothing.

    .venv/bin/python benchmarks/tool_dispatch.py [MCP_SERVERS_DIR]

MCP_SERVERS_DIR (or LASH_NB_MCP_SERVERS) is where ``python tests/mcp_servers.py DIR``
installed the servers; without one the MCP part is skipped.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# benchmarks/queue.py would shadow the standard library's queue (the mcp SDK imports it)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from lash_nb import LashCore, MCPServer, tool
from lash_nb._core.cancel import CancellationToken
from lash_nb._core.tools import ToolContext, ToolRegistry
from lash_nb._runtime.approval import Approvals
from lash_nb._runtime.tool_batch import ToolBatch
from lash_nb.providers import FunctionProvider, LlmPart
from lash_nb.testing import tool_call

CALLS = 20_000
CTX = ToolContext("bench", "turn", "call")


@dataclass
class Point:
    x: int
    y: int


@tool(inline=True)
def small(n: int, label: str, p: Point, scale: float = 1.0) -> int:
    """A small model: four fields, one nested dataclass."""
    return n


def plain(n: int, label: str, p: dict, scale: float = 1.0) -> int:
    return n


ARGS = {"n": 3, "label": "a", "p": {"x": 1, "y": 2}, "scale": 2.0}
COERCED = {"n": "3", "label": "a", "p": {"x": "1", "y": 2}}  # strings to coerce


def per_call_us(fn, n: int = CALLS) -> float:
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best.append((time.perf_counter() - t0) / n * 1e6)
    return min(best)


async def execute_us(args: dict) -> float:
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(CALLS):
            await small.execute("small", args, CTX)
        best.append((time.perf_counter() - t0) / CALLS * 1e6)
    return min(best)


async def batch_us(approvals: Approvals | None, n: int = 5000) -> float:
    """One call through ``ToolBatch`` (what a turn runs per tool call: lookup, approval,
    validation, the function, the record and two events)."""
    registry = ToolRegistry()
    registry.add_source(small, "base:0")
    call = [LlmPart.tool_call("c1", "small", '{"n": 3, "label": "a", "p": {"x": 1, "y": 2}}')]
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await ToolBatch(call, registry=registry, session_id="bench", turn_id="turn",
                            emit=lambda e, c: None, records=[], token=CancellationToken(),
                            approvals=approvals).run()
        best.append((time.perf_counter() - t0) / n * 1e6)
    return min(best)


def approvals_with(default: str = "always", approver=None, overrides: int = 0) -> Approvals:
    a = Approvals()
    a.set_policy(default)
    for i in range(overrides):
        a.set_policy("never", tool=f"other_{i}")
    a.set_approver(approver)
    return a


async def turn_round_trip_ms(turns: int = 200) -> float:
    def model(request):
        if request.messages[-1].tool_results():
            return "ok"
        return [tool_call("small", '{"n": "3", "label": "a", "p": {"x": 1, "y": 2}}', "c1")]

    core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(small).build()
    s = await core.session("bench").open()
    times = []
    for _ in range(turns):
        t0 = time.perf_counter()
        await s.turn("go").run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def mcp_call_us(root: Path) -> None:
    time_exe = root / "venv/bin/mcp-server-time"
    js = root / "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    servers = []
    if js.exists():
        servers.append((MCPServer.stdio("everything", "node", str(js), "stdio"), "echo",
                        {"message": "hi"}))
    if time_exe.exists():
        servers.append((MCPServer.stdio("time", str(time_exe)), "get_current_time",
                        {"timezone": "UTC"}))
    for server, name, args in servers:
        t0 = time.perf_counter()
        await server.start()
        started = (time.perf_counter() - t0) * 1000
        for _ in range(20):
            await server.execute(name, args, CTX)
        n = 500
        t0 = time.perf_counter()
        for _ in range(n):
            await server.execute(name, args, CTX)
        per = (time.perf_counter() - t0) / n * 1e6
        await server.aclose()
        print(f"MCP over stdio, {server.name} {name}: {per:8.1f} us per call "
              f"(start + list tools: {started:.0f} ms)")


async def main() -> None:
    validate = small.arguments.validate
    print(f"validation only, small model:            {per_call_us(lambda: validate(ARGS)):8.2f} us")
    print(f"validation only, with coercion:          {per_call_us(lambda: validate(COERCED)):8.2f} us")
    print(f"plain call, no validation (baseline):    {per_call_us(lambda: plain(**ARGS)):8.2f} us")
    print(f"FunctionTool.execute (inline) validated: {await execute_us(ARGS):8.2f} us   goal < 50 us")
    print(f"FunctionTool.execute, with coercion:     {await execute_us(COERCED):8.2f} us")
    always = approvals_with()
    lookup = lambda: always.policy_for("small", "base:0", small)  # noqa: E731
    print(f"approval check alone, always:            {per_call_us(lookup):8.2f} us")
    crowded = approvals_with(overrides=50)
    lookup = lambda: crowded.policy_for("small", "base:0", small)  # noqa: E731
    print(f"approval check alone, 50 overrides:      {per_call_us(lookup):8.2f} us")
    print(f"ToolBatch call, no approval check:       {await batch_us(None):8.2f} us")
    print(f"ToolBatch call, approval check (always): {await batch_us(always):8.2f} us")
    print(f"ToolBatch call, never (denied):          {await batch_us(approvals_with('never')):8.2f} us")
    asked = approvals_with("ask", approver=lambda r: True)
    print(f"ToolBatch call, ask + sync callback:     {await batch_us(asked):8.2f} us")
    print(f"turn with one tool round trip (median):  {await turn_round_trip_ms():8.2f} ms")
    root = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LASH_NB_MCP_SERVERS")
    if root:
        await mcp_call_us(Path(root))
    else:
        print("MCP: skipped (pass the folder tests/mcp_servers.py installed the servers into)")


if __name__ == "__main__":
    asyncio.run(main())
