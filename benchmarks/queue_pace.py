"""The queue's cost to the turns around it, per store, in one run (issue 21 rows 3-4, 6-7).

Zero-latency model (``FunctionProvider``), a fresh session per measure (3 warm turns of
history), medians of interleaved rounds:

- **plain turn while work is queued**: ``s.turn(...)`` with 0 / 1 / 1,000 batches queued
  (default policy ``after_current_turn_commit``: nothing is eligible at the turn's
  checkpoints, so the queue should cost nothing);
- **drain overhead**: ``queued_turn().run()`` of one exclusive batch minus a plain turn run
  just before it (median of 12 pairs), with 1 / 100 / 1,000 batches queued behind it;
- **enqueue**: one at a time (``await`` each) and a burst (``asyncio.gather`` of 1,000), the
  burst also as CPU time of the process (less load-dependent than its rate);
- **await_queued_work_batch**: a drain in the same process at a random delay (10-200 ms) of a
  turn whose model takes 30 ms; how long after ``queued_turn().run()`` returned the wait
  returned (negative: woken by the commit before the drain's own bookkeeping ended, or at the
  claim), and how often the awaited turn was not committed yet when it returned (at the
  claim: the old meaning).

    python benchmarks/queue_pace.py [--rounds 5] [--pg DSN] [--against OLD_CHECKOUT]

``--against``: each round runs this checkout and the other one in child processes, in turn
(old vs new in one run on one machine; compare within a row).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider


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
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m").store(store).build()

    async def fresh(phase: str):  # a session per phase: no queue left over from the last
        s = await core.session(f"r{rnd}-{phase}").open()
        for _ in range(3):
            await s.turn("warm").run()
        return s

    for depth in (0, 1, 1000):
        s = await fresh(f"plain{depth}")
        await _fill(s, depth)
        results[f"plain turn, depth {depth:>5}"].append(_med(await _turns(s, 15)))
    for depth in (1, 100, 1000):
        s = await fresh(f"drain{depth}")
        await _fill(s, depth)
        overheads, cpu = [], []
        for _ in range(12):  # a plain turn and a drain in pairs: load swings hit both alike
            c = time.process_time()
            plain = (await _turns(s, 1))[0]
            plain_cpu = time.process_time() - c
            await _fill(s, depth)
            t, c = time.perf_counter(), time.process_time()
            await s.queued_turn().run()
            drain = (time.perf_counter() - t) * 1000
            overheads.append(drain - plain)
            cpu.append((time.process_time() - c - plain_cpu) * 1000)
        results[f"drain overhead, depth {depth:>5}"].append(_med(overheads))
        results[f"drain overhead, depth {depth:>5}: CPU ms"].append(_med(cpu))
    s = await fresh("one")
    n = 200
    t = time.perf_counter()
    for i in range(n):
        await s.enqueue(f"one {i}").send()
    results["enqueue one at a time (batches/s)"].append(n / (time.perf_counter() - t))
    for b in range(3):  # the process's first burst pays first-use costs: 3, their median
        s = await fresh(f"burst{b}")
        t, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(s.enqueue(f"burst {i}").send() for i in range(1000)))
        results["enqueue burst of 1,000 (batches/s)"].append(1000 / (time.perf_counter() - t))
        # CPU of every thread of this process: moves less with the machine's load than the rate
        results["enqueue burst of 1,000: CPU ms, all threads"].append(
            (time.process_time() - cpu) * 1000)
    # the awaited drains call a model that takes 30 ms: a wait that returns at the claim is
    # then seen returning before the commit
    async def slow(r):
        await asyncio.sleep(0.03)
        return "ok"

    slow_core = LashCore.builder().provider(FunctionProvider(slow)).model("m").store(store).build()
    s = await slow_core.session(f"r{rnd}-await").open()
    lat, early = [], 0
    for i in range(10):
        batch = await s.enqueue("awaited").send()

        async def drain_later() -> float:
            await asyncio.sleep(random.uniform(0.01, 0.2))
            await s.queued_turn().run()
            return time.perf_counter()

        drainer = asyncio.ensure_future(drain_later())
        await s.await_queued_work_batch(batch.batch_id)
        done = time.perf_counter()
        if len(await store.load_turns(s.session_id)) < i + 1:
            early += 1  # the awaited batch's turn is not committed yet
        committed = await drainer
        lat.append((done - committed) * 1000)
    results["await: return minus drain's return (median)"].append(_med(lat))
    results["await: returned before the commit (of 10)"].append(early)
    await core.close()


def _med(xs: list[float]) -> float:
    return statistics.median(xs)


def _stores(args: argparse.Namespace) -> dict[str, Any]:
    from lash_nb.stores import DuckDBStore, MemoryStore

    tmp = tempfile.mkdtemp()
    stores: dict[str, Any] = {
        "memory": lambda r: MemoryStore(),
        "duckdb": lambda r: DuckDBStore(str(Path(tmp) / f"q{r}.duckdb")),
    }
    if args.pg:
        from lash_nb.stores import PostgresStore

        def fresh_pg(r: int) -> Any:  # a new database per round: no rows left over
            import uuid

            import psycopg

            name = f"lash_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(args.pg, autocommit=True) as con:
                con.execute(f'CREATE DATABASE "{name}"')
            return PostgresStore(args.pg.rsplit("/", 1)[0] + "/" + name)

        stores["postgres"] = fresh_pg
    return stores


async def one_child_round(args: argparse.Namespace) -> None:
    results: dict[str, defaultdict[str, list[float]]] = {}
    for name, make in _stores(args).items():
        results[name] = defaultdict(list)
        await one_round(make, results[name], args.round)
    print(json.dumps(results))


def interleaved(args: argparse.Namespace) -> None:
    """Each round runs this checkout and the ``--against`` one in child processes, in turn."""
    here = str(Path(__file__).resolve().parents[1])
    code = {"new": here, "old": args.against}
    got: dict[str, dict[str, defaultdict[str, list[float]]]] = {k: {} for k in code}
    for rnd in range(args.rounds):
        for label in (("new", "old") if rnd % 2 == 0 else ("old", "new")):
            env = dict(os.environ, PYTHONPATH=code[label])
            cmd = [sys.executable, __file__, "--child", "--round", str(rnd)]
            if args.pg:
                cmd += ["--pg", args.pg]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                                 cwd=tempfile.gettempdir())
            for store, rows in json.loads(out.stdout.strip().splitlines()[-1]).items():
                into = got[label].setdefault(store, defaultdict(list))
                for k, v in rows.items():
                    into[k] += v
    print(f"{args.rounds} interleaved rounds (child processes), medians; ms unless stated")
    print(f"  new = {here}\n  old = {args.against}")
    for store in got["new"]:
        print(f"== {store}{'':37s} {'old':>10s} {'new':>10s}")
        for k, v in got["new"][store].items():
            old = got["old"].get(store, {}).get(k)
            o = f"{statistics.median(old):10.2f}" if old else f"{'-':>10s}"
            print(f"  {k:45s} {o} {statistics.median(v):10.2f}")


async def main(args: argparse.Namespace) -> None:
    stores = _stores(args)
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
    ap.add_argument("--pg", default=None,
                    help="a PostgreSQL maintenance DSN (…/postgres): a database per round")
    ap.add_argument("--against", default=None,
                    help="another checkout's root (e.g. `git archive` of main): old vs new")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        asyncio.run(one_child_round(a))
    elif a.against:
        interleaved(a)
    else:
        asyncio.run(main(a))
