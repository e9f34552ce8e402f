"""The cost of taking what a tool prints (ADR 197) for a tool that prints nothing: a whole turn
with one quiet ``inline`` tool call (in-memory store, scripted model), and the capture alone
(``capturing`` around nothing) with the loggers a bare interpreter has and with 600 more (a
kernel that imported pandas, matplotlib, httpx...: each logger's handlers are looked at when
the first call starts). Run it with ``PYTHONPATH`` on this tree and on main to compare the
turns: main has no capture and prints only the turn. Prints numbers; asserts nothing.

    flock /work/wt/_briefs/machine.lock .venv/bin/python benchmarks/tool_prints.py
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from lash_nb import LashCore, tool  # noqa: E402
from lash_nb.providers import FunctionProvider  # noqa: E402
from lash_nb.testing import tool_call  # noqa: E402

TURNS = 400
ROUNDS = 5


@tool(inline=True)
def quiet(n: int) -> int:
    """Return n."""
    return n


def model(request: object) -> object:
    last = list(request.messages)[-1]  # type: ignore[attr-defined]
    if any(p.kind.value == "tool_result" for p in last.parts):
        return "done"
    return [tool_call("quiet", '{"n": 1}')]


async def turns() -> float:
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(quiet).build()
    s = await core.session("s").open()
    for _ in range(20):
        await s.turn("go").run()
    t0 = time.perf_counter()
    for _ in range(TURNS):
        await s.turn("go").run()
    took = (time.perf_counter() - t0) / TURNS
    await core.close()
    return took


def capture_alone() -> float:
    from lash_nb._runtime.tool_print import Printed

    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        with Printed(65_536):
            pass
    return (time.perf_counter() - t0) / n


def main() -> None:
    per_turn = [asyncio.run(turns()) for _ in range(ROUNDS)]
    print(f"turn with one quiet tool call: median {statistics.median(per_turn) * 1e6:,.0f} us "
          f"(min {min(per_turn) * 1e6:,.0f}) over {ROUNDS} x {TURNS} turns")
    try:
        import lash_nb._runtime.tool_print  # noqa: F401
    except ImportError:
        print("no capture in this tree (main)")
        return
    bare = statistics.median(capture_alone() for _ in range(ROUNDS))
    for i in range(600):
        logging.getLogger(f"lib{i}.sub")
    many = statistics.median(capture_alone() for _ in range(ROUNDS))
    print(f"capture of one quiet call: {bare * 1e6:.1f} us; with 600 more loggers "
          f"{many * 1e6:.1f} us")


if __name__ == "__main__":
    main()
