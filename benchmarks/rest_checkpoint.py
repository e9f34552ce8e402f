"""What the rest checkpoint of a DuckDB store costs (ADR 175), beside a turn's own commits.

    .venv/bin/python benchmarks/rest_checkpoint.py [--rounds 10] [--turns 20] [--words 60]

A notebook session on a fresh file: ``--rounds`` times, ``--turns`` turns back to back (an
offline answer of about ``--words`` words, a prompt of 500 characters) and then a pause long
enough for the store to rest. Prints, from the same run: each rest checkpoint's duration
(median, max; timed around ``ConnectionWorker._checkpoint_at_rest``), the ``.wal`` size it
wrote into the file, and a turn's wall time back to back (median) as the peer: the pause
work a person never waits for, beside the work of one turn. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--words", type=int, default=60)
    args = ap.parse_args()

    import lash_nb._store.duckdb.worker as worker
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    rests: list[tuple[float, int]] = []
    real = worker.ConnectionWorker._checkpoint_at_rest

    def timed(self: worker.ConnectionWorker) -> None:
        wal = worker._wal_bytes(self.path)
        t = time.perf_counter()
        real(self)
        rests.append(((time.perf_counter() - t) * 1000, wal))

    worker.ConnectionWorker._checkpoint_at_rest = timed  # type: ignore[method-assign]
    turns: list[float] = []

    async def run(path: str) -> None:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(DuckDBStore(path))
                .build())
        s = await core.session("bench").open()
        for r in range(args.rounds):
            for i in range(args.turns):
                t = time.perf_counter()
                await s.turn(f"question {r}.{i} " + "x" * 500 + " word" * args.words).run()
                turns.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(worker.REST_CHECKPOINT_S + 0.5)
        await core.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(os.path.join(d, "bench.duckdb")))
    ms = [m for m, _ in rests]
    print(f"rest checkpoints: {len(rests)}, median {statistics.median(ms):.1f} ms, "
          f"max {max(ms):.1f} ms, .wal written {statistics.median(w for _, w in rests) / 1024:.0f} kB "
          f"median ({args.turns} turns each)")
    print(f"peer: one turn back to back, median {statistics.median(turns):.1f} ms "
          f"({len(turns)} turns)")


if __name__ == "__main__":
    main()
