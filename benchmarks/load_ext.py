"""Time from ``%load_ext lash_nb`` to an idle kernel, in a real kernel of this interpreter.

Each round starts a fresh kernel (so nothing is imported yet), runs ``%load_ext lash_nb`` and
measures, with jupyter_client, from sending the cell to the kernel's ``idle`` status. It also
reports whether anywidget/ipywidgets were imported by the load (they should be imported only
when a widget is first shown). ``python benchmarks/load_ext.py [ROUNDS]`` from the repository
root; prints one line per round and the median.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT / "tests")  # not benchmarks/: its queue.py would shadow the stdlib

from notebook_harness import KernelHarness  # noqa: E402

PROBE = ("import sys; print('widgets imported:', "
         "sorted(m for m in ('anywidget', 'ipywidgets') if m in sys.modules))")


def one_round() -> tuple[float, str]:
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with KernelHarness(env=env) as k:
        k.run("import sys")  # the kernel is up and idle
        t0 = time.perf_counter()
        k.run("%load_ext lash_nb")
        took = time.perf_counter() - t0
        probe = k.run(PROBE).stdout.strip()
    return took, probe


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    times = []
    for i in range(rounds):
        took, probe = one_round()
        times.append(took)
        print(f"round {i + 1}: %load_ext lash_nb to idle {took * 1000:.0f} ms; {probe}")
    print(f"median over {rounds}: {statistics.median(times) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
