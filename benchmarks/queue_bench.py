"""Queue numbers: enqueue rate and drain overhead per batch.

Zero-latency model. Each store (memory, DuckDB file) gets: N enqueues (rate), N drains of one
exclusive batch each (drain overhead = drain turn time minus a plain turn's time).
``benchmarks/queue_pace.py`` has the queue's cost to the turns around it by depth, bursts, and
``await_queued_work_batch`` (which returns at the commit, ADR 65), old against new.

    python benchmarks/queue_bench.py [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider


async def bench(label: str, store) -> None:
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m").store(store).build()
    s = await core.session("q").open()
    n = ARGS.n
    t0 = time.perf_counter()
    for i in range(n):
        await s.enqueue(f"item {i}").send()
    enqueue_s = time.perf_counter() - t0
    drains = []
    for _ in range(n):
        t = time.perf_counter()
        await s.queued_turn().run()
        drains.append((time.perf_counter() - t) * 1000)
    plain = []
    for i in range(min(n, 200)):
        t = time.perf_counter()
        await s.turn(f"plain {i}").run()
        plain.append((time.perf_counter() - t) * 1000)
    print(f"{label:14s} enqueue {n / enqueue_s:9.0f} batches/s | drain turn median "
          f"{statistics.median(drains):6.2f} ms vs plain turn {statistics.median(plain):6.2f} ms "
          f"(overhead {statistics.median(drains) - statistics.median(plain):+.2f} ms)")
    await core.close()


async def main() -> None:
    from lash_nb.stores import MemoryStore

    await bench("memory", MemoryStore())
    try:
        from lash_nb.stores import DuckDBStore
    except ImportError:
        print("duckdb store not available")
        return
    with tempfile.TemporaryDirectory() as tmp:
        await bench("duckdb file", DuckDBStore(str(Path(tmp) / "q.duckdb")))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ARGS = ap.parse_args()
    asyncio.run(main())
