"""Bytes LangGraph's SqliteSaver adds to its file per turn, each durability mode on its own file.

The anchors' ``bench_persist.py`` runs both modes (default and ``durability="exit"``) on one
file and divides the growth by the turns of both, so its figure is an average of the two. Here
each mode gets its own SQLite file, a thread seeded with ``--history`` turns (untimed, with
``update_state``), then ``--turns`` turns of the anchors' fake-model agent (one tool call and
an answer per turn); growth is measured after ``wal_checkpoint(TRUNCATE)``. lash_nb's DuckDB
store is measured the same way (its file after ``close``) for the same history.

    python benchmarks/peer_checkpoint_size.py [--history 1000] [--turns 10]

Needs the anchors' peers (``../shared/anchors/requirements.txt``; installed in the shared venv).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/ holds scripts named like stdlib modules
ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"
sys.path.insert(0, str(ANCHORS))


def _size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal", ".wal") if os.path.exists(path + s))


def _checkpointed(path: str) -> int:
    c = sqlite3.connect(path)
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return _size(path)


def langgraph_growth(tmp: str, history: int, turns: int, durability: str | None) -> float:
    from common import langgraph_seed_messages, make_langgraph, user_text
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = os.path.join(tmp, f"lg-{durability or 'default'}.sqlite")
    con = sqlite3.connect(path, check_same_thread=False)
    graph = make_langgraph(SqliteSaver(con))
    cfg = {"configurable": {"thread_id": "t"}}
    graph.update_state(cfg, {"messages": langgraph_seed_messages(history)}, as_node="agent")
    before = _checkpointed(path)
    kw = {"durability": durability} if durability else {}
    for i in range(turns):
        graph.invoke({"messages": [{"role": "user", "content": user_text(i)}]}, cfg, **kw)
    time.sleep(0.5)  # default durability writes from a background thread
    con.close()
    return (_checkpointed(path) - before) / turns


async def lash_growth(tmp: str, history: int, turns: int) -> float:
    from lash_nb import LashCore
    from lash_nb.providers import FunctionProvider
    from lash_nb.stores import DuckDBStore

    path = os.path.join(tmp, "lash.duckdb")

    async def run(n: int) -> None:
        store = DuckDBStore(path)
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok " * 20)).model("m") \
            .store(store).build()
        s = await core.session("t").open()
        for i in range(n):
            await s.turn(f"question {i}: " + "words " * 10).run()
        await core.close()
        await store.close()

    await run(history)
    before = _size(path)
    await run(turns)
    return (_size(path) - before) / turns


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=1000)
    ap.add_argument("--turns", type=int, default=10)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    print(f"file growth per turn after {a.history:,} turns of history, {a.turns} turns measured")
    for mode in (None, "exit"):
        g = langgraph_growth(tmp, a.history, a.turns, mode)
        print(f"  LangGraph SqliteSaver, durability={mode or 'default (async)'}: {g / 1e6:8.3f} MB/turn")
    g = asyncio.run(lash_growth(tmp, a.history, a.turns))
    print(f"  lash_nb DuckDBStore (file after close):              {g / 1e3:8.1f} kB/turn")


if __name__ == "__main__":
    main()
