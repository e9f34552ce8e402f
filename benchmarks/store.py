"""Store benchmarks: commit latency per turn, open time of a 10,000-node session, and the
DuckDB / in-memory ratio of whole-turn overhead through ``LashCore``.

    .venv/bin/python benchmarks/store.py [--turns 200]

Numbers print to stdout; nothing is asserted (goals: terminal commit < 5 ms median,
active-path open of a 10,000-node session < 50 ms).
"""

from __future__ import annotations

import os
import sys

# run as a script, this folder is sys.path[0]; its queue.py would shadow the stdlib module
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lash_nb._core.events import AssistantProseDelta, ToolCallCompleted, ToolCallStarted, TurnActivity
from lash_nb._core.records import ToolCallRecord
from lash_nb._core.usage import LlmAttempt, LlmCallRecord, TokenUsage
from lash_nb._store.base import Lease, ReadScope, RuntimeCommit, TurnStart, UsageDelta, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb._store.memory import MemoryStore
from lash_nb.testing.conformance import node, turn_record


def ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[int(len(values) * 0.9) - 1]
    return (f"median {statistics.median(values):6.2f} ms   p90 {p90:6.2f} ms   "
            f"mean {statistics.fmean(values):6.2f} ms   max {values[-1]:6.2f} ms")


def turn_commits(sid: str, lease: Lease, k: int, leaf: str | None) -> tuple[RuntimeCommit, RuntimeCommit]:
    """A progress commit and a terminal commit of a turn with two tool calls and 60 events."""
    tid = f"t{k}"
    user = node(f"{tid}-u", leaf, "please call add and mul", tid)
    progress = RuntimeCommit(sid, lease, append_nodes=(user,), leaf_node_id=user.node_id,
                             turn_started=TurnStart(tid, 1000))
    rest = tuple(node(f"{tid}-{i}", f"{tid}-{i - 1}" if i else user.node_id, "answer " * 20, tid)
                 for i in range(3))
    events: list[TurnActivity] = []
    tools = []
    for i, name in enumerate(("add", "mul")):
        call = f"{tid}-k{i}"
        events.append(TurnActivity(f"{tid}-s{i}", f"tool:{call}", ToolCallStarted(call, name, {"a": 2, "b": 3}), tid))
        done = ToolCallCompleted(call, name, {"a": 2, "b": 3}, 5, 0.2, True)
        events.append(TurnActivity(f"{tid}-c{i}", f"tool:{call}", done, tid))
        tools.append((tid, ToolCallRecord(call, name, {"a": 2, "b": 3}, 5, True, 0.2, 1000)))
    events += [TurnActivity(f"{tid}-e{i}", f"{tid}-p", AssistantProseDelta("word "), tid) for i in range(56)]
    attempt = LlmAttempt(1, 1000, 3.0, "completed", TokenUsage(300, 20))
    calls = tuple((tid, LlmCallRecord(f"{tid}-m{i}", "m", i, (attempt,))) for i in range(2))
    terminal = RuntimeCommit(
        sid, lease, append_nodes=rest, leaf_node_id=rest[-1].node_id, llm_calls=calls,
        usage_deltas=(UsageDelta(tid, "turn", "m", TokenUsage(600, 40)),), tool_calls=tuple(tools),
        events=tuple(events), turn=turn_record(tid, f"h{k}"), turn_index=k)
    return progress, terminal


async def bench_commits(store: Any, turns: int) -> tuple[list[float], list[float]]:
    lease = await store.try_acquire_lease("bench", lease_owner_id("bench"))
    leaf = None
    terminal_ms, turn_ms = [], []
    for k in range(turns + 5):
        progress, terminal = turn_commits("bench", lease, k, leaf)
        t0 = time.perf_counter()
        await store.commit(progress)
        t1 = time.perf_counter()
        await store.commit(terminal)
        t2 = time.perf_counter()
        leaf = terminal.leaf_node_id
        if k >= 5:  # the first commits pay one-time imports
            terminal_ms.append((t2 - t1) * 1000)
            turn_ms.append((t2 - t0) * 1000)
    return terminal_ms, turn_ms


