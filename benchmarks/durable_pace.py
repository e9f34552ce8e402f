"""Durable turns at a human's pace and back to back, and file size, beside the peers.

A turn is the anchors' turn (user message -> one tool call -> tool result -> answer) with a
zero-latency model. Systems run interleaved in rounds (shuffled order each round), medians:

- **pace** (``--pace`` s between a system's turns, default 3 s: the notebook case): lash_nb on
  a DuckDB file; with ``--baseline DIR``, lash_nb from another checkout (the code before a
  change) in a child process, driven turn by turn from here, and this checkout in a child
  process of its own too (``--in-parent``: here, as before); openai-agents ``Runner.run`` +
  ``SQLiteSession``; LangGraph ``invoke`` + ``SqliteSaver`` (default durability). Every
  system holds ``H`` turns of history before the first measured turn.
- **back to back**: lash_nb durable turns with nothing between them (mean, median, max), in
  rounds of 10, beside lash's own floor for its design measured raw on a DuckDB connection:
  two autocommit INSERTs of one JSON row each, as large as the two ``commit_log`` rows of a
  lash turn. Before every round the stores' idle folds finish (``settle``): a fold working
  beside the floor's round slowed the floor (its first turns ~1.5x), so the ratio flattered
  lash_nb. The folds' own work is printed apart, per measured turn (a checkout that times
  it).
- **file size**: a new store, after one short turn, after 10 turns, and the growth per turn
  over the back-to-back run (after a checkpoint), beside SQLiteSession's file; and the growth
  per turn when the model takes 60 ms to answer (``--slow-turns``; the store is then idle
  inside each turn, as with a real model).

    python benchmarks/durable_pace.py [--histories 10,1000,10000] [--rounds 8] [--pace 3]
        [--baseline /path/to/old/checkout] [--b2b 400] [--size-turns 1000] [--slow-turns 1000]

Peers come from ``../shared/anchors`` (``pip install -r ../shared/anchors/requirements.txt``);
without them only lash_nb rows print.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib.util
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANCHORS = HERE.parents[1] / "shared" / "anchors"


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def user_text(i: int) -> str:
    return f"turn {i}: what is the weather in Paris? Please answer briefly."


def size_of(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", ".wal", "-wal") if os.path.exists(path + s))


class Lash:
    """One lash_nb session on a DuckDB file (whatever ``lash_nb`` this process imports)."""

    async def open(self, path: str, history: int, latency_s: float = 0.0) -> None:
        from lash_nb import LashCore
        from lash_nb.providers import FunctionProvider

        t = _sibling("turn_overhead")
        self.path = path
        model = t.model
        if latency_s:
            async def model(request):  # a model that takes a moment to answer, like a real one
                await asyncio.sleep(latency_s)
                return t.model(request)
        self.core = (LashCore.builder().provider(FunctionProvider(model)).model("bench")
                     .tools(t.get_weather).store(path).build())
        self.session = await self.core.session("bench").open()
        for i in range(history):
            await self.session.turn(user_text(i)).run()
        self.i = history

    async def turn(self) -> float:
        t0 = time.perf_counter()
        await self.session.turn(user_text(self.i)).run()
        self.i += 1
        return (time.perf_counter() - t0) * 1000

    def store(self):
        return self.session.store if hasattr(self.session, "store") else self.core.store

    def folds(self) -> dict[str, int] | None:
        """What this store's folds did so far (None: a checkout without the counters) and
        how many commits are still logged, not folded."""
        store = self.store()
        counts = getattr(store._worker, "folds", None)
        if counts is None:
            return None
        return {**dataclasses.asdict(counts), "pending": store.unfolded_commits}

    async def settle(self) -> None:
        """Wait until the store's idle fold has folded every logged commit (at most 2 s;
        a checkout without the counter waits past its fold delay)."""
        store = self.store()
        if not hasattr(store, "unfolded_commits"):
            await asyncio.sleep(0.1)
            return
        t0 = time.perf_counter()
        while store.unfolded_commits and time.perf_counter() - t0 < 2.0:
            await asyncio.sleep(0.002)

    async def close(self) -> float:
        """Close the store (it folds what is pending first); how long that took, ms."""
        store = self.store()
        t0 = time.perf_counter()
        await store.close()
        return (time.perf_counter() - t0) * 1000


async def child() -> None:
    """Serve ``Lash`` over stdin/stdout (JSON lines) for the parent's baseline rows."""
    lash = Lash()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "open":
            await lash.open(cmd["path"], cmd["history"])
            out: object = None
        elif op == "turn":
            out = await lash.turn()
        elif op == "b2b":
            out = [await lash.turn() for _ in range(cmd["n"])]
        elif op == "folds":
            out = lash.folds()
        elif op == "settle":
            await lash.settle()
            out = None
        elif op == "close":
            out = await lash.close()
        elif op == "size":  # a new store with n turns, closed: its bytes
            one = Lash()
            await one.open(cmd["path"], cmd["n"], cmd.get("latency_s", 0.0))
            await one.close()
            out = size_of(cmd["path"])
        else:
            out = None
        print(json.dumps(out), flush=True)
        if op == "close":
            return


