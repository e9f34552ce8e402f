"""A memory store's rows as store-schema tables in an in-memory DuckDB database.

The memory store keeps records in Python; this reads a consistent snapshot of them under the
store's lock and encodes them with the DuckDB store's own column builders (``rows.py``), so
both stores feed the report SQL identical rows. One insert per table, never one per row.
Finished queued work (completed or cancelled batches) fills ``queue_history`` as in the
durable stores.
"""

from __future__ import annotations

import json
from typing import Any

from .._store.duckdb import rows
from .._store.memory import MemoryStore
from .tables import insert_arrow


def load_memory_store(con: Any, store: MemoryStore) -> None:
    import pyarrow as pa

    with store._lock:  # a snapshot: commits wait until the columns are built
        sessions = list(store._sessions.values())
        batches = list(store._batches.values())
        history = list(store._history)
        leases = dict(store._leases)
        cols = _collect(sessions)
    for table in ("graph_nodes", "usage_deltas", "llm_calls", "tool_calls"):
        if cols[table]["seq"]:
            rows.insert(con, table, cols[table])
    insert_arrow(con, "sessions", pa.table(cols["sessions"]))
    insert_arrow(con, "turns", pa.table(cols["turns"]))
    insert_arrow(con, "queued_work_batches", pa.table(_batch_columns(batches)))
    insert_arrow(con, "queue_history", pa.table(_history_columns(history)))
    insert_arrow(con, "execution_leases", pa.table({
        "session_id": list(leases),
        "owner_id": [r.owner_id for r in leases.values()],
        "token": [r.token for r in leases.values()],
        "fencing": pa.array([r.fencing for r in leases.values()], pa.int64()),
        "expires_at_ms": pa.array([r.expires_at_ms for r in leases.values()], pa.int64()),
    }))


def _merge(into: dict[str, list[Any]], part: dict[str, list[Any]]) -> None:
    for k, v in part.items():
        into.setdefault(k, []).extend(v)


def _collect(sessions: list[Any]) -> dict[str, dict[str, list[Any]]]:
    import pyarrow as pa

    out: dict[str, dict[str, list[Any]]] = {
        t: {"seq": []} for t in ("graph_nodes", "usage_deltas", "llm_calls", "tool_calls")
    }
    turns: dict[str, list[Any]] = {k: [] for k in (
        "session_id", "turn_id", "status", "outcome", "stop_reason", "started_at",
        "duration_ms", "commit_hash", "result", "seq")}
    for s in sessions:
        sid = s.meta.session_id
        seq = 1
        _merge(out["graph_nodes"], rows.node_columns(sid, seq, s.nodes))
        seq += len(s.nodes)
        started = {t.turn_id: t.started_at_ms for t in s.turns.values()} | dict(s.open_turns)
        usage = rows.usage_columns(sid, seq, 0, s.usage_rows)
        # usage rows carry no time in memory: date them by their turn's start
        usage["created_at"] = [started.get(t, s.meta.updated_at_ms) for t in usage["turn_id"]]
        _merge(out["usage_deltas"], usage)
        seq += len(s.usage_rows)
        llm = rows.llm_call_columns(sid, seq, s.llm_calls)
        _merge(out["llm_calls"], llm)
        seq += len(llm["seq"])
        _merge(out["tool_calls"], rows.tool_call_columns(sid, seq, s.tool_calls))
        seq += len(s.tool_calls)
        for t in s.turns.values():
            _turn_row(turns, sid, t.turn_id, "committed", t.outcome, t.stop_reason,
                      t.started_at_ms, t.duration_ms, t.commit_hash, json.dumps(dict(t.result)), seq)
            seq += 1
        for tid, started_ms in s.open_turns.items():
            _turn_row(turns, sid, tid, "open", None, None, started_ms, None, None, None, seq)
            seq += 1
    metas = [s.meta for s in sessions]
    out["sessions"] = {
        "session_id": [m.session_id for m in metas],
        "provider_id": [m.provider_id for m in metas],
        "model": [m.model for m in metas],
        "parent_session_id": pa.array([m.parent_session_id for m in metas], pa.string()),
        "policy": [rows.dumps(dict(m.policy)) for m in metas],
        "head_revision": pa.array([m.head_revision for m in metas], pa.int64()),
        "leaf_node_id": pa.array([m.leaf_node_id for m in metas], pa.string()),
        "turn_index": pa.array([m.turn_index for m in metas], pa.int64()),
        "created_at": pa.array([m.created_at_ms for m in metas], pa.timestamp("ms")),
        "updated_at": pa.array([m.updated_at_ms for m in metas], pa.timestamp("ms")),
        "next_seq": pa.array([0] * len(metas), pa.int64()),
    }
    out["turns"] = {
        **{k: pa.array(v, pa.string()) for k, v in turns.items()
           if k not in ("started_at", "duration_ms", "seq")},
        "started_at": pa.array(turns["started_at"], pa.timestamp("ms")),
        "duration_ms": pa.array(turns["duration_ms"], pa.float64()),
        "seq": pa.array(turns["seq"], pa.int64()),
    }
    return out


