"""Session reads: a session (full graph or active path), events, turns, the session list.

The active path is one recursive CTE from the leaf along ``parent_node_id`` (an index on
``(session_id, node_id)``), returned root first, as rows that the graph turns into node
objects only when asked (``StoredNodes``, ADR 0110). Row shapes and decoders are shared with
the DuckDB store (``epoch_ms`` exists in both databases).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._core.events import TurnActivity
from ..._core.graph import SessionNode, StoredNodes
from ..._core.usage import TokenLedgerEntry, TokenUsage
from ..base import PersistedSession, ReadScope, SessionMeta, TurnRecord
from ..duckdb import rows

_SESSION_SQL = f"""
SELECT {rows.META_COLS},
    ARRAY(SELECT turn_id FROM turns WHERE session_id = %(sid)s AND status = 'open' ORDER BY seq)
FROM sessions WHERE session_id = %(sid)s
"""

_LEDGER_SQL = """
SELECT source, model, sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens),
    sum(cache_write_input_tokens), sum(reasoning_output_tokens)
FROM usage_deltas
WHERE session_id = %s AND input_tokens + output_tokens + cache_read_input_tokens
    + cache_write_input_tokens > 0
GROUP BY source, model ORDER BY min(seq)
"""

_PATH_SQL = """
WITH RECURSIVE path(node_id, parent_node_id, depth) AS (
    SELECT node_id, parent_node_id, 0 FROM graph_nodes
    WHERE session_id = %(sid)s AND node_id = %(leaf)s AND NOT tombstoned
  UNION ALL
    SELECT g.node_id, g.parent_node_id, p.depth + 1 FROM path p
    JOIN graph_nodes g ON g.session_id = %(sid)s AND g.node_id = p.parent_node_id
    WHERE NOT g.tombstoned AND p.depth < 1000000
) CYCLE node_id SET is_cycle USING cycle_path
SELECT g.node_id, nullif(g.kind, 'message'), epoch_ms(g.created_at), g.turn_id, g.content
FROM path p JOIN graph_nodes g ON g.session_id = %(sid)s AND g.node_id = p.node_id
WHERE NOT p.is_cycle ORDER BY p.depth DESC
"""
# the rows as ``StoredNodes`` keeps them (each node's parent is the one before it), and then
# the root's own parent (None, or a parent that is gone)
_ROOT_PARENT_SQL = "SELECT parent_node_id FROM graph_nodes WHERE session_id = %s AND node_id = %s"


async def load_session(con: Any, sid: str, scope: ReadScope) -> PersistedSession | None:
    cur = await con.execute(_SESSION_SQL, {"sid": sid})
    row = await cur.fetchone()
    if row is None:
        return None
    meta = rows.decode_meta(row[:11])
    cur = await con.execute(_LEDGER_SQL, [sid])
    ledger = tuple(
        TokenLedgerEntry(r[0], r[1], TokenUsage(*(int(v) for v in r[2:7])))
        for r in await cur.fetchall()
    )
    nodes: Sequence[SessionNode] = ()
    if scope is ReadScope.ACTIVE_PATH and meta.leaf_node_id is not None:
        cur = await con.execute(_PATH_SQL, {"sid": sid, "leaf": meta.leaf_node_id})
        path_rows = await cur.fetchall()
        if path_rows:
            cur = await con.execute(_ROOT_PARENT_SQL, [sid, path_rows[0][0]])
            nodes = StoredNodes(path_rows, (await cur.fetchone() or (None,))[0])
    elif scope is not ReadScope.ACTIVE_PATH:
        cur = await con.execute(
            "SELECT node_id, nullif(kind, 'message'), epoch_ms(created_at), turn_id, content, "
            "parent_node_id FROM graph_nodes WHERE session_id = %s AND NOT tombstoned "
            "ORDER BY seq", [sid])
        nodes = StoredNodes(await cur.fetchall())
    return PersistedSession(meta, nodes, ledger, scope, tuple(row[11] or ()))


async def list_sessions(con: Any) -> list[SessionMeta]:
    cur = await con.execute(f"SELECT {rows.META_COLS} FROM sessions ORDER BY created_at, session_id")
    return [rows.decode_meta(r) for r in await cur.fetchall()]


async def load_events(con: Any, sid: str, turn_id: str | None) -> list[TurnActivity]:
    sql = "SELECT activity_id, correlation_id, turn_id, payload FROM turn_events WHERE session_id = %s"
    params: list[Any] = [sid]
    if turn_id is not None:
        sql += " AND turn_id = %s"
        params.append(turn_id)
    cur = await con.execute(sql + " ORDER BY seq", params)
    return rows.decode_events(await cur.fetchall())


async def load_turns(con: Any, sid: str) -> list[TurnRecord]:
    cur = await con.execute(
        f"SELECT {rows.TURN_COLS} FROM turns WHERE session_id = %s AND status = 'committed' "
        "ORDER BY seq", [sid])
    return [rows.decode_turn(r) for r in await cur.fetchall()]


async def delete_session(con: Any, sid: str) -> None:
    async with con.transaction():
        for table in (
            "graph_nodes", "turns", "usage_deltas", "llm_calls", "tool_calls", "turn_events",
            "queued_work_batches", "queue_history", "execution_leases", "turn_cancel_requests",
            "sessions",
        ):
            await con.execute(f"DELETE FROM {table} WHERE session_id = %s", [sid])


async def tombstone_nodes(con: Any, sid: str, node_ids: list[str]) -> int:
    cur = await con.execute(
        "UPDATE graph_nodes SET tombstoned = true "
        "WHERE session_id = %s AND NOT tombstoned AND node_id = ANY(%s)", [sid, node_ids])
    return max(0, int(cur.rowcount))


async def delete_tombstoned(con: Any) -> int:
    cur = await con.execute("DELETE FROM graph_nodes WHERE tombstoned")
    return max(0, int(cur.rowcount))
