"""Session reads: load a session (full graph or active path), events, turns, sessions.

Active-path residency reads only ``(node_id, parent_node_id)`` for the whole graph, walks the
parent links from the leaf in Python (a recursive CTE costs ~1 ms per node in DuckDB), then
fetches and decodes the contents of just the nodes on the path.
"""

from __future__ import annotations

from typing import Any

from ..._core.events import TurnActivity
from ..._core.usage import TokenLedgerEntry, TokenUsage
from ..base import PersistedSession, ReadScope, SessionMeta, TurnRecord
from . import rows

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
    if scope is ReadScope.ACTIVE_PATH:
        nodes = _active_path(con, sid, meta.leaf_node_id)
    else:
        nodes = rows.decode_nodes(con.execute(
            f"SELECT {rows.NODE_COLS} FROM graph_nodes WHERE session_id = ? AND NOT tombstoned "
            "ORDER BY seq",
            [sid],
        ).fetchall())
    return PersistedSession(meta, tuple(nodes), ledger, scope, tuple(row[11] or ()))


def _active_path(con: Any, sid: str, leaf: str | None) -> list[Any]:
    if leaf is None:
        return []
    parents = dict(con.execute(
        "SELECT node_id, parent_node_id FROM graph_nodes WHERE session_id = ? AND NOT tombstoned",
        [sid],
    ).fetchall())
    path: list[str] = []
    seen: set[str] = set()
    cur: str | None = leaf
    while cur is not None and cur in parents and cur not in seen:
        seen.add(cur)
        path.append(cur)
        cur = parents[cur]
    if not path:
        return []
    path.reverse()
    params: list[Any]
    if len(path) == len(parents):
        where, params = "session_id = ? AND NOT tombstoned", [sid]
    else:
        where, params = "session_id = ? AND NOT tombstoned AND list_contains(?, node_id)", [sid, path]
    fetched = rows.decode_nodes(con.execute(
        f"SELECT {rows.NODE_COLS} FROM graph_nodes WHERE {where}", params
    ).fetchall())
    by_id = {n.node_id: n for n in fetched}
    return [by_id[i] for i in path]


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
