"""A huge tool output (ADR 174): the time and the memory it costs to make it what the session
keeps, beside the pipeline before the bound (clean, scrub the provider key, the request's
text: all of it whole) measured in the same run, and a whole turn's event-loop stall.

For each output (a 100 MB log str, a dict of a million items, a list of a million ints,
40 MB of bytes) it prints:
- ``made``: the time to build the output in the tool (the floor: the tool's own cost);
- ``bounded``: ``ToolBatch``'s shaping (bound, clean, scrub) of it, and the peak memory it
  allocated (tracemalloc, a separate run);
- ``whole``: what the turn did before (``clean_json(jsonable(x))``, the provider key's
  ``scrub_value``, ``as_text`` for the request), with its peak memory, and the length of the
  text that went to every later request.
Then one turn (FunctionProvider, DuckDB store in a temp dir) with a tool returning 10 log
lines (the peer) and one with the 100 MB log: its wall time, the longest gap a 10 ms ticker
on the loop saw (the stall), the request size.
Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/tool_output.py
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

# benchmarks/queue.py would shadow the standard library's queue
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from lash_nb import LashCore, tool  # noqa: E402
from lash_nb._core.cancel import CancellationToken  # noqa: E402
from lash_nb._core.secrets import Scrubber  # noqa: E402
from lash_nb._core.text import clean_json  # noqa: E402
from lash_nb._core.tools import ToolRegistry  # noqa: E402
from lash_nb._runtime.tool_batch import ToolBatch  # noqa: E402
from lash_nb._runtime.turn_records import as_text, jsonable  # noqa: E402
from lash_nb.providers import FunctionProvider  # noqa: E402
from lash_nb.stores import DuckDBStore  # noqa: E402
from lash_nb.testing import tool_call  # noqa: E402

KEY = "lnb-bench-key-0123456789"
LINE = "2026-12-01T10:00:00 INFO worker-3 processed a batch of 512 rows\n"
SCRUB = Scrubber([KEY]).scrub_value


def outputs() -> dict[str, Callable[[], Any]]:
    return {
        "log str 100 MB": lambda: LINE * (100_000_000 // len(LINE)),
        "dict 1M items": lambda: {f"row{i}": {"n": i, "ok": True} for i in range(1_000_000)},
        "list 1M ints": lambda: list(range(1_000_000)),
        "bytes 40 MB": lambda: b"\x00\x01binary\n" * 4_000_000,
    }


def batch() -> ToolBatch:
    return ToolBatch([], registry=ToolRegistry(), session_id="s", turn_id="t",
                     emit=lambda e, c: None, records=[], token=CancellationToken(),
                     scrub_output=SCRUB)


def bounded_now(value: Any) -> Any:
    return batch()._shaped("c1", value)


def whole_before(value: Any) -> str:
    out = SCRUB(clean_json(jsonable(value)))
    return as_text(out)


def timed(fn: Callable[[Any], Any], value: Any) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn(value)
    return time.perf_counter() - t0, out


def peak_mb(fn: Callable[[Any], Any], value: Any) -> float:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(value)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1e6


def shaping() -> None:
    print(f"{'output':<16} {'made s':>8} {'bounded s':>10} {'peak MB':>8} {'kept chars':>11}"
          f" | {'before s':>9} {'peak MB':>8} {'request chars':>14}")
    for name, make in outputs().items():
        t0 = time.perf_counter()
        value = make()
        made = time.perf_counter() - t0
        t_new, new = timed(bounded_now, value)
        t_old, old = timed(whole_before, value)
        m_new, m_old = peak_mb(bounded_now, value), peak_mb(whole_before, value)
        kept = len(as_text(new))
        print(f"{name:<16} {made:>8.3f} {t_new:>10.3f} {m_new:>8.1f} {kept:>11,} | "
              f"{t_old:>9.3f} {m_old:>8.1f} {len(old):>14,}")
        del value, new, old


def turn(big: str, *, show: bool = True) -> None:

    @tool
    def read_log() -> str:
        """Read the log."""
        return big

    sent: list[int] = []

    def model(request: Any) -> Any:
        results = [len(r.content) for r in request.messages[-1].tool_results()]
        sent.extend(results)
        return [tool_call("read_log", "{}", "c1")] if not results else "done"

    async def body(path: Path) -> tuple[float, float]:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            read_log).store(DuckDBStore(path, idle_release_s=None)).build()
        s = await core.session("s").open()
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            last = loop.time()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        await s.turn("read the log").run()
        wall = time.perf_counter() - t0
        stop.set()
        await tick
        await core.close()
        return wall, max(gaps)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        wall, stall = asyncio.run(body(path))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    if show:
        print(f"turn with a {len(big):,}-character tool output: {wall:.3f} s wall, longest loop "
              f"gap {stall * 1000:.0f} ms (ticker every 10 ms), model sent {sent[0]:,} "
              f"characters of it, store files {size / 1e6:.1f} MB")


if __name__ == "__main__":
    shaping()
    print()
    turn(LINE * 10, show=False)  # warm: imports and the store's first open
    turn(LINE * 10)  # the peer: the same turn with a small output
    turn(LINE * (100_000_000 // len(LINE)))