async def seed_graph(path: Path, sid: str, n: int, branch_every: int) -> int:
    """n nodes; every `branch_every` nodes the chain restarts from the root (0 = linear)."""
    nodes, leaf = [], None
    for i in range(n):
        parent = "0" if branch_every and i and i % branch_every == 0 else leaf
        nodes.append(node(str(i), parent if i else None, f"message {i} " + "text " * 30))
        leaf = str(i)
    store = DuckDBStore(path)
    lease = await store.try_acquire_lease(sid, lease_owner_id("bench"))
    await store.commit(RuntimeCommit(sid, lease, append_nodes=tuple(nodes), leaf_node_id=leaf,
                                     release_lease=True))
    got = await store.load_session(sid, ReadScope.ACTIVE_PATH)
    await store.close()
    assert got is not None
    return len(got.nodes)


async def bench_open(path: Path, sid: str, scope: ReadScope, repeat: int = 7) -> tuple[float, ...]:
    """Medians: store load cold (new store incl. file open) and warm; ``LashCore`` session
    open on an open store; then reading every message of that session (contents are
    decoded on first read, so this is the cost an open defers)."""
    from lash_nb import LashCore

    residency = "active_path_only" if scope is ReadScope.ACTIVE_PATH else "keep_all"
    cold, warm, core_open, first_read = [], [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        store = DuckDBStore(path, idle_release_s=None)
        await store.load_session(sid, scope)
        cold.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        await store.load_session(sid, scope)
        warm.append((time.perf_counter() - t0) * 1000)
        core = LashCore.builder().store(store).build()
        t0 = time.perf_counter()
        session = await core.session(sid).residency(residency).open()
        core_open.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        texts = [m.text() for m in session.read_view().messages()]
        first_read.append((time.perf_counter() - t0) * 1000)
        assert texts
        await store.close()
    return tuple(statistics.median(v) for v in (cold, warm, core_open, first_read))


async def bench_core(store: Any, turns: int) -> float | None:
    try:
        from lash_nb import LashCore, TurnInput, tool
        from lash_nb._providers.offline import OfflineProvider
    except ImportError:
        return None

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @tool
    def mul(a: int, b: int) -> int:
        """Multiply two numbers."""
        return a * b

    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add, mul).store(store).build()
    session = await core.session("core-bench").open()
    times = []
    for k in range(turns + 3):
        t0 = time.perf_counter()
        await session.turn(TurnInput.text(f"call add and mul on 2 and 3 ({k})")).run()
        if k >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    await session.close()
    await core.close()
    return statistics.median(times)


async def main(turns: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="lash-bench-"))
    print(f"commit latency, {turns} turns (2 tool calls, 2 model calls, 60 events, 4 nodes each)")
    duck = DuckDBStore(folder / "commits.duckdb", idle_release_s=None)
    terminal, whole = await bench_commits(duck, turns)
    await duck.close()
    print(f"  duckdb terminal commit           {ms(terminal)}")
    print(f"  duckdb progress + terminal       {ms(whole)}")
    terminal, whole = await bench_commits(MemoryStore(), turns)
    print(f"  memory progress + terminal       {ms(whole)}")

    print("open a 10,000-node session, medians (load cold = new store incl. file open; warm = "
          "open store; LashCore open = session open on an open store; then = reading every "
          "message afterwards, which decodes the contents the open left encoded)")
    for label, branch_every in (("linear", 0), ("branched every 500", 500)):
        path = folder / f"open-{branch_every}.duckdb"
        on_path = await seed_graph(path, "big", 10_000, branch_every)
        for scope in (ReadScope.FULL_GRAPH, ReadScope.ACTIVE_PATH):
            cold, warm, opened, read = await bench_open(path, "big", scope)
            print(f"  {label:18s} {scope.value:11s} ({on_path:5d} on path)  load cold {cold:6.1f} ms"
                  f"  warm {warm:6.1f} ms   LashCore open {opened:6.1f} ms   then read all {read:6.1f} ms")

    core_turns = max(20, turns // 4)
    duck_ms = await bench_core(str(folder / "core.duckdb"), core_turns)
    if duck_ms is None:
        print("LashCore ratio: skipped (lash_nb.LashCore is not importable yet)")
        return
    mem_ms = await bench_core(None, core_turns)
    assert mem_ms is not None
    print(f"LashCore turn with 2 tool calls, offline provider, {core_turns} turns: "
          f"duckdb {duck_ms:.2f} ms, memory {mem_ms:.2f} ms, ratio {duck_ms / mem_ms:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200)
    asyncio.run(main(parser.parse_args().turns))
