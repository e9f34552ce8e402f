"""Commit cost of a turn with a 1 MB image vs a text turn (the blob write must not make text
turns slower), on a DuckDB file store and the memory store. Wall time and CPU time (all
threads of the process) are printed: on a loaded machine wall time mostly measures the load.

A turn here is the whole turn with a zero-latency model: progress commit (the user message;
for an image turn the blob is put first) -> model call -> final commit. Text and image turns
are interleaved (text, image, text, image, ...) so drift hits both alike; each image turn
attaches a different 1 MB PNG-headed payload, so every one is a real blob write (no dedupe).

``--baseline DIR`` also times text turns with the lash_nb found in DIR (e.g. the commit
before attachments: ``git archive cf81d8a | tar -x -C /tmp/base``), interleaving runs of
this tree and DIR in subprocesses, and prints both medians: a text turn before/after.

    python benchmarks/attachments.py [--quick] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lash_nb import LashCore, TurnInput
from lash_nb.providers import FunctionProvider

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\x00\x00\x00\x03\x00\x08\x06\x00\x00\x00"
MB = 1_000_000
HERE = Path(__file__).resolve().parent.parent  # the lash_nb tree this script belongs to


def image(i: int) -> bytes:
    return PNG_HEAD + i.to_bytes(8, "big") + os.urandom(MB - len(PNG_HEAD) - 8)


Timing = tuple[list[float], list[float]]  # wall ms, CPU ms (all threads of the process)


async def timed(turn: Any, out: Timing) -> None:
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    await turn.run()
    out[0].append((time.perf_counter_ns() - t0) / 1e6)
    out[1].append((time.process_time_ns() - c0) / 1e6)


async def run(store: str | None, n: int, *, with_images: bool) -> tuple[Timing, Timing]:
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("bench") \
        .store(store).build()
    s = await core.session("bench").open()
    for i in range(5):  # warm-up
        await s.turn(f"warm {i}").run()
    text: Timing = ([], [])
    img: Timing = ([], [])
    for i in range(n):
        await timed(s.turn(f"text turn {i}"), text)
        if with_images:
            ti = TurnInput.text(f"image turn {i}").attach(image(i), name=f"img{i}.png")
            await timed(s.turn(ti), img)
    await core.close()
    return text, img


def med(t: Timing) -> str:
    wall, cpu = t
    return (f"wall median {statistics.median(wall):7.2f} ms  p90 "
            f"{sorted(wall)[int(len(wall) * 0.9)]:7.2f} ms  CPU median {statistics.median(cpu):6.2f} ms")


CHILD = """
import asyncio, statistics, sys, tempfile, time, os
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
async def main(n, kind):
    d = tempfile.mkdtemp()
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("bench") \\
        .store(os.path.join(d, "b.duckdb") if kind == "DuckDB" else None).build()
    s = await core.session("bench").open()
    for i in range(5):
        await s.turn(f"warm {i}").run()
    out, cpu = [], []
    for i in range(n):
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        await s.turn(f"text turn {i}").run()
        out.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.process_time_ns() - c0) / 1e6)
    await core.close()
    print(statistics.median(out), min(out), statistics.median(cpu))
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def baseline(dirs: dict[str, str], n: int, rounds: int, kind: str) -> None:
    """Wall time is at the mercy of a loaded machine; the fastest turn of a run and the CPU
    time per turn (all threads of the process) say more there."""
    got: dict[str, list[tuple[float, ...]]] = {k: [] for k in dirs}
    for _ in range(rounds):
        for name, path in dirs.items():
            env = {**os.environ, "PYTHONPATH": path}
            out = subprocess.run([sys.executable, "-c", CHILD, str(n), kind], env=env,
                                 check=True, capture_output=True, text=True,
                                 cwd=tempfile.gettempdir())
            got[name].append(tuple(map(float, out.stdout.strip().splitlines()[-1].split())))
    for name, runs in got.items():
        wall, fastest, cpu = zip(*runs, strict=True)
        print(f"  text turn, {kind:<6}, {name:<6}: wall median {statistics.median(wall):6.2f} ms, "
              f"fastest {min(fastest):5.2f} ms, CPU median {statistics.median(cpu):5.2f} ms "
              f"(median of {rounds} runs; wall runs: {', '.join(f'{x:.1f}' for x in wall)})")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline", default=None, help="a lash_nb tree from before the change")
    args = ap.parse_args()
    n = 20 if args.quick else 60
    print(f"# attachments: python {platform.python_version()}, {platform.platform()}, n={n}")
    with tempfile.TemporaryDirectory() as d:
        for label, store in (("DuckDB", os.path.join(d, "a.duckdb")), ("memory", None)):
            text, img = await run(store, n, with_images=True)
            print(f"{label:<7} text turn              {med(text)}")
            print(f"{label:<7} turn + 1 MB image      {med(img)}")
            only, _ = await run(store if store is None else os.path.join(d, f"t-{label}.duckdb"),
                                n, with_images=False)
            print(f"{label:<7} text turn, no images   {med(only)}")
    if args.baseline:
        here = str(HERE)
        print("# a text turn before / after (interleaved subprocess runs)")
        for kind, turns in (("DuckDB", n), ("memory", 20 * n)):
            baseline({"before": args.baseline, "after": here}, turns, 3 if args.quick else 5,
                     kind)


if __name__ == "__main__":
    asyncio.run(main())
