"""The turn id a queued turn with the caller's id runs under (``queued_turn_id``, ADR 168):
the caller's id while the session holds no turn of it, else ``<id>:g<lease generation>``.
It is answered from the graph's sorted turn ids, not by reading every node (ADR 193); the
answers are the rule's in each situation it serves: a first attempt, a re-run after a cut
attempt (its nodes left in the graph, or taken off again), a graph read from a store (rows
not made into nodes yet), and ids that only look alike."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from lash_nb import LashCore, TurnInput
from lash_nb._core.graph import SessionGraph, SessionNode, StoredNodes
from lash_nb._runtime.turn_records import queued_turn_id
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore
from lash_nb.testing.conformance import node

TRACE = "ticket-42"


def _node(graph: SessionGraph, node_id: str, turn_id: str | None) -> SessionNode:
    return graph.append(node(node_id, graph.leaf_node_id, node_id, turn_id))


def _rule(graph: SessionGraph, base: str, fencing: int) -> str:
    """ADR 168's rule, read off every node (the way it was answered before)."""
    held = any(n.turn_id == base or (n.turn_id or "").startswith(f"{base}:g")
               for n in graph.nodes())
    return f"{base}:g{fencing}" if held else base


def test_a_first_attempt_runs_under_the_callers_id_and_a_rerun_under_a_new_one() -> None:
    graph = SessionGraph()
    assert queued_turn_id(graph, TRACE, 3) == TRACE  # an empty session
    for i, turn in enumerate(["t1", "ticket-4", "ticket-420", "ticket-42x", "ticket-42:x", None]):
        _node(graph, f"n{i}", turn)  # ids that only look like the caller's
    assert queued_turn_id(graph, TRACE, 3) == TRACE
    _node(graph, "cut", TRACE)  # the first attempt, cut by a worker's stop
    assert queued_turn_id(graph, TRACE, 7) == "ticket-42:g7"
    _node(graph, "again", "ticket-42:g7")
    assert queued_turn_id(graph, TRACE, 9) == "ticket-42:g9"
    assert queued_turn_id(graph, "ticket-4", 9) == "ticket-4:g9"  # its own turn is there
    assert queued_turn_id(graph, "ticket", 9) == "ticket"  # no "ticket:g..." and no "ticket"


def test_an_attempt_taken_off_the_graph_no_longer_counts() -> None:
    graph = SessionGraph()
    _node(graph, "a", "t1")
    _node(graph, "b", "ticket-42:g2")  # an attempt whose commit the store refused
    assert queued_turn_id(graph, TRACE, 5) == "ticket-42:g5"
    graph.branch_to("a")
    graph.tombstone(["b"])  # ADR 175: the view shows what the store holds
    assert queued_turn_id(graph, TRACE, 5) == TRACE
    _node(graph, "c", TRACE)
    assert queued_turn_id(graph, TRACE, 6) == "ticket-42:g6"


def test_a_graph_read_from_a_store_answers_before_and_after_its_nodes_are_made() -> None:
    rows = [("n1", None, 1, "t1", '{"role":"user","parts":[]}', None),
            ("n2", None, 2, TRACE, '{"role":"user","parts":[]}', "n1"),
            ("n3", None, 3, "t3", '{"role":"user","parts":[]}', "n2")]
    graph = SessionGraph.from_stored(StoredNodes(rows), "n3")
    assert queued_turn_id(graph, TRACE, 4) == "ticket-42:g4"
    assert queued_turn_id(graph, "t3", 4) == "t3:g4"
    assert queued_turn_id(graph, "t4", 4) == "t4"
    _node(graph, "n4", "t4")  # appended to the rows' tail
    assert queued_turn_id(graph, "t4", 4) == "t4:g4"
    assert graph.get("n1") is not None  # the nodes are made now
    _node(graph, "n5", "t5:g1")
    assert [queued_turn_id(graph, b, 8) for b in ("t1", "t4", "t5", "t6")] == \
        ["t1:g8", "t4:g8", "t5:g8", "t6"]


def test_the_answer_is_the_rules_through_appends_branches_and_tombstones() -> None:
    rng = random.Random(193)
    ids = ["a", "a:g1", "a:g1:g2", "a:gx", "a:", "ab", "a:h", "b", "b:g3", None]
    bases = ["a", "a:g1", "ab", "b", "c", "a:"]
    for _ in range(40):
        graph = SessionGraph()
        made: list[str] = []
        for step in range(60):
            roll = rng.random()
            if roll < 0.75 or not made:
                made.append(f"n{step}")
                _node(graph, made[-1], rng.choice(ids))
            elif roll < 0.9:
                graph.branch_to(rng.choice(made))
            else:
                graph.tombstone(rng.sample(made, k=min(3, len(made))))  # (not the path's)
                made = [m for m in made if m in graph]
            base = rng.choice(bases)
            assert queued_turn_id(graph, base, step) == _rule(graph, base, step)


def test_a_reopened_duckdb_session_with_a_cut_attempt_gets_a_new_id(tmp_path: Path) -> None:
    path = tmp_path / "nb.duckdb"

    async def run() -> tuple[str, str, str]:
        core = LashCore.builder().provider(FunctionProvider(lambda r: "an answer")).store(
            DuckDBStore(path)).build()
        s = await core.session("nb").open()
        for i in range(30):
            await s.turn(f"question {i}").run()
        fresh = queued_turn_id(s.parts.state.graph, TRACE, 2)
        await s.turn(TurnInput.text("the caller's prompt").with_trace_turn_id(TRACE)).run()
        await core.close()
        again = LashCore.builder().provider(FunctionProvider(lambda r: "x")).store(
            DuckDBStore(path)).build()
        graph = (await again.session("nb").open()).parts.state.graph
        after = queued_turn_id(graph, TRACE, 2), queued_turn_id(graph, "question", 2)
        await again.close()
        return fresh, *after

    assert asyncio.run(run()) == (TRACE, "ticket-42:g2", "question")
