"""Cold resume of a 10,000-turn session: a fresh interpreter opens the DuckDB file, opens the
session and reads its whole history as decoded messages.

    .venv/bin/python benchmarks/cold_resume.py [--rounds 5] [--turns 10000] [--against OLD_TREE]

Every sample is a new ``python -P`` process (imports are timed apart and not counted). The
rows, in one run with interleaved rounds (medians):

- lash_nb: ``open`` (store + ``LashCore`` + ``session.open()``, active path residency) and
  ``read`` (every message of ``session.read_view().messages()``, decoded), on a file holding
  the 10,000-turn session (4 messages a turn: user text, a tool call, its result, the answer)
  and one other 1,000-turn session written in between;
- a branched session (2,000 turns, rewound to turn 1,000, then 1,000 more: 2,000 turns on
  the path, 1,000 off it) opened with active path residency;
- the raw floor: an independent ``duckdb.connect`` of the same file, the same content rows
  selected, ``json.loads`` of each;
- openai-agents: ``SQLiteSession(...).get_items()`` on an equal 40,000-item history
  (built with ``../shared/anchors/common.py``; skipped if it is not there);
- ``--keep-all``: the long session opened with ``keep_all`` residency too (the whole graph);
- ``--floor-gc-off``: the raw floor's work again with the garbage collector off, beside the
  floor (which keeps it on, as a plain script does); lash_nb pauses the collector for its
  bulk fetch and decode (ADR 0132), so this row says how much of the gap that closes;
- ``--against TREE``: the lash_nb rows again with ``PYTHONPATH=TREE`` (an older checkout),
  on a file written by that tree.

Nothing is asserted; numbers print to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

SID, OTHER, BRANCHED = "resume", "other", "branched"
USER = "What is the weather in Paris today, and should I take an umbrella? ({})"
ANSWER = "It is sunny in Paris, 21 degrees, light wind from the west."
RESULT = "sunny, 21C, wind W 10 km/h"


# --------------------------------------------------------------------------- seeding (child)


def _turn_nodes(prefix: str, i: int, leaf: str | None) -> list[Any]:
    from lash_nb._core.graph import SessionNode
    from lash_nb._core.records import Message, Part, PartKind, Role

    t, cid = f"{prefix}t{i}", f"call_{prefix}{i:08d}"
    msgs = [
        Message(f"{t}u", Role.USER, (Part(f"{t}u.p0", PartKind.TEXT, USER.format(i)),)),
        Message(f"{t}a", Role.ASSISTANT, (Part(f"{t}a.p0", PartKind.TOOL_CALL, '{"city":"Paris"}',
                                               cid, "get_weather"),)),
        Message(f"{t}r", Role.USER, (Part(f"{t}r.p0", PartKind.TOOL_RESULT, RESULT, cid,
                                          "get_weather"),)),
        Message(f"{t}f", Role.ASSISTANT, (Part(f"{t}f.p0", PartKind.PROSE, ANSWER),)),
    ]
    out = []
    for m in msgs:
        out.append(SessionNode(m.id, leaf, "message", m, None, 1_700_000_000_000 + i, t))
        leaf = m.id
    return out


async def _seed(path: str, turns: int) -> None:
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb._store.duckdb import DuckDBStore

    store = DuckDBStore(path)
    leases = {s: await store.try_acquire_lease(s, lease_owner_id("seed")) for s in (SID, OTHER, BRANCHED)}
    leaves: dict[str, str | None] = {SID: None, OTHER: None, BRANCHED: None}
    fork: str | None = None

    async def write(sid: str, first: int, n: int, prefix: str = "") -> None:
        nodes: list[Any] = []
        for i in range(first, first + n):
            nodes += _turn_nodes(prefix or sid[0], i, nodes[-1].node_id if nodes else leaves[sid])
        c = RuntimeCommit(sid, leases[sid], append_nodes=tuple(nodes), leaf_node_id=nodes[-1].node_id,
                          turn_index=first + n)
        await store.commit(c)
        leaves[sid] = nodes[-1].node_id

    step = 100
    for first in range(0, turns, step):
        await write(SID, first, step)
        if first < turns // 10:
            await write(OTHER, first, step // 10)
    for first in range(0, 2_000, step):
        await write(BRANCHED, first, step, "b")
        if first + step == 1_000:
            fork = leaves[BRANCHED]
        if first + step == 2_000:  # rewind to turn 1,000 and write 1,000 more turns there
            leaves[BRANCHED] = fork
            for again in range(2_000, 3_000, step):
                await write(BRANCHED, again, step, "c")
    await store.close()


# --------------------------------------------------------------------------- samples (child)


async def _lash_sample(path: str, sid: str, residency: str = "active_path_only") -> dict[str, Any]:
    t0 = time.perf_counter()
    import duckdb  # noqa: F401  (imported apart, as for the raw floor)

    from lash_nb import LashCore
    from lash_nb._store.duckdb import DuckDBStore

    t1, c1 = time.perf_counter(), time.process_time()
    store = DuckDBStore(path)
    core = LashCore.builder().store(store).build()
    session = await core.session(sid).residency(residency).open()
    t2, c2 = time.perf_counter(), time.process_time()
    messages = list(session.read_view().messages())
    parts = sum(len(m.parts) for m in messages)
    t3, c3 = time.perf_counter(), time.process_time()
    await session.close()
    await core.close()
    return {"import": (t1 - t0) * 1e3, "open": (t2 - t1) * 1e3, "read": (t3 - t2) * 1e3,
            "cpu": (c3 - c1) * 1e3, "open_cpu": (c2 - c1) * 1e3, "messages": len(messages),
            "parts": parts}


def _raw_sample(path: str, sid: str, gc_off: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    import duckdb

    if gc_off:  # only the --floor-gc-off row; the floor itself runs with the collector on
        import gc

        gc.disable()
    t1, c1 = time.perf_counter(), time.process_time()
    con = duckdb.connect(path)
    got = con.execute("SELECT content FROM graph_nodes WHERE session_id = ? AND NOT tombstoned "
                      "ORDER BY seq", [sid]).fetchall()
    values = [json.loads(r[0]) for r in got]
    t2, c2 = time.perf_counter(), time.process_time()
    con.close()
    return {"import": (t1 - t0) * 1e3, "open": 0.0, "read": (t2 - t1) * 1e3,
            "cpu": (c2 - c1) * 1e3, "messages": len(values)}


async def _oai_sample(path: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    from agents import SQLiteSession

    t1, c1 = time.perf_counter(), time.process_time()
    session = SQLiteSession(SID, path)
    items = await session.get_items()
    t2, c2 = time.perf_counter(), time.process_time()
    session.close()
    return {"import": (t1 - t0) * 1e3, "open": 0.0, "read": (t2 - t1) * 1e3,
            "cpu": (c2 - c1) * 1e3, "messages": len(items)}


async def _oai_seed(path: str, turns: int) -> None:
    anchors = os.path.join(_HERE, "..", "..", "shared", "anchors")
    sys.path.insert(0, anchors)
    from agents import SQLiteSession
    from common import make_openai_agents, openai_agents_seed  # type: ignore[import-not-found]

    _, turn, _ = make_openai_agents()
    session = SQLiteSession(SID, path)
    await session.add_items(await openai_agents_seed(turn, turns))
    session.close()


def child(argv: list[str]) -> None:
    kind, path = argv[0], argv[1]
    if kind == "seed":
        asyncio.run(_seed(path, int(argv[2])))
        return
    if kind == "oai-seed":
        asyncio.run(_oai_seed(path, int(argv[2])))
        return
    if kind == "lash":
        out = asyncio.run(_lash_sample(path, *argv[2:4]))
    elif kind == "raw":
        out = _raw_sample(path, argv[2], argv[3:] == ["gc-off"])
    else:
        out = asyncio.run(_oai_sample(path))
    print(json.dumps(out))


# --------------------------------------------------------------------------- driver


def _env(tree: str | None) -> dict[str, str]:
    """The child's environment: ``tree`` first on the path, bytecode caches written and used
    (a user's second kernel start reads them; compiling every module is no cost of resume)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if tree is not None:
        env["PYTHONPATH"] = tree
    return env


def _run(args: list[str], tree: str | None) -> dict[str, Any]:
    env = _env(tree)
    out = subprocess.run([sys.executable, "-P", __file__, "--child", *args], env=env,
                         capture_output=True, text=True, check=True)
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--turns", type=int, default=10_000)
    ap.add_argument("--against", action="append", default=[],
                    help="an older lash_nb checkout to run as well (may be given twice)")
    ap.add_argument("--keep-all", action="store_true",
                    help="also open the long session with keep_all residency (the whole graph)")
    ap.add_argument("--floor-gc-off", action="store_true",
                    help="also the raw floor's work with the garbage collector switched off "
                         "(lash_nb pauses it for its bulk fetch and decode, ADR 0132); the "
                         "floor row is unchanged")
    ap.add_argument("--child", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    here = str(Path(_HERE).parent)
    trees = {"new": here} | {Path(t).name: os.path.abspath(t) for t in args.against}
    folder = Path(tempfile.mkdtemp(prefix="lash-resume-"))
    t0 = time.perf_counter()
    files = {}
    for name, tree in trees.items():
        files[name] = str(folder / f"{name}.duckdb")
        subprocess.run([sys.executable, "-P", __file__, "--child", "seed", files[name],
                        str(args.turns)], env=_env(tree), check=True)
    oai = str(folder / "oai.sqlite")
    try:
        subprocess.run([sys.executable, "-P", __file__, "--child", "oai-seed", oai, str(args.turns)],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError:
        oai = ""
    print(f"# seeded in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{Path(p).name} {os.path.getsize(p) / 1e6:.1f} MB" for p in [*files.values(), oai] if p))

    cases: dict[str, tuple[list[str], str | None]] = {}
    for name, tree in trees.items():
        cases[f"lash_nb {name}: {args.turns:,}-turn session"] = (["lash", files[name], SID], tree)
        cases[f"lash_nb {name}: branched session"] = (["lash", files[name], BRANCHED], tree)
        if args.keep_all:
            cases[f"lash_nb {name}: whole graph (keep_all)"] = (
                ["lash", files[name], SID, "keep_all"], tree)
    cases["raw floor: duckdb.connect + rows + json.loads"] = (["raw", files["new"], SID], None)
    if args.floor_gc_off:
        cases["(not the floor) the same, collector off"] = (
            ["raw", files["new"], SID, "gc-off"], None)
    if oai:
        cases["openai-agents SQLiteSession.get_items()"] = (["oai", oai], None)
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in cases}
    for argv, tree in cases.values():  # untimed: writes the bytecode caches, warms the OS cache
        _run(argv, tree)
    rng = random.Random(7)
    for _ in range(args.rounds):
        order = list(cases)
        rng.shuffle(order)
        for k in order:
            argv, tree = cases[k]
            got[k].append(_run(argv, tree))
    print(f"\nfresh process per sample, {args.rounds} interleaved rounds, medians "
          "(open = store + core + session.open(); read = every message decoded; cpu = the "
          "process's CPU time over open+read, all threads, and over the open alone)")
    for k, runs in got.items():
        med = {f: statistics.median(r.get(f, 0.0) for r in runs)
               for f in ("import", "open", "read", "cpu", "open_cpu")}
        print(f"  {k:52s} open {med['open']:7.1f} ms   read {med['read']:7.1f} ms   "
              f"open+read {med['open'] + med['read']:7.1f} ms (cpu {med['cpu']:6.1f} ms, "
              f"of it open {med['open_cpu']:6.1f} ms)   "
              f"({runs[0]['messages']:,} messages;"
              f" imports {med['import']:.0f} ms)")


if __name__ == "__main__":
    main()
