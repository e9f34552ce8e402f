"""Commit cost of a turn with a 1 MB image vs a text turn (the blob write must not make text
turns slower), on a DuckDB file store and the memory store.

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

from lash_nb import LashCore, TurnInput
from lash_nb.providers import FunctionProvider

PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\x00\x00\x00\x03\x00\x08\x06\x00\x00\x00"
MB = 1_000_000


def image(i: int) -> bytes:
    return PNG_HEAD + i.to_bytes(8, "big") + os.urandom(MB - len(PNG_HEAD) - 8)


async def run(store: str | None, n: int, *, with_images: bool) -> tuple[list[float], list[float]]:
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("bench") \
        .store(store).build()
    s = await core.session("bench").open()
    for i in range(5):  # warm-up
        await s.turn(f"warm {i}").run()
    text, img = [], []
    for i in range(n):
        t0 = time.perf_counter_ns()
        await s.turn(f"text turn {i}").run()
        text.append((time.perf_counter_ns() - t0) / 1e6)
        if with_images:
            ti = TurnInput.text(f"image turn {i}").attach(image(i), name=f"img{i}.png")
            t0 = time.perf_counter_ns()
            await s.turn(ti).run()
            img.append((time.perf_counter_ns() - t0) / 1e6)
    await core.close()
    return text, img


def med(xs: list[float]) -> str:
    return f"median {statistics.median(xs):7.2f} ms  p90 {sorted(xs)[int(len(xs) * 0.9)]:7.2f} ms"


CHILD = """
import asyncio, statistics, sys, tempfile, time, os
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
async def main(n):
    d = tempfile.mkdtemp()
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("bench") \\
        .store(os.path.join(d, "b.duckdb")).build()
    s = await core.session("bench").open()
    for i in range(5):
        await s.turn(f"warm {i}").run()
    out = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        await s.turn(f"text turn {i}").run()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    await core.close()
    print(statistics.median(out))
asyncio.run(main(int(sys.argv[1])))
"""


def baseline(dirs: dict[str, str], n: int, rounds: int) -> None:
    got: dict[str, list[float]] = {k: [] for k in dirs}
    for _ in range(rounds):
        for name, path in dirs.items():
            env = {**os.environ, "PYTHONPATH": path}
            out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, check=True,
                                 capture_output=True, text=True, cwd=tempfile.gettempdir())
            got[name].append(float(out.stdout.strip().splitlines()[-1]))
    for name, xs in got.items():
        print(f"  text turn, DuckDB, {name:<6}: median of {rounds} run medians "
              f"{statistics.median(xs):7.2f} ms  (runs: {', '.join(f'{x:.2f}' for x in xs)})")


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
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        print("# a text turn before / after (interleaved subprocess runs)")
        baseline({"before": args.baseline, "after": here}, n, 3 if args.quick else 5)


if __name__ == "__main__":
    asyncio.run(main())
