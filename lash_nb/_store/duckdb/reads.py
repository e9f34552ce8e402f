"""Session reads: load a session (full graph or active path), events, turns, sessions.

A load fetches the session's node rows as tuples and hands them over as they are
(``StoredNodes``, ADR 0110): the graph makes node objects only when something asks for
nodes, and decodes the messages straight from the rows. No pyarrow, pandas or NumPy on this
path: in a fresh process their imports cost more than they save (NumPy columns save ~20 ms of
CPU at 40,000 rows; importing NumPy costs ~60 ms).

Active-path residency reads only the path's rows (ADR 0076). Nodes are appended, so the
session's rows in ``seq`` order fall into runs where each node's parent is the row before
it; a run starts at a root, or where a rewind or a clone parented a node elsewhere. One
statement returns just the run starts (with their parent's ``seq``) and the leaf's ``seq``;
the path is a few ``seq`` ranges, walked run by run in Python, and a second statement
fetches the rows in those ranges. A linear session is one range: every row, one pass. A
path with a node stored before its parent (only a graph written whole from outside, e.g.
``open_with_state``, can have one) is walked by parent links over every row instead (nodes
made at once). A whole-graph read fetches every live row with its parent; the graph walks
those rows run by run the same way (``StoredNodes.walk``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import starmap
from typing import Any

from ..._core.events import TurnActivity
from ..._core.gc_pause import gc_paused
from ..._core.graph import SessionNode, StoredNodes
from ..._core.usage import TokenLedgerEntry, TokenUsage
from ..base import PersistedSession, ReadScope, SessionMeta, TurnRecord
from . import rows
from .arrow import need_bindable

_SESSION_SQL = f"""
SELECT {rows.META_COLS},
    (SELECT list(turn_id ORDER BY seq) FROM turns WHERE session_id = $sid AND status = 'open')
FROM sessions WHERE session_id = $sid
"""

_LEDGER_SQL = """
SELECT source, model, sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
    sum(cache_write_input_tokens), sum(reasoning_output_tokens)
FROM usage_deltas
WHERE session_id = ? AND input_tokens + output_tokens + cache_read_input_tokens
    + cache_write_input_tokens > 0
GROUP BY source, model ORDER BY min(seq)
"""


def load_session(con: Any, sid: str, scope: ReadScope) -> PersistedSession | None:
    row = rows.first(con.execute(_SESSION_SQL, {"sid": sid}))
    if row is None:
        return None
    meta = rows.decode_meta(row[:11])
    ledger = tuple(
        TokenLedgerEntry(r[0], r[1], TokenUsage(*(int(v) for v in r[2:7])))
        for r in con.execute(_LEDGER_SQL, [sid]).fetchall()
    )
    nodes: Sequence[SessionNode] = ()
    if scope is ReadScope.FULL_GRAPH:
        with gc_paused():  # a row tuple per node: no cycles (gc_pause.py)
            nodes = StoredNodes(con.execute(_GRAPH_SQL, {"sid": sid}).fetchall())
    elif meta.leaf_node_id is None:
        pass
    elif (found := _path_ranges(con, sid, meta.leaf_node_id)) is None:
        nodes = _walk(_nodes(con, sid, None), meta.leaf_node_id)
    elif found[0]:
        nodes = _path(con, sid, *found)
    return PersistedSession(meta, nodes, ledger, scope, tuple(row[11] or ()))


_NODES_SQL = (f"SELECT {rows.NODE_ARGS} FROM graph_nodes "
              "WHERE session_id = $sid AND NOT tombstoned")

# the starts of the runs (a node whose parent is not the row before it), with the parent's
# seq (NULL: a root, or a parent that is gone) and id, and the leaf's row
_RUNS_SQL = """
WITH live AS (
    SELECT seq, node_id, parent_node_id, lag(node_id, 1, '') OVER (ORDER BY seq) AS prev
    FROM graph_nodes WHERE session_id = $sid AND NOT tombstoned)
SELECT s.seq, p.seq, s.parent_node_id IS DISTINCT FROM s.prev, s.node_id = $leaf,
    s.parent_node_id
