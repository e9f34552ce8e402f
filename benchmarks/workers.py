"""Queue workers on PostgreSQL: drain throughput with 1, 2 and 4 worker processes, and
enqueue-to-start latency (LISTEN/NOTIFY wake-up of idle workers).

    .venv/bin/python benchmarks/workers.py [--dsn postgresql://...] [--batches 400]

Without ``--dsn`` a throwaway server is started from the Debian packages (tests/pg_fixture.py;
fsync off). The provider is the offline model with zero delay, so the numbers are the cost of
lash_nb itself: claim, two commits, lease, events. Times come from the server clock
(``queue_history``: enqueued / claimed / finished ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/queue.py would shadow the stdlib ``queue`` that psycopg imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT / "tests"))

from lash_nb._runtime.core import LashCore  # noqa: E402
from lash_nb.providers import OfflineProvider  # noqa: E402


def _workers(dsn: str, n: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "lash_nb", "worker", "--store", dsn, "--all", "--delay", "0",
           "--concurrency", str(concurrency), "--poll", "1.0"]
    return [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(n)]


def _wait_for(store: Any, sql: str, want: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while int(store.query(sql)["n"][0]) < want:
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for: {sql}")
        time.sleep(0.01)


def _wait_listening(store: Any, n: int) -> None:
    """Every worker has opened its LISTEN connection (it is idle and ready)."""
    _wait_for(store, "SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'LISTEN lash_cancel'", n)


async def _enqueue(core: LashCore, sessions: int, per_session: int) -> float:
    handles = [await core.session(f"s{k:03d}").open() for k in range(sessions)]
    t0 = time.perf_counter()
    for i in range(per_session):
        for s in handles:
            await s.enqueue(f"{s.session_id} batch {i}")
    return time.perf_counter() - t0


def drain(server: Any, n_workers: int, batches: int, sessions: int, concurrency: int) -> None:
    dsn = server.create_database("bench")
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(dsn).build()
    store = core.store
    procs = _workers(dsn, n_workers, concurrency)
    try:
        _wait_listening(store, n_workers)
        enq_s = asyncio.run(_enqueue(core, sessions, batches // sessions))
        total = sessions * (batches // sessions)
        _wait_for(store, "SELECT count(*) AS n FROM queue_history", total)
        df = store.query("SELECT min(enqueued_at_ms) AS a, max(finished_at_ms) AS b, "
                         "count(*) AS n FROM queue_history WHERE final_state = 'completed'")
        span_s = (int(df["b"][0]) - int(df["a"][0])) / 1000
        print(f"  {n_workers} worker(s) x concurrency {concurrency}: {total} turns in "
              f"{span_s:6.2f} s = {total / span_s:7.1f} turns/s   (enqueue: {total / enq_s:6.0f} "
              "batches/s from one process)")
    finally:
        _stop(procs, store)


def _stop(procs: list[Any], store: Any) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
    store.close_sync()


def latency(server: Any, samples: int) -> None:
    dsn = server.create_database("bench")
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(dsn).build()
    store = core.store
    procs = _workers(dsn, 2, 1)
    try:
        _wait_listening(store, 2)

        async def one_at_a_time() -> None:
            s = await core.session("lat").open()
            for i in range(samples):
                await s.enqueue(f"ping {i}")
                while int((await store.query_async(
                        "SELECT count(*) AS n FROM queue_history"))["n"][0]) <= i:
                    await asyncio.sleep(0.005)

        asyncio.run(one_at_a_time())
        df = store.query("SELECT claimed_at_ms - enqueued_at_ms AS start_ms, "
                         "finished_at_ms - enqueued_at_ms AS done_ms FROM queue_history")
        start = sorted(int(v) for v in df["start_ms"])
        done = sorted(int(v) for v in df["done_ms"])
        p95 = max(0, int(len(start) * 0.95) - 1)
        print(f"  enqueue -> claimed by an idle worker: median {statistics.median(start):5.1f} ms, "
              f"p95 {start[p95]} ms, max {start[-1]} ms  (workers poll every 1.0 s; "
              "NOTIFY wakes them)")
        print(f"  enqueue -> turn committed:            median {statistics.median(done):5.1f} ms, "
              f"p95 {done[p95]} ms  ({samples} samples, one at a time)")
    finally:
        _stop(procs, store)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dsn", default=None, help="maintenance DSN of a server to use")
    ap.add_argument("--batches", type=int, default=400)
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=2, help="lanes per worker process")
    ap.add_argument("--samples", type=int, default=40)
    args = ap.parse_args()
    from pg_fixture import PgServer, start_postgres

    server = PgServer(args.dsn) if args.dsn else start_postgres(fast=True)
    try:
        import psycopg

        with psycopg.connect(server.dsn) as con:
            version = con.execute("SHOW server_version").fetchone()[0]
            fsync = con.execute("SHOW fsync").fetchone()[0]
        print(f"PostgreSQL {version} (fsync={fsync}), {os.cpu_count()} CPUs, offline provider "
              "delay 0")
        print(f"drain: {args.batches} batches over {args.sessions} sessions, enqueued while "
              "the workers wait")
        for n in (1, 2, 4):
            drain(server, n, args.batches, args.sessions, args.concurrency)
        print("latency:")
        latency(server, args.samples)
    finally:
        if not args.dsn:
            server.stop()


if __name__ == "__main__":
    main()