def _turn_row(turns: dict[str, list[Any]], *values: Any) -> None:
    for key, value in zip(turns, values, strict=True):
        turns[key].append(value)


def _batch_columns(batches: list[Any]) -> dict[str, Any]:
    import pyarrow as pa

    b = [r.batch for r in batches]
    i64 = pa.int64()
    return {
        "enqueue_seq": pa.array([x.enqueue_seq for x in b], i64),
        "batch_id": pa.array([x.batch_id for x in b], pa.string()),
        "session_id": pa.array([x.session_id for x in b], pa.string()),
        "source_key": pa.array([x.source_key for x in b], pa.string()),
        "delivery_policy": pa.array([x.delivery_policy.value for x in b], pa.string()),
        "slot_policy": pa.array([x.slot_policy.value for x in b], pa.string()),
        "merge_key": pa.array([x.merge_key for x in b], pa.string()),
        "available_at_ms": pa.array([x.available_at_ms for x in b], i64),
        "enqueued_at_ms": pa.array([x.enqueued_at_ms for x in b], i64),
        "claim_id": pa.array([r.claim_id for r in batches], pa.string()),
        "claim_generation": pa.array([r.claim_generation for r in batches], i64),
        "claimed_at_ms": pa.array([r.claimed_at_ms for r in batches], i64),
        "attempts": pa.array([r.attempts for r in batches], i64),
        "error": pa.array([r.error for r in batches], pa.string()),
        "failed_at_ms": pa.array([r.failed_at_ms for r in batches], i64),
        "items": pa.array([rows.dumps([
            {"item_id": i.item_id, "kind": i.kind, "payload": dict(i.payload)} for i in x.items
        ]) for x in b], pa.string()),
    }


def _history_columns(history: list[Any]) -> dict[str, Any]:
    import pyarrow as pa

    b = [h.row.batch for h in history]
    i64, ms = pa.int64(), pa.timestamp("ms")
    return {
        "batch_id": pa.array([x.batch_id for x in b], pa.string()),
        "session_id": pa.array([x.session_id for x in b], pa.string()),
        "source_key": pa.array([x.source_key for x in b], pa.string()),
        "delivery_policy": pa.array([x.delivery_policy.value for x in b], pa.string()),
        "slot_policy": pa.array([x.slot_policy.value for x in b], pa.string()),
        "enqueue_seq": pa.array([x.enqueue_seq for x in b], i64),
        "enqueued_at_ms": pa.array([x.enqueued_at_ms for x in b], i64),
        "claimed_at_ms": pa.array([h.row.claimed_at_ms for h in history], i64),
        "finished_at_ms": pa.array([h.finished_at_ms for h in history], i64),
        "final_state": pa.array([h.final_state for h in history], pa.string()),
        "turn_id": pa.array([h.turn_id for h in history], pa.string()),
        "attempts": pa.array([h.row.attempts for h in history], i64),
        "enqueued_at": pa.array([x.enqueued_at_ms for x in b], ms),
        "finished_at": pa.array([h.finished_at_ms for h in history], ms),
    }