FROM live s LEFT JOIN live p ON p.node_id = s.parent_node_id
WHERE s.parent_node_id IS DISTINCT FROM s.prev OR s.node_id = $leaf
ORDER BY s.seq
"""


# rows as ``StoredNodes`` keeps them: the kind only when it is not "message"; an active path
# leaves the parent out (the row before it)
_PATH_SQL = ("SELECT node_id, nullif(kind, 'message'), epoch_ms(created_at), turn_id, content "
             "FROM graph_nodes WHERE session_id = $sid AND NOT tombstoned")
_GRAPH_SQL = _PATH_SQL.replace(", content ", ", content, parent_node_id ") + " ORDER BY seq"


def _nodes(con: Any, sid: str, ranges: list[tuple[int, int]] | None) -> tuple[SessionNode, ...]:
    """The live nodes in ``seq`` order: all, or those in ``ranges``."""
    sql, params = _in_ranges(_NODES_SQL, sid, ranges)
    return tuple(starmap(SessionNode, con.execute(sql, params).fetchall()))


def _path(con: Any, sid: str, ranges: list[tuple[int, int]], root_parent: str | None) -> StoredNodes:
    """The rows of the active path (``ranges`` from :func:`_path_ranges`), kept as rows: the
    graph makes node objects only when something asks for them (``graph.py``)."""
    sql, params = _in_ranges(_PATH_SQL, sid, ranges)
    with gc_paused():  # a row tuple per node: no cycles (gc_pause.py)
        return StoredNodes(con.execute(sql, params).fetchall(), root_parent)


def _in_ranges(sql: str, sid: str, ranges: list[tuple[int, int]] | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"sid": sid}
    if ranges is not None and len(ranges) > 1:
        need_bindable()  # lists (arrow.py)
        sql += (" AND seq IN (SELECT unnest(range(r.lo, r.hi + 1)) FROM "
                "(SELECT unnest($lo) AS lo, unnest($hi) AS hi) r)")
        params["lo"], params["hi"] = [r[0] for r in ranges], [r[1] for r in ranges]
    elif ranges is not None:
        sql += " AND seq BETWEEN $lo AND $hi"
        params["lo"], params["hi"] = ranges[0]
    return sql + " ORDER BY seq", params


def _path_ranges(con: Any, sid: str, leaf: str) -> tuple[list[tuple[int, int]], str | None] | None:
    """The ``seq`` ranges of the active path from the root to ``leaf``, root first (empty:
    a leaf that is not among the live rows; None: the path has a node stored before its
    parent, which appends never do but a graph written whole from outside may), and the
    root's ``parent_node_id`` (None, or a parent that is gone)."""
    found = con.execute(_RUNS_SQL, {"sid": sid, "leaf": leaf}).fetchall()
    starts = [r[0] for r in found if r[2]]
    parent_of = {r[0]: r[1] for r in found if r[2]}
    parent_id = {r[0]: r[4] for r in found if r[2]}
    at = next((r[0] for r in found if r[3]), None)
    ranges: list[tuple[int, int]] = []
    while at is not None:
        start = starts[bisect_right(starts, at) - 1]
        ranges.append((start, at))
        at = parent_of[start]
        if at is not None and at >= start:
            return None
    ranges.reverse()
    return ranges, (parent_id[ranges[0][0]] if ranges else None)


def _walk(nodes: tuple[SessionNode, ...], leaf: str) -> tuple[SessionNode, ...]:
    """The path from the root to ``leaf`` by parent links, whatever the rows' order."""
    by_id = {n.node_id: n for n in nodes}
    path: list[SessionNode] = []
    cur: str | None = leaf
    while cur is not None and cur in by_id and len(path) < len(nodes):  # a cycle ends it
        path.append(by_id[cur])
        cur = path[-1].parent_node_id
    path.reverse()
    return tuple(path)


def list_sessions(con: Any) -> list[SessionMeta]:
    return [
        rows.decode_meta(r)
        for r in con.execute(
            f"SELECT {rows.META_COLS} FROM sessions ORDER BY created_at, rowid"
        ).fetchall()
    ]


def load_events(con: Any, sid: str, turn_id: str | None) -> list[TurnActivity]:
    sql = "SELECT activity_id, correlation_id, turn_id, payload FROM turn_events WHERE session_id = ?"
    params: list[Any] = [sid]
    if turn_id is not None:
        sql += " AND turn_id = ?"
        params.append(turn_id)
    return rows.decode_events(con.execute(sql + " ORDER BY seq", params).fetchall())


def load_turns(con: Any, sid: str) -> list[TurnRecord]:
    return [
        rows.decode_turn(r)
        for r in con.execute(
            f"SELECT {rows.TURN_COLS} FROM turns WHERE session_id = ? AND status = 'committed' "
            "ORDER BY seq",
            [sid],
        ).fetchall()
    ]


def delete_session(con: Any, sid: str) -> None:
    for table in (
        "graph_nodes", "turns", "usage_deltas", "llm_calls", "tool_calls", "turn_events",
        "queued_work_batches", "queue_history", "execution_leases", "sessions",
    ):
        con.execute(f"DELETE FROM {table} WHERE session_id = ?", [sid])
