"""What a DuckDB worker left idle costs: its CPU, and how often it takes the file.

A worker started beside a notebook (``python -m lash_nb worker --store lash.duckdb``) polls
every 0.2 s while the queue is empty. This script starts one worker process on a store with
an empty queue, lets it settle, then counts over ``--seconds``:

- its CPU time (user + system, from ``/proc``), as a share of one core;
- how many times a lash process took the file (the waiters' line's acquisition counter,
  ``share.py``): each is an open of the file, which a notebook must then wait for.

``--tree DIR`` (repeatable) runs the worker from another checkout's ``lash_nb`` (e.g. the code
before a change), rounds interleaved, so that trees are compared in one run:

    python benchmarks/idle_worker.py [--seconds 20] [--rounds 3] [--tree ../main --tree .]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTLE_S = 3.0  # after the file exists: startup imports and the first polls


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def acquisitions(path: Path) -> int:
    raw = (path.parent / (path.name + ".lash-share")).read_bytes()[8:16]
    return int.from_bytes(raw, "little") if len(raw) == 8 else 0


def one(tree: Path, seconds: float) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "lash.duckdb"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # the store exists first (a notebook made it), so the worker says nothing about a new file
    # (run from the store's folder: ``-m`` puts the working directory first on sys.path)
    make = "import sys; from lash_nb.stores import DuckDBStore; DuckDBStore(sys.argv[1]).close_sync()"
    subprocess.run([sys.executable, "-c", make, str(path)], env=env, check=True, cwd=tmp)
    proc = subprocess.Popen([sys.executable, "-m", "lash_nb", "worker", "--store", str(path)],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(SETTLE_S)
        c0, a0, t0 = cpu_s(proc.pid), acquisitions(path), time.monotonic()
        time.sleep(seconds)
        c1, a1, t1 = cpu_s(proc.pid), acquisitions(path), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(30)
    return (c1 - c0) / (t1 - t0) * 100, (a1 - a0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tree", action="append", type=Path,
                    help="a checkout whose lash_nb the worker runs (default: this one)")
    args = ap.parse_args()
    trees = [t.resolve() for t in (args.tree or [HERE.parent])]
    got: dict[Path, list[tuple[float, float]]] = {t: [] for t in trees}
    for r in range(args.rounds):
        for tree in (trees if r % 2 == 0 else trees[::-1]):
            got[tree].append(one(tree, args.seconds))
    print(f"## an idle DuckDB worker, {args.seconds:g} s x {args.rounds} rounds (medians; "
          f"load {os.getloadavg()[0]:.1f} at the end)")
    print(f"   {'tree':40s} {'CPU, % of a core':>17s} {'file taken / s':>15s}")
    for tree, rows in got.items():
        cpu = statistics.median(r[0] for r in rows)
        taken = statistics.median(r[1] for r in rows)
        print(f"   {str(tree)[-40:]:40s} {cpu:17.2f} {taken:15.2f}")


if __name__ == "__main__":
    main()
