"""The queue's cost to the turns around it, per store, in one run (issue 21 rows 3-4, 6-7).

Zero-latency model (``FunctionProvider``), one session, medians of interleaved rounds:

- **plain turn while work is queued**: ``s.turn(...)`` with 0 / 1 / 1,000 batches queued
  (default policy ``after_current_turn_commit``: nothing is eligible at the turn's
  checkpoints, so the queue should cost nothing);
- **drain overhead**: ``queued_turn().run()`` of one exclusive batch minus a plain turn, with
  1 / 100 / 1,000 batches queued behind it;
- **enqueue**: one at a time (``await`` each) and a burst (``asyncio.gather`` of 1,000);
- **await_queued_work_batch**: a drain in the same process at a random delay; the wait
  should return at the drain's commit (never before it: ``early`` counts returns before the
  commit) and how long after it.

    python benchmarks/queue_pace.py [--rounds 5] [--pg DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider


async def _session(store, sid: str):
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m").store(store).build()
    return core, await core.session(sid).open()


async def _turns(s, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        await s.turn(f"plain {i}").run()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def _fill(s, depth: int) -> None:
    have = len(await s.queued_work())
    await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(max(0, depth - have))))


async def one_round(make_store, results: defaultdict[str, list[float]], rnd: int) -> None:
    store = make_store(rnd)
    core, s = await _session(store, f"r{rnd}")
    for _ in range(3):  # warm
        await s.turn("warm").run()
    for depth in (0, 1, 1000):
        await _fill(s, depth)
        results[f"plain turn, depth {depth:>5}"].append(_med(await _turns(s, 15)))
        for b in list(await s.queued_work()):
            await s.cancel_queued_work_batch(b.batch_id)
    for depth in (1, 100, 1000):
        await _fill(s, depth)
        plain = _med(await _turns(s, 10))
        drains = []
        for _ in range(10):
            await _fill(s, depth)
            t = time.perf_counter()
            await s.queued_turn().run()
            drains.append((time.perf_counter() - t) * 1000)
        results[f"drain overhead, depth {depth:>5}"].append(_med(drains) - plain)
        for b in list(await s.queued_work()):
            await s.cancel_queued_work_batch(b.batch_id)
    n = 200
    t = time.perf_counter()
    for i in range(n):
        await s.enqueue(f"one {i}").send()
    results["enqueue one at a time (batches/s)"].append(n / (time.perf_counter() - t))
    for b in list(await s.queued_work()):
        await s.cancel_queued_work_batch(b.batch_id)
    t = time.perf_counter()
    await asyncio.gather(*(s.enqueue(f"burst {i}").send() for i in range(1000)))
    results["enqueue burst of 1,000 (batches/s)"].append(1000 / (time.perf_counter() - t))
    for b in list(await s.queued_work()):
        await s.cancel_queued_work_batch(b.batch_id)
    lat, early = [], 0
    for _ in range(10):
        batch = await s.enqueue("awaited").send()

        async def drain_later() -> float:
            await asyncio.sleep(random.uniform(0.01, 0.2))
            await s.queued_turn().run()
            return time.perf_counter()

        drainer = asyncio.ensure_future(drain_later())
        await s.await_queued_work_batch(batch.batch_id)
        done = time.perf_counter()
        if not drainer.done():
            early += 1
        committed = await drainer
        lat.append(max(0.0, done - committed) * 1000)
    results["await latency after the commit"].append(_med(lat))
    results["await returned before the commit (of 10)"].append(early)
    await core.close()


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


async def main(args: argparse.Namespace) -> None:
    from lash_nb.stores import DuckDBStore, MemoryStore

    tmp = tempfile.mkdtemp()
    stores = {
        "memory": lambda r: MemoryStore(),
        "duckdb": lambda r: DuckDBStore(str(Path(tmp) / f"q{r}.duckdb")),
    }
    if args.pg:
        from lash_nb.stores import PostgresStore

        stores["postgres"] = lambda r: PostgresStore(args.pg)
    results: dict[str, defaultdict[str, list[float]]] = {k: defaultdict(list) for k in stores}
    for rnd in range(args.rounds):  # interleaved: every store once per round
        for name, make in stores.items():
            await one_round(make, results[name], rnd)
    for name, res in results.items():
        print(f"== {name} ({args.rounds} rounds, medians; ms unless stated)")
        for k, v in res.items():
            print(f"  {k:45s} {statistics.median(v):10.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pg", default=None, help="a PostgreSQL DSN to include PostgresStore")
    asyncio.run(main(ap.parse_args()))
