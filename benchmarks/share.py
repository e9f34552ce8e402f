"""A worker draining a queue and a notebook sharing one DuckDB file.

    .venv/bin/python benchmarks/share.py [--batches 300] [--pause 5 0.5]

Prints, side by side in one run:
- the worker's throughput (turns/s) draining the queue alone, and again while a notebook in
  this process runs a turn and then pauses ``--pause`` seconds (a person reading the answer;
  one column per pause) on the same file;
- the notebook's terminal-commit latency (median / p90) with the file to itself, and while
  the worker drains (that is the wait for the hand-over), and its open time while draining;
- the cost of the waiters' line on a store call that waits for nobody (an empty job's round
  trip with the line on and off).
Nothing is asserted.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore


def fill(path: Path, n: int) -> None:
    async def run() -> None:
        store = DuckDBStore(path, idle_release_s=0)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("queue").open()
        for i in range(n):
            await s.enqueue(f"queued question {i}").send()
        await store.close()

    asyncio.run(run())


class Worker:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all",
             "--poll", "0.05", "--exit-when-idle", "1.0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stamps: list[float] = []
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if " finished" in line or " stopped" in line:
                self.stamps.append(time.monotonic())
                self.started.set()

    def rate(self) -> float:
        s = self.stamps
        return (len(s) - 1) / (s[-1] - s[0]) if len(s) > 1 else 0.0


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, int(len(values) * q) - 1)]


def timed_commits(store: DuckDBStore, into: list[float]) -> None:
    """Record how long each terminal (finished-turn) commit takes, waiting included."""
    inner = store.commit

    async def commit(c: Any) -> Any:
        t = time.perf_counter()
        try:
            return await inner(c)
        finally:
            if c.turn is not None:
                into.append((time.perf_counter() - t) * 1000)

    store.commit = commit  # type: ignore[method-assign]


async def notebook_turns(path: Path, *, pause: float, until: Any, into: list[float],
                         limit: int = 10**6) -> tuple[float, int, int]:
    t = time.perf_counter()
    store = DuckDBStore(path, lock_timeout_s=120)
    opened_ms = (time.perf_counter() - t) * 1000
    timed_commits(store, into)
    core = LashCore.builder().provider(OfflineProvider(delay_s=0.005)).store(store).build()
    s = await core.session("nb").open()
    k = 0
    while not until() and k < limit:
        out = await s.turn(f"notebook question {k}").run()
        assert out.result.outcome.kind == "finished"
        k += 1
        await asyncio.sleep(pause)  # a human reading the answer
    opens, handovers = store.opens, store._worker.handovers
    await store.close()
    return opened_ms, opens, handovers


def empty_job_us(path: Path, n: int = 2000, rounds: int = 5) -> tuple[float, float]:
    """Best-of-rounds round trip of an empty store call, (line off, line on), interleaved."""
    store = DuckDBStore(path, idle_release_s=None)
    worker = store._worker
    saved = worker.line
    best = {False: float("inf"), True: float("inf")}
    try:
        worker.submit(lambda con: None).result()
        for _ in range(rounds):
            for on in (False, True):
                worker.line = saved if on else None
                t = time.perf_counter()
                for _ in range(n):
                    worker.submit(lambda con: None).result()
                best[on] = min(best[on], (time.perf_counter() - t) / n * 1e6)
    finally:
        worker.line = saved
        store.close_sync()
    return best[False], best[True]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--pause", type=float, nargs="+", default=[5.0, 0.5])
    args = ap.parse_args()
    shared: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as d:
        # 1. the notebook alone
        alone_path = Path(d) / "alone.duckdb"
        alone_commits: list[float] = []
        asyncio.run(notebook_turns(alone_path, pause=0.05, until=lambda: False,
                                   into=alone_commits, limit=30))
        # 2. the worker alone
        path = Path(d) / "lash.duckdb"
        fill(path, args.batches)
        w = Worker(path)
        w.proc.wait()
        rate_alone, n_alone = w.rate(), len(w.stamps)
        # 3. the worker draining while the notebook works at a person's pace
        for i, pause in enumerate(args.pause):
            path2 = Path(d) / f"shared{i}.duckdb"
            fill(path2, args.batches)
            w2 = Worker(path2)
            w2.started.wait(120)
            commits: list[float] = []
            opened_ms, opens, handovers = asyncio.run(notebook_turns(
                path2, pause=pause, until=lambda w2=w2: w2.proc.poll() is not None
                or len(w2.stamps) >= args.batches, into=commits))
            w2.proc.wait()
            shared.append({"pause": pause, "rate": w2.rate(), "n": len(w2.stamps), "commits": commits,
                               "opened_ms": opened_ms, "opens": opens, "handovers": handovers})
        line_off, line_on = empty_job_us(alone_path)

    def row(label: str, a: str, *b: str) -> None:
        print(f"  {label:<44} {a:>18}" + "".join(f" {x:>22}" for x in b))

    def ms(values: list[float], q: float | None) -> str:
        if not values:
            return "-"
        return f"{(statistics.median(values) if q is None else pct(values, q)):.1f}"

    print(f"one DuckDB file, {args.batches} queued batches (offline provider)")
    row("", "alone", *(f"notebook pause {x['pause']:g} s" for x in shared))
    row("worker throughput (turns/s)", f"{rate_alone:.1f}", *(f"{x['rate']:.1f}" for x in shared))
    row("  worker throughput cost", "", *(
        f"{(1 - x['rate'] / rate_alone) * 100:.0f} %" if rate_alone else "-" for x in shared))
    row("  worker turns timed", f"{n_alone}", *(f"{x['n']}" for x in shared))
    row("notebook terminal commit, median (ms)", ms(alone_commits, None),
        *(ms(x["commits"], None) for x in shared))
    row("notebook terminal commit, p90 (ms)", ms(alone_commits, 0.9),
        *(ms(x["commits"], 0.9) for x in shared))
    row("notebook turns", f"{len(alone_commits)}", *(f"{len(x['commits'])}" for x in shared))
    row("notebook open while the worker drains (ms)", "", *(f"{x['opened_ms']:.0f}" for x in shared))
    row("notebook file opens / hand-overs given", "", *(
        f"{x['opens']} / {x['handovers']}" for x in shared))
    print(f"  empty store call round trip: {line_off:.0f} µs with the line off, "
          f"{line_on:.0f} µs with it on")


if __name__ == "__main__":
    main()
