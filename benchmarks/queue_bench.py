"""Queue numbers: enqueue rate, drain overhead per batch, await latency.

Zero-latency model. Each store (memory, DuckDB file) gets: N enqueues (rate), N drains of one
exclusive batch each (drain overhead = drain turn time minus a plain turn's time), and the
latency from a drain's return to ``await_queued_work_batch`` returning, the drain started after
a random 10-200 ms (a fixed delay can line up with a poll schedule and flatter it). The wait
returns at the drain's commit (ADR 65), woken in-process; the drain's own bookkeeping after its
commit can make the difference negative. ``benchmarks/queue_pace.py`` has the queue's cost
to the turns around it, old against new.

    python benchmarks/queue_bench.py [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import random
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
    waits = []
    for i in range(20):
        batch = await s.enqueue(f"awaited {i}").send()

        async def drain_later():
            await asyncio.sleep(random.uniform(0.01, 0.2))
            await s.queued_turn().run()
            return time.perf_counter()

        drainer = asyncio.ensure_future(drain_later())
        await s.await_queued_work_batch(batch.batch_id)
        done = time.perf_counter()
        finished = await drainer
        waits.append((done - finished) * 1000)
    print(f"{label:14s} enqueue {n / enqueue_s:9.0f} batches/s | drain turn median "
          f"{statistics.median(drains):6.2f} ms vs plain turn {statistics.median(plain):6.2f} ms "
          f"(overhead {statistics.median(drains) - statistics.median(plain):+.2f} ms) | await "
          f"latency after commit median {statistics.median(waits):5.1f} ms, max {max(waits):5.1f} ms")
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
