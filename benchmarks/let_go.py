"""What a DuckDB store's checkpoint at every let-go costs (ADR 193), beside the code before.

    .venv/bin/python benchmarks/let_go.py [--baseline DIR] [--rounds 12] [--turns 3]
        [--pace 0 3] [--reps 2]

Each checkout runs in a child process of its own, importing its own lash_nb (this one, and
with ``--baseline`` another checkout: the code before the change), alternating ``--reps``
times. A child runs a notebook session on a fresh file, ``--rounds`` times: ``--turns``
turns back to back (an offline answer), a pause of P seconds (each of ``--pace``: 0 = the
other process was already waiting; 3 = a person reading the answer, so the store has rested
and checkpointed already), then a colleague's read-only store (another process, imported
and waiting) opens the file, which makes the notebook hand it over, and closes it; then the
notebook's next turn, which opens the file again.

Prints, per checkout and pace (median / max over rounds): the notebook's release at the
hand-over (timed around ``ConnectionWorker._release``), the ``.wal`` before it and the one
it left beside the file, the colleague's open, the notebook's next turn (its reopen included), and as the
peer from the same run a turn with no hand-over (the round's last turn; with ``--turns 1``
the turn right after the previous round's reopen). Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLLEAGUE = (
    "import sys, time\n"
    "from lash_nb.stores import DuckDBStore\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    t = time.perf_counter()\n"
    "    s = DuckDBStore(line.strip(), read_only=True, lock_timeout_s=60)\n"
    "    opened = (time.perf_counter() - t) * 1000\n"
    "    s.close_sync()\n"
    "    print(opened, flush=True)\n"
)


def child(rounds: int, turns: int, pace: float) -> dict[str, Any]:
    import asyncio
    import time

    from lash_nb import LashCore
    from lash_nb._store.duckdb import worker
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    released: list[tuple[float, int, int]] = []
    real = worker.ConnectionWorker._release

    def timed(self: Any, *, handover: bool = False) -> None:
        wal = worker._wal_bytes(self.path)
        t = time.perf_counter()
        real(self, handover=handover)
        if handover:
            released.append(((time.perf_counter() - t) * 1000, wal,
                             worker._wal_bytes(self.path)))

    worker.ConnectionWorker._release = timed  # type: ignore[method-assign]
    other = subprocess.Popen([sys.executable, "-c", COLLEAGUE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert other.stdin is not None and other.stdout is not None
    assert other.stdout.readline().strip() == "ready"
    opens: list[float] = []
    plain: list[float] = []
    after: list[float] = []

    async def run(path: str) -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(
            DuckDBStore(path)).build()
        s = await core.session("bench").open()
        await s.turn("warm up").run()
        for r in range(rounds):
            for i in range(turns):
                t = time.perf_counter()
                await s.turn(f"question {r}.{i} " + "x" * 500).run()
                if i == turns - 1:  # (the first of a round may reopen the file)
                    plain.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(pace)
            other.stdin.write(path + "\n")  # type: ignore[union-attr]
            other.stdin.flush()  # type: ignore[union-attr]
            opens.append(float(await asyncio.to_thread(other.stdout.readline)))  # type: ignore[union-attr]
            t = time.perf_counter()
            await s.turn(f"after the hand-over {r}").run()
            after.append((time.perf_counter() - t) * 1000)
        await core.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(os.path.join(d, "bench.duckdb")))
    other.stdin.close()
    other.wait(timeout=60)
    return {"release_ms": [r[0] for r in released],
            "wal_kb_before": [r[1] / 1024 for r in released],
            "wal_kb_left": [r[2] / 1024 for r in released],
            "colleague_open_ms": opens, "next_turn_ms": after, "plain_turn_ms": plain}


def run_child(checkout: str, args: argparse.Namespace, pace: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": checkout}
    out = subprocess.run(
        [sys.executable, str(HERE / "let_go.py"), "--child", "--rounds", str(args.rounds),
         "--turns", str(args.turns), "--pace", str(pace)],
        env=env, cwd=checkout, capture_output=True, text=True, timeout=900, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--baseline", default="")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--turns", type=int, default=3)
    ap.add_argument("--pace", type=float, nargs="+", default=[0.0, 3.0])
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds, args.turns, args.pace[0])))
        return
    sides = {"this checkout": str(HERE.parent)}
    if args.baseline:
        sides["baseline"] = os.path.abspath(args.baseline)
    got: dict[tuple[str, float], dict[str, list[float]]] = {}
    for _ in range(args.reps):
        for pace in args.pace:
            for name, checkout in sides.items():
                one = run_child(checkout, args, pace)
                into = got.setdefault((name, pace), {})
                for k, v in one.items():
                    into.setdefault(k, []).extend(v)
    print(f"{args.turns} turns, a pause, a hand-over to a read-only colleague; "
          f"{args.rounds} rounds x {args.reps} reps; median / max")
    for (name, pace), m in sorted(got.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cells = "  ".join(
            f"{k}: {statistics.median(v):.1f} / {max(v):.1f}" for k, v in m.items() if v)
        print(f"  pause {pace:g} s, {name:<14} {cells}")


if __name__ == "__main__":
    main()
