"""Stress the DuckDB hand-over: several processes enqueueing into one file at once, under load.

    .venv/bin/python benchmarks/handover_stress.py [--procs 2] [--n 500] [--hogs 2]
        [--budget-s 540] [--slow-s 120] [--kill-s 240] [--py-spy PATH]

Each run makes a fresh store and starts ``--procs`` processes at once, each running the
enqueuer of ``tests/test_queue_processes.py`` (``--n`` enqueues into one session,
``idle_release_s=0.02``, idle for 30 ms every 50 enqueues) while ``--hogs`` busy-loop
processes load the CPUs. Runs repeat until ``--budget-s`` has passed (keep it under the
quiet-machine lock's burst of 10 minutes).

A run slower than ``--slow-s`` counts as a stall: each enqueuer's Python stacks are dumped
(``py-spy dump`` when ``--py-spy`` is given, and always ``faulthandler`` from inside the
process, to its stderr) and the run is stopped at ``--kill-s``. Prints one line per run
(wall time; per process: seconds, file opens, hand-overs, its longest single enqueue) and a
summary (runs, stalls, median and max wall time). Nothing is asserted; the rows are checked
(``--n`` per process, none lost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ENQUEUER = textwrap.dedent("""
    import asyncio, faulthandler, json, sys, time
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    faulthandler.dump_traceback_later(float(sys.argv[4]), repeat=True)  # a stall shows its stacks

    async def main(path, tag, n):
        t0 = time.monotonic()
        store = DuckDBStore(path, idle_release_s=0.02, lock_timeout_s=240)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        session = await core.session("shared").open()
        longest = 0.0
        for i in range(n):
            t = time.monotonic()
            await session.enqueue(f"{tag} {i}").id(f"{tag}-{i}").send()
            longest = max(longest, time.monotonic() - t)
            if i % 50 == 0:
                await asyncio.sleep(0.03)  # go idle now and then: the file is released
        worker = store._worker
        opens, handovers = worker.opens, worker.handovers
        await store.close()
        print(json.dumps({"tag": tag, "s": time.monotonic() - t0, "opens": opens,
                          "handovers": handovers, "longest": longest}), flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")

HOG = "while True: pass"


def one_run(path: str, args: argparse.Namespace) -> tuple[float, bool, list[dict[str, float]]]:
    from lash_nb.stores import DuckDBStore

    DuckDBStore(path).close_sync()
    tags = [chr(ord("a") + i) for i in range(args.procs)]
    t0 = time.monotonic()
    procs = []
    for t in tags:
        with open(f"{path}.{t}.err", "wb") as err:  # the child keeps its own descriptor
            procs.append(subprocess.Popen(
                [sys.executable, "-c", ENQUEUER, path, t, str(args.n), str(args.slow_s)],
                stdout=subprocess.PIPE, stderr=err))
    stalled = dumped = False
    while any(p.poll() is None for p in procs):
        waited = time.monotonic() - t0
        if waited > args.slow_s and not dumped:
            stalled = dumped = True
            print(f"  STALL: {waited:.0f} s; stacks:", flush=True)
            for p in procs:
                if p.poll() is None and args.py_spy:
                    subprocess.run([args.py_spy, "dump", "--native", "--pid", str(p.pid)], check=False)
        if waited > args.kill_s:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    stats = []
    for p, t in zip(procs, tags, strict=True):
        out = p.communicate()[0].decode().strip()
        err_text = Path(f"{path}.{t}.err").read_text(encoding="utf-8", errors="replace")
        if p.returncode == 0 and out:
            stats.append(json.loads(out.splitlines()[-1]))
        else:
            stalled = True
            print(f"  process {t} rc={p.returncode}; stderr tail:\n{err_text[-3000:]}", flush=True)
        if stalled and p.returncode == 0:
            print(err_text[-6000:])
    if not stalled:
        store = DuckDBStore(path)
        try:
            got = store.query("SELECT count(*) AS n FROM queued_work_batches")["n"][0]
        finally:
            store.close_sync()
        if got != args.n * args.procs:
            print(f"  LOST: {got} batches, expected {args.n * args.procs}", flush=True)
            stalled = True
    return wall, stalled, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--hogs", type=int, default=2, help="busy-loop processes for load")
    ap.add_argument("--budget-s", type=float, default=540.0, help="start no run after this")
    ap.add_argument("--runs", type=int, default=0, help="at most this many runs (0: budget only)")
    ap.add_argument("--slow-s", type=float, default=120.0, help="a run this slow is a stall")
    ap.add_argument("--kill-s", type=float, default=240.0, help="stop a stalled run here")
    ap.add_argument("--py-spy", default="", help="path of py-spy, to dump a stall's stacks")
    args = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    walls: list[float] = []
    stalls = 0
    start = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            while time.monotonic() - start < args.budget_s and (not args.runs or len(walls) < args.runs):
                path = os.path.join(tmp, f"q{len(walls)}.duckdb")
                wall, stalled, stats = one_run(path, args)
                walls.append(wall)
                stalls += stalled
                per = "  ".join(f"{s['tag']}: {s['s']:.1f} s {s['opens']:.0f} opens "
                                f"{s['handovers']:.0f} hand-overs longest {s['longest']:.2f} s"
                                for s in stats)
                print(f"run {len(walls)}: {wall:.1f} s{'  STALL' if stalled else ''}  {per}",
                      flush=True)
    finally:
        for h in hogs:
            h.kill()
    if walls:
        print(f"procs={args.procs} n={args.n} hogs={args.hogs}: {len(walls)} runs, {stalls} stalls, "
              f"wall median {statistics.median(walls):.1f} s, max {max(walls):.1f} s")


if __name__ == "__main__":
    main()
