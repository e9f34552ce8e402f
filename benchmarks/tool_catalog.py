"""A durable turn as the tool catalog grows: 1, 10 and 40 ``@tool`` functions on one session
(an MCP server easily brings forty), DuckDB file, back to back in rounds of 10 with the idle
fold finished between rounds (``durable_pace.py``'s b2b row). Prints, per catalog size, the
turn's median and mean and the median ``commit_log`` row length. The goal is a turn and a log
row that do not grow with the catalog when the catalog does not change (ADR 164).

    python benchmarks/tool_catalog.py [--turns 300] [--baseline /path/to/old/checkout]

``--baseline``: the same measure run by another checkout's lash_nb (a child process), the
rounds of both alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (1, 10, 40)


def _durable_pace():
    spec = importlib.util.spec_from_file_location("durable_pace", HERE / "durable_pace.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tools(n: int) -> list:
    from lash_nb import tool

    out = []
    for i in range(n):
        async def forecast(city: str, country: str = "FR", units: str = "metric", days: int = 1) -> str:
            """Weather forecast for a city, with the country, the units and how many days ahead."""
            return "sunny"

        forecast.__name__ = forecast.__qualname__ = f"forecast_{i}"
        out.append(tool(forecast))
    return out


class Side:
    """Sessions of this process's lash_nb, one per catalog size, and the log rows they write."""

    async def open(self, tmp: str) -> None:
        from lash_nb import LashCore
        from lash_nb._store.duckdb import commit
        from lash_nb.providers import FunctionProvider

        dp = _durable_pace()
        t = dp._sibling("turn_overhead")
        self.rows: list[int] = []
        apply, rows = commit._apply, self.rows

        class Con:  # measures each commit_log row it passes on
            def __init__(self, con) -> None:
                self._con = con

            def execute(self, sql, *args):
                if sql.startswith("INSERT INTO commit_log"):
                    rows.append(len(args[0][3]))
                return self._con.execute(sql, *args)

            def __getattr__(self, name):
                return getattr(self._con, name)

        commit._apply = lambda con, hold, c, direct: apply(Con(con), hold, c, direct=direct)
        self.lashes = {}
        for n in SIZES:
            lash = dp.Lash()
            lash.core = (LashCore.builder().provider(FunctionProvider(t.model)).model("bench")
                         .tools(t.get_weather, *_tools(n - 1)).store(f"{tmp}/{n}.duckdb").build())
            lash.session = await lash.core.session("bench").open()
            lash.i = 0
            for _ in range(10):
                await lash.turn()
            self.lashes[n] = lash

    async def round(self, n: int) -> tuple[list[float], list[int]]:
        lash = self.lashes[n]
        await lash.settle()
        gc.collect()
        del self.rows[:]
        ms = [await lash.turn() for _ in range(10)]
        return ms, list(self.rows)


async def child() -> None:
    side = Side()
    await side.open(tempfile.mkdtemp())
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        print(json.dumps(await side.round(json.loads(line))), flush=True)


class Remote:
    def __init__(self, checkout: str) -> None:
        env = dict(os.environ, PYTHONPATH=checkout)
        self.proc = subprocess.Popen([sys.executable, "-P", __file__, "--child"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout and json.loads(self.proc.stdout.readline()) == "ready"

    async def round(self, n: int) -> tuple[list[float], list[int]]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(n) + "\n")
        self.proc.stdin.flush()
        ms, rows = json.loads(self.proc.stdout.readline())
        return ms, rows


async def main(args) -> None:
    here = Side()
    await here.open(tempfile.mkdtemp())
    sides = {"this checkout": here}
    if args.baseline:
        sides["baseline checkout"] = Remote(args.baseline)
    got = {(name, n): ([], []) for name in sides for n in SIZES}
    for r in range(max(1, args.turns // 10)):
        order = list(sides.items()) if r % 2 else list(sides.items())[::-1]
        for n in SIZES:
            for name, side in order:
                ms, rows = await side.round(n)
                got[(name, n)][0].extend(ms)
                got[(name, n)][1].extend(rows)
    print(f"## a durable turn by catalog size ({args.turns} turns a size, rounds of 10 interleaved)")
    for n in SIZES:
        for name in sides:
            ms, rows = got[(name, n)]
            print(f"   {n:3d} tools, {name:18s} median {statistics.median(ms):6.3f} ms  mean "
                  f"{statistics.fmean(ms):6.3f}   commit_log row median {statistics.median(rows) / 1e3:6.1f} kB")
    if args.baseline:
        sides["baseline checkout"].proc.stdin.close()


if __name__ == "__main__":
    if "--child" in sys.argv:
        asyncio.run(child())
    else:
        ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        ap.add_argument("--turns", type=int, default=300)
        ap.add_argument("--baseline", default="")
        asyncio.run(main(ap.parse_args()))
