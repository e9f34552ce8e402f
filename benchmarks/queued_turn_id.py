"""What ``queued_turn_id`` costs per queued turn, beside the scan it replaced (ADR 193).

    .venv/bin/python benchmarks/queued_turn_id.py [--histories 1000 10000 100000] [--turns 200]

A session graph as a store reads it (``StoredNodes`` rows, 4 nodes a turn, ``--histories``
nodes) on a worker's handle: ``--turns`` queued turns, each asking for its turn id and then
appending its 4 nodes. Prints, per history (median µs per ask): the code before (every
node's turn id read: ``any(is_attempt(...) for t in graph.turn_ids())``) and now: its first
ask (the sorted turn ids are made then) and the later ones. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

from lash_nb._core.graph import SessionGraph, StoredNodes
from lash_nb._runtime.turn_records import is_attempt, queued_turn_id
from lash_nb.testing.conformance import node

TEXT = '{"role":"user","parts":[{"kind":"text","content":"q"}]}'


def graph_of(nodes: int) -> SessionGraph:
    rows = [(f"n{i}", None, i, f"turn-{i // 4}", TEXT, f"n{i - 1}" if i else None)
            for i in range(nodes)]
    return SessionGraph.from_stored(StoredNodes(rows), f"n{nodes - 1}")


def before(graph: SessionGraph, base: str, fencing: int) -> str:
    """The code before: every node's turn id read."""
    prefix = f"{base}:g"
    if any(is_attempt(t, prefix) for t in graph.turn_ids()):
        return f"{prefix}{fencing}"
    return base


def asks(nodes: int, turns: int, ask: object) -> list[float]:
    graph = graph_of(nodes)
    took = []
    for k in range(turns):
        t = time.perf_counter()
        got = ask(graph, f"ticket-{k}", 3)  # type: ignore[operator]
        took.append((time.perf_counter() - t) * 1e6)
        assert got == f"ticket-{k}", got
        for j in range(4):
            graph.append(node(f"x{k}.{j}", graph.leaf_node_id, "q", f"ticket-{k}"))
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--histories", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--turns", type=int, default=200)
    args = ap.parse_args()
    print(f"µs per ask, {args.turns} queued turns on one handle (median; first ask apart)")
    for n in args.histories:
        old = asks(n, args.turns, before)
        new = asks(n, args.turns, queued_turn_id)
        print(f"  {n:>7} nodes: before {statistics.median(old):9.1f}   "
              f"now first {new[0]:9.1f}, then {statistics.median(new[1:]):6.2f}")


if __name__ == "__main__":
    main()
