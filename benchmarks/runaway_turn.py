"""A runaway turn: a model that always calls a tool, cancelled after N model calls.

Measures how long the turn takes to end once the cancel arrives (settle + final commit) and
the per-call cost while it runs, on the in-memory and DuckDB stores. Before issue 13 a turn
of 21,277 calls took 39 s to commit its cancel.

    python benchmarks/runaway_turn.py [--calls 5000] [--store memory|duckdb|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/queue.py would shadow the standard library's queue module

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmPart, LlmResponse, TerminalReason
from lash_nb.providers import FunctionProvider


@tool
async def poke(n: int) -> str:
    """Pokes."""
    return f"poked {n}"


async def one(store: object, calls: int) -> dict[str, float]:
    count = {"n": 0}
    reached = asyncio.Event()

    def model(request):
        count["n"] += 1
        if count["n"] >= calls:
            reached.set()
        return LlmResponse(parts=(LlmPart.tool_call(f"c{count['n']}", "poke",
                                                    f'{{"n": {count["n"]}}}'),),
                           terminal_reason=TerminalReason.TOOL_USE)

    core = (LashCore.builder().provider(FunctionProvider(model)).model("m").tools(poke)
            .store(store).max_turns(None).build())
    session = await core.session("s").open()
    builder = session.turn("go")
    t0 = time.perf_counter()
    task = asyncio.ensure_future(builder.run())
    await reached.wait()
    t_run = time.perf_counter() - t0
    builder.token.cancel("bench")
    t1 = time.perf_counter()
    out = await task
    t_cancel = time.perf_counter() - t1
    assert str(out.result.outcome) == "stopped: cancelled", out.result.outcome
    await core.close()
    return {"calls": count["n"], "run_s": t_run, "per_call_ms": 1000 * t_run / count["n"],
            "cancel_to_committed_s": t_cancel}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--store", default="both", choices=("memory", "duckdb", "both"))
    a = ap.parse_args()
    kinds = ("memory", "duckdb") if a.store == "both" else (a.store,)
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            store = None if kind == "memory" else str(Path(tmp) / "lash.duckdb")
            r = asyncio.run(one(store, a.calls))
        print(f"{kind:7s} calls={r['calls']:6d} run={r['run_s']:7.2f}s "
              f"per_call={r['per_call_ms']:6.3f}ms cancel->committed={r['cancel_to_committed_s']:6.2f}s")


if __name__ == "__main__":
    main()
