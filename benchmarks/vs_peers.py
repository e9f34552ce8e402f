"""lash_nb beside the peers, in one process, interleaved rounds (same machine noise for all).

Uses the peers' zero-latency fakes from ``../shared/anchors/common.py`` (pydantic-ai,
openai-agents, LangGraph ``create_react_agent`` + ``InMemorySaver``) and lash_nb with the same
turn: user message -> one tool call -> tool result -> final text. lash_nb runs on its in-memory
store and on a DuckDB file. ``--histories 10,1000,10000`` adds longer histories (the peers
take seconds a turn at 10,000).

    python3 -m venv /tmp/venv-anchors && /tmp/venv-anchors/bin/pip install -r ../shared/anchors/requirements.txt
    /tmp/venv-anchors/bin/pip install --no-deps -e .
    /tmp/venv-anchors/bin/python benchmarks/vs_peers.py [--quick]
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/queue.py would shadow the standard library's queue module

import argparse
import asyncio
import importlib.util
import random
import statistics
import tempfile
import time
from pathlib import Path

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "anchors"
sys.path.insert(0, str(ANCHORS))
# load the sibling by path: putting benchmarks/ on sys.path would let benchmarks/queue.py
# shadow the standard library's queue module
_spec = importlib.util.spec_from_file_location("turn_overhead", Path(__file__).with_name("turn_overhead.py"))
assert _spec and _spec.loader
_turn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_turn)
get_weather, model = _turn.get_weather, _turn.model

from common import (  # noqa: E402
    langgraph_seed_messages,
    make_langgraph,
    make_openai_agents,
    make_pydantic_ai,
    openai_agents_seed,
    pydantic_ai_seed,
    user_text,
)

from lash_nb import LashCore  # noqa: E402
from lash_nb.providers import FunctionProvider  # noqa: E402


async def lash_session(store: str | None, history: int):
    b = LashCore.builder().provider(FunctionProvider(model)).model("bench").tools(get_weather)
    if store:
        b = b.store(store)
    s = await b.build().session(f"bench-{history}-{bool(store)}").open()
    for i in range(history):
        await s.turn(user_text(i)).run()
    return s


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--histories", default="", help="e.g. 10,1000,10000 (default 10,1000)")
    args = ap.parse_args()
    plan = {10: (10, 10), 1000: (3, 5)} if not args.quick else {10: (2, 5)}
    if args.histories:  # (rounds, turns per round): fewer turns where every peer turn takes seconds
        plan = {h: ((10, 10) if h <= 100 else (3, 5) if h <= 1000 else (3, 2))
                for h in map(int, args.histories.split(","))}
    try:
        from langgraph.checkpoint.memory import InMemorySaver
    except ImportError:
        InMemorySaver = None
    try:
        _, pyd_turn = make_pydantic_ai(async_tool=True)
    except ImportError:  # not installed here: measured without it
        pyd_turn = None
    _, oai_turn, _ = make_openai_agents(async_tool=True)
    tmp = tempfile.mkdtemp()
    print(f"# vs_peers: python {sys.version.split()[0]}, cpus={os.cpu_count()}"
          + ("" if pyd_turn else " (pydantic-ai not installed: left out)")
          + ("" if InMemorySaver else " (LangGraph not installed: left out)"))
    for history, (rounds, per_round) in plan.items():
        pyd_seed = await pydantic_ai_seed(pyd_turn, history) if pyd_turn else None
        oai_seed = await openai_agents_seed(oai_turn, history)
        mem = await lash_session(None, history)
        disk = await lash_session(str(Path(tmp) / f"h{history}.duckdb"), history)

        async def s_pyd(i, seed=pyd_seed):
            await pyd_turn(seed, i)

        async def s_oai(i, seed=oai_seed):
            await oai_turn(seed, i)

        async def s_mem(i, session=mem):
            await session.turn(user_text(i)).run()

        async def s_disk(i, session=disk):
            await session.turn(user_text(i)).run()

        systems = {"pydantic-ai": s_pyd, "openai-agents": s_oai,
                   "lash_nb (memory store)": s_mem, "lash_nb (DuckDB file, durable)": s_disk}
        if pyd_turn is None:
            del systems["pydantic-ai"]
        if InMemorySaver is not None:
            graph = make_langgraph(InMemorySaver())
            cfg = {"configurable": {"thread_id": f"t{history}"}}
            graph.update_state(cfg, {"messages": langgraph_seed_messages(history)}, as_node="agent")

            async def s_lg(i, graph=graph, cfg=cfg):
                graph.invoke({"messages": [{"role": "user", "content": user_text(i)}]}, cfg)

            systems["LangGraph (InMemorySaver)"] = s_lg
        samples: dict[str, list[float]] = {k: [] for k in systems}
        rng = random.Random(history)
        for fn in systems.values():
            await fn(0)
        for _ in range(rounds):
            order = list(systems)
            rng.shuffle(order)
            for name in order:
                for i in range(per_round):
                    t0 = time.perf_counter()
                    await systems[name](i)
                    samples[name].append((time.perf_counter() - t0) * 1000)
        print(f"\n## history = {history} turns")
        for name, xs in samples.items():
            print(f"   {name:32s} median {statistics.median(xs):8.3f} ms   n={len(xs)}")


if __name__ == "__main__":
    asyncio.run(main())