class Remote:
    def __init__(self, checkout: str) -> None:
        env = dict(os.environ, PYTHONPATH=checkout)
        self.proc = subprocess.Popen([sys.executable, "-P", __file__, "--child"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def call(self, **cmd):
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    async def open(self, path: str, history: int) -> None:
        self.path = path
        await asyncio.to_thread(self.call, op="open", path=path, history=history)

    async def turn(self) -> float:
        return self.call(op="turn")

    async def b2b(self, n: int) -> list[float]:
        return self.call(op="b2b", n=n)

    def folds(self) -> dict[str, int] | None:
        return self.call(op="folds")

    async def settle(self) -> None:
        self.call(op="settle")

    async def close(self) -> float:
        ms = self.call(op="close")
        self.proc.wait(timeout=60)
        return float(ms)


def peers():
    """(openai-agents session turn factory, langgraph factory) or None without the anchors."""
    sys.path.insert(0, str(ANCHORS))
    try:
        import common
        from agents import SQLiteSession  # noqa: F401
        from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: F401
    except ImportError as e:
        print(f"# peers skipped: {e}")
        return None
    return common


class OaiSession:
    async def open(self, common, path: str, history: int) -> None:
        from agents import SQLiteSession

        _, turn, self._turn_session = common.make_openai_agents(async_tool=True)
        seed = await common.openai_agents_seed(turn, history)
        self.s = SQLiteSession(uuid.uuid4().hex, path)
        await self.s.add_items(seed)
        self.path, self.i = path, 0

    async def turn(self) -> float:
        t0 = time.perf_counter()
        await self._turn_session(self.s, self.i)
        self.i += 1
        return (time.perf_counter() - t0) * 1000


class LangGraph:
    async def open(self, common, path: str, history: int) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.graph = common.make_langgraph(SqliteSaver(self.conn))
        self.cfg = {"configurable": {"thread_id": uuid.uuid4().hex}}
        self.graph.update_state(self.cfg, {"messages": common.langgraph_seed_messages(history)},
                                as_node="agent")
        self.path, self.i = path, 0

    async def turn(self) -> float:
        t0 = time.perf_counter()
        self.graph.invoke({"messages": [{"role": "user", "content": user_text(self.i)}]}, self.cfg)
        self.i += 1
        return (time.perf_counter() - t0) * 1000


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"median {statistics.median(xs):7.2f} ms  mean {statistics.fmean(xs):7.2f}  "
            f"p90 {xs[max(0, int(len(xs) * 0.9) - 1)]:7.2f}  max {xs[-1]:7.2f}  n={len(xs)}")


def this_checkout(args):
    """This checkout's lash_nb: in a child process too when a baseline runs in one, so both
    sides pay the same (the parent also holds the peers and the floor)."""
    return Remote(str(HERE.parent)) if args.baseline and not args.in_parent else Lash()


async def pace(args, tmp: str, common) -> None:
    for history in args.histories:
        systems: dict[str, object] = {}
        lash = this_checkout(args)
        await lash.open(f"{tmp}/pace{history}.duckdb", history)
        systems["lash_nb (this checkout), DuckDB"] = lash
        if args.baseline:
            old = Remote(args.baseline)
            await old.open(f"{tmp}/pace{history}-base.duckdb", history)
            systems["lash_nb (baseline checkout), DuckDB"] = old
        if common is not None:
            oai = OaiSession()
            await oai.open(common, f"{tmp}/pace{history}-oai.sqlite", history)
            lg = LangGraph()
            await lg.open(common, f"{tmp}/pace{history}-lg.sqlite", history)
            systems["openai-agents + SQLiteSession"] = oai
            systems["LangGraph + SqliteSaver"] = lg
        for s in systems.values():  # warm-up turn, then the pace starts
            await s.turn()
        times: dict[str, list[float]] = {k: [] for k in systems}
        rng = random.Random(history)
        for _ in range(args.rounds):
            await asyncio.sleep(args.pace)
            order = list(systems)
            rng.shuffle(order)
            for name in order:
                gc.collect()
                times[name].append(await systems[name].turn())
        print(f"\n## durable turn at a human's pace ({args.pace:g} s between turns), history "
              f"{history} turns, folds included")
        for name, xs in times.items():
            print(f"   {name:38s} {stats(xs)}")
        for s in systems.values():
            if isinstance(s, (Lash, Remote)):
                await s.close()
        sys.stdout.flush()


async def back_to_back(args, tmp: str) -> None:
    import duckdb

    lash = this_checkout(args)
    path = f"{tmp}/b2b.duckdb"
    await lash.open(path, 10)
    old = None
    if args.baseline:
        old = Remote(args.baseline)
        await old.open(f"{tmp}/b2b-base.duckdb", 10)
    small, large = _SIZES  # measured by measure_sizes
    con = duckdb.connect(f"{tmp}/floor.duckdb", config={"threads": 1})
    con.execute("CREATE TABLE log (session_id VARCHAR, head_revision BIGINT, written_at TIMESTAMP, body JSON)")
    a, b = json.dumps({"x": "a" * small}), json.dumps({"x": "b" * large})
    rev = [0]

    def floor_turn() -> float:
        t0 = time.perf_counter()
        rev[0] += 1
        con.execute("INSERT INTO log VALUES (?, ?, epoch_ms(?::BIGINT), ?)", ["s", rev[0], 0, a])
        rev[0] += 1
        con.execute("INSERT INTO log VALUES (?, ?, epoch_ms(?::BIGINT), ?)", ["s", rev[0], 0, b])
        return (time.perf_counter() - t0) * 1000

    # short rounds (10 turns each), many of them: a shared machine's load comes in bursts of
    # seconds, and long rounds let one burst land on one system only
    per = min(10, max(1, args.b2b // 8))
    folds_before = {"this": lash.folds(), "old": old.folds() if old else None}
    lash_ms: list[float] = []
    old_ms: list[float] = []
    floor_ms: list[float] = []
    for r in range(max(1, args.b2b // per)):
        order = ["lash", "floor"] + (["old"] if old else [])
        random.Random(r).shuffle(order)
        for name in order:
            # every store's idle fold is done before any round: the floor is measured with
            # no fold working beside it (it charged the fold's work to the floor), and a
            # lash round starts as a turn after a pause does; the folds' own work is printed
            await lash.settle()
            if old:
                await old.settle()
            gc.collect()
            if name == "lash" and isinstance(lash, Remote):
                lash_ms += await lash.b2b(per)
            elif name == "lash":
                lash_ms += [await lash.turn() for _ in range(per)]
            elif name == "old":
                assert old is not None
                old_ms += await old.b2b(per)
            else:
                floor_ms += [floor_turn() for _ in range(per)]
    print(f"\n## back-to-back durable turns, history 10 -> {10 + len(lash_ms)}, rounds of 10, "
          "idle folds settled before each round (their work below)")
    print(f"   {'lash_nb (this checkout)':38s} {stats(lash_ms)}")
    if old:
        print(f"   {'lash_nb (baseline checkout)':38s} {stats(old_ms)}")
    print(f"   {'floor: two JSON-row INSERTs (raw)':38s} {stats(floor_ms)}   rows {small} + {large} B")
    print(f"   lash mean / floor mean: {statistics.fmean(lash_ms) / statistics.fmean(floor_ms):.2f}x"
          + (f"   (baseline {statistics.fmean(old_ms) / statistics.fmean(floor_ms):.2f}x)" if old else ""))
    for side, who in (("this", lash), ("old", old)):
        if who is not None:
            print(f"   {fold_line(folds_before[side], who.folds(), side, len(lash_ms))}")
    con.close()
    closed = [f"this checkout {await lash.close():.1f} ms"]
    if old:
        closed.append(f"baseline {await old.close():.1f} ms")
    print(f"   close after the run (folds what is still pending): {', '.join(closed)}")


def fold_line(before: dict[str, int] | None, after: dict[str, int] | None, side: str,
              turns: int = 0) -> str:
    """What the folds did during the measured turns (deferred work counted: the commits still
    pending at the end are folded by the close, timed apart) and, from a checkout that times
    them, how long they worked on the store's thread, per measured turn."""
    name = "this checkout" if side == "this" else "baseline checkout"
    if before is None or after is None:
        return f"folds, {name}: not counted by that checkout"
    d = {k: after[k] - before[k] for k in ("idle", "slices", "gave_way", "firm", "full")}
    worked = ""
    if "seconds" in before and "seconds" in after and turns:
        ms = (after["seconds"] - before["seconds"]) * 1000
        worked = f"; they worked {ms:.0f} ms on the store's thread, {ms / turns:.2f} ms a turn"
    return (f"folds during the measured turns, {name}: {d['idle']} idle folds emptied the log in "
            f"{d['slices']} slices, {d['gave_way']} gave way to a turn ({d['firm']} slices run "
            f"firm), {d['full']} full folds (reads, the bound); {after['pending']} commits still "
            f"pending at the end{worked}")


_SIZES = (0, 0)


async def measure_sizes(args, tmp: str, common) -> None:
    """File sizes (after the store is closed: checkpointed, no .wal)."""
    global _SIZES
    from lash_nb._store.duckdb import journal

    seen: list[int] = []
    orig = journal.Delta.body

    def body(self):  # type: ignore[no-untyped-def]
        out = orig(self)
        seen.append(len(out))
        return out

    journal.Delta.body = body  # type: ignore[method-assign]
    rows: list[tuple[str, int, int, int, float]] = []
    try:
        for label, n_turns in (("empty", 0), ("one short turn", 1), ("10 turns", 10),
                               (f"{args.size_turns} turns", args.size_turns)):
            path = f"{tmp}/size{n_turns}.duckdb"
            lash = Lash()
            await lash.open(path, n_turns)
            await lash.close()
            rows.append((label, n_turns, size_of(path), 0, 0.0))
    finally:
        journal.Delta.body = orig  # type: ignore[method-assign]
    steady = seen[-40:]
    _SIZES = (int(statistics.median(steady[0::2])), int(statistics.median(steady[1::2])))
    old_sizes: list[int] = []
    if args.baseline:
        old = Remote(args.baseline)
        for _, n, _, _, _ in rows:
            old_sizes.append(old.call(op="size", path=f"{tmp}/size{n}-base.duckdb", n=n))
        old.proc.stdin.close()  # type: ignore[union-attr]
        old.proc.wait(timeout=60)
    print("\n## file size (store closed: checkpointed)")
    base = rows[2][2]
    for j, (label, _n, size, _, _) in enumerate(rows):
        was = f"   (baseline {old_sizes[j] / 1e3:9.1f} kB)" if old_sizes else ""
        print(f"   lash_nb, {label:18s} {size / 1e3:9.1f} kB{was}")
    big = rows[3]
    was = (f"   (baseline {(old_sizes[3] - old_sizes[2]) / (big[1] - 10) / 1e3:.2f})"
           if old_sizes else "")
    print(f"   lash_nb growth per turn, 10 -> {big[1]} turns: "
          f"{(big[2] - base) / (big[1] - 10) / 1e3:.2f} kB/turn{was}")
    if args.slow_turns:  # a model answering in 60 ms: the store is idle inside each turn
        lat, n = 0.06, args.slow_turns
        lash = Lash()
        await lash.open(f"{tmp}/slow10.duckdb", 10, lat)
        await lash.close()
        lash = Lash()
        await lash.open(f"{tmp}/slow.duckdb", n, lat)
        await lash.close()
        per = (size_of(f"{tmp}/slow.duckdb") - size_of(f"{tmp}/slow10.duckdb")) / (n - 10)
        was = ""
        if args.baseline:
            old = Remote(args.baseline)
            o10 = old.call(op="size", path=f"{tmp}/slow10-base.duckdb", n=10, latency_s=lat)
            on = old.call(op="size", path=f"{tmp}/slow-base.duckdb", n=n, latency_s=lat)
            old.proc.stdin.close()  # type: ignore[union-attr]
            old.proc.wait(timeout=60)
            was = f"   (baseline {(on - o10) / (n - 10) / 1e3:.2f})"
        print(f"   lash_nb growth per turn, 10 -> {n} turns, model answering in {lat * 1e3:.0f} ms: "
              f"{per / 1e3:.2f} kB/turn{was}")
    if common is not None:
        oai = OaiSession()
        p = f"{tmp}/size-oai.sqlite"
        await oai.open(common, p, 0)
        s0 = size_of(p)
        for _ in range(10):
            await oai.turn()
        oai.s.close() if hasattr(oai.s, "close") else None
        c = sqlite3.connect(p)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.close()
        print(f"   openai-agents SQLiteSession: empty {s0 / 1e3:.1f} kB, 10 turns {size_of(p) / 1e3:.1f} kB")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--histories", default="10,1000")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--pace", type=float, default=3.0)
    ap.add_argument("--b2b", type=int, default=400)
    ap.add_argument("--size-turns", type=int, default=1000)
    ap.add_argument("--slow-turns", type=int, default=1000,
                    help="turns with a 60 ms model for the size row (0: skip)")
    ap.add_argument("--baseline", default="")
    ap.add_argument("--in-parent", action="store_true",
                    help="with --baseline: run this checkout in this process (not a child)")
    ap.add_argument("--only", default="size,pace,b2b")
    args = ap.parse_args()
    if args.child:
        await child()
        return
    args.histories = [int(h) for h in args.histories.split(",") if h]
    only = set(args.only.split(","))
    import platform

    print(f"# durable_pace: python {platform.python_version()}, cpus={os.cpu_count()}, "
          f"baseline={args.baseline or '-'}")
    common = peers()
    tmp = tempfile.mkdtemp(prefix="lash-pace-")
    await measure_sizes(args, tmp, common if "size" in only else None)  # also the log row sizes
    if "pace" in only:
        await pace(args, tmp, common)
    if "b2b" in only:
        await back_to_back(args, tmp)


if __name__ == "__main__":
    asyncio.run(main())
