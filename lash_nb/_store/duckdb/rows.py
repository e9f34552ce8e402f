"""Records <-> DuckDB rows: Arrow batches for inserts, decoders for reads."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._core.events import TurnActivity
from ..._core.graph import SessionNode
from ..._core.json_text import encoder
from ..._core.queue import DeliveryPolicy, QueuedWorkBatch, QueuedWorkItem, SlotPolicy
from ..._core.records import ToolCallRecord
from ..._core.usage import BUCKETS, LlmCallRecord
from ..base import SessionMeta, TurnRecord, UsageDelta
from .arrow import import_arrow
from .schema import ADDED_DEFAULTS, arrow_schemas

_SCHEMAS: dict[str, Any] | None = None


# the C encoders built once (``json_text.py``): the same text as ``JSONEncoder(...).encode``
_encode = encoder(separators=(",", ":"), default=str)


# a commit's log body: dicts and lists the store built itself from JSON values, never a
# cycle, so no check for one (~30% of the encoding of a turn's final commit)
_encode_built = encoder(separators=(",", ":"), default=str, check_circular=False)


def dumps(value: Any) -> str:
    return _encode(value)


def dumps_built(value: Any) -> str:
    """``dumps`` for a value built by the store from JSON values (a commit's log body)."""
    return _encode_built(value)


def first(result: Any) -> Any:
    """The first row of a result, read to its end (a half-read result blocks the connection)."""
    got = result.fetchall()
    return got[0] if got else None


def insert(con: Any, table: str, columns: Mapping[str, Sequence[Any]], statement: str = "") -> None:
    """Insert one Arrow batch (one statement, never one per row). ``statement`` is the SQL
    that reads it as ``batch`` (default: ``INSERT INTO <table> BY NAME``)."""
    global _SCHEMAS
    import_arrow()  # not racing the store's background import
    import pyarrow as pa

    if _SCHEMAS is None:
        _SCHEMAS = arrow_schemas()
    schema = _SCHEMAS[table]
    n = len(next(iter(columns.values()))) if columns else 0
    # a column added later (``schema.ADDED_COLUMNS``) is absent from older commit_log rows
    batch = pa.table([pa.array(columns[f.name] if f.name in columns else [ADDED_DEFAULTS.get(  # noqa: F841
        (table, f.name))] * n, f.type) for f in schema], schema=schema)
    # ``batch`` is found by DuckDB's replacement scan of this frame's locals: unlike
    # register()/unregister() it costs no extra calls (~1 ms saved per table)
    con.execute(statement or f"INSERT INTO {table} BY NAME SELECT * FROM batch")


def node_columns(sid: str, seq0: int, nodes: Sequence[SessionNode]) -> dict[str, list[Any]]:
    return {
        "session_id": [sid] * len(nodes),
        "seq": list(range(seq0, seq0 + len(nodes))),
        "node_id": [n.node_id for n in nodes],
        "parent_node_id": [n.parent_node_id for n in nodes],
        "kind": [n.kind for n in nodes],
        "role": [n.role for n in nodes],
        "content": [n.content_text() for n in nodes],
        "created_at": [n.created_at_ms for n in nodes],
        "turn_id": [n.turn_id for n in nodes],
    }


def usage_columns(sid: str, seq0: int, t: int, deltas: Sequence[UsageDelta]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {
        "session_id": [sid] * len(deltas),
        "turn_id": [d.turn_id for d in deltas],
        "seq": list(range(seq0, seq0 + len(deltas))),
        "source": [d.source for d in deltas],
        "model": [d.model for d in deltas],
        "created_at": [t] * len(deltas),
        "estimated": [bool(getattr(d, "estimated", False)) for d in deltas],
    }
    for b in BUCKETS:
        out[b] = [getattr(d.usage, b) for d in deltas]
    return out


def llm_call_columns(
    sid: str, seq0: int, calls: Sequence[tuple[str, LlmCallRecord]]
) -> dict[str, list[Any]]:
    rows = [(tid, c, a) for tid, c in calls for a in c.attempts]
    out: dict[str, list[Any]] = {
        "session_id": [sid] * len(rows),
        "turn_id": [r[0] for r in rows],
        "call_id": [r[1].call_id for r in rows],
        "model": [r[1].model for r in rows],
        "protocol_iteration": [r[1].protocol_iteration for r in rows],
        "attempt": [r[2].ordinal for r in rows],
        "started_at": [r[2].started_at_ms for r in rows],
        "duration_ms": [float(r[2].duration_ms) for r in rows],
        "outcome": [r[2].outcome for r in rows],
        "request_id": [r[2].request_id for r in rows],
        "served_model": [r[2].served_model for r in rows],
        "error": [r[2].error for r in rows],
        "error_kind": [r[2].error_kind for r in rows],
        "seq": list(range(seq0, seq0 + len(rows))),
        "estimated": [bool(getattr(r[2], "estimated", False)) for r in rows],
    }
    for b in BUCKETS:
        out[b] = [getattr(r[2].usage, b) if r[2].usage else 0 for r in rows]
    return out


def tool_call_columns(
    sid: str, seq0: int, calls: Sequence[tuple[str, ToolCallRecord]]
) -> dict[str, list[Any]]:
    return {
        "session_id": [sid] * len(calls),
        "turn_id": [tid for tid, _ in calls],
        "call_id": [c.call_id for _, c in calls],
        "name": [c.tool for _, c in calls],
        "args": [dumps(c.args) for _, c in calls],
        "output": [dumps(c.output) for _, c in calls],
        "success": [bool(c.success) for _, c in calls],
        "duration_ms": [float(c.duration_ms) for _, c in calls],
        "started_at": [c.started_at_ms for _, c in calls],
        "interrupted": [bool(c.interrupted) for _, c in calls],
        "seq": list(range(seq0, seq0 + len(calls))),
    }


def event_columns(
    sid: str, seq0: int, t: int, events: Sequence[TurnActivity]
) -> dict[str, list[Any]]:
    return {
        "session_id": [sid] * len(events),
        "turn_id": [e.turn_id for e in events],
        "seq": list(range(seq0, seq0 + len(events))),
        "activity_id": [e.id for e in events],
        "correlation_id": [e.correlation_id for e in events],
        "type": [e.type for e in events],
        "payload": [dumps(e.event.to_json()) for e in events],
        "created_at": [t] * len(events),
    }


# ---------------------------------------------------------------------------- decoding

# a node row's columns in ``SessionNode``'s argument order: ``SessionNode(*row)`` makes the node
NODE_ARGS = "node_id, parent_node_id, kind, NULL, NULL, epoch_ms(created_at), turn_id, content"


META_COLS = (
    "session_id, provider_id, model, parent_session_id, policy, head_revision, leaf_node_id, "
    "turn_index, tool_state, epoch_ms(created_at), epoch_ms(updated_at)"
)


def decode_meta(r: Sequence[Any]) -> SessionMeta:
    return SessionMeta(
        session_id=r[0],
        provider_id=r[1],
        model=r[2],
        parent_session_id=r[3],
        policy=json.loads(r[4]),
        head_revision=int(r[5]),
        leaf_node_id=r[6],
        turn_index=int(r[7]),
        tool_state=json.loads(r[8]) if r[8] is not None else None,
        created_at_ms=int(r[9]),
        updated_at_ms=int(r[10]),
    )


TURN_COLS = "turn_id, outcome, stop_reason, epoch_ms(started_at), duration_ms, commit_hash, result"


def decode_turn(r: Sequence[Any]) -> TurnRecord:
    return TurnRecord(r[0], r[1], r[2], int(r[3]), float(r[4]), r[5], json.loads(r[6]))


def decode_events(rows: Iterable[Sequence[Any]]) -> list[TurnActivity]:
    out = []
    for activity_id, correlation_id, turn_id, payload in rows:
        data = json.loads(payload)
        data["id"], data["correlation_id"], data["turn_id"] = activity_id, correlation_id, turn_id
        out.append(TurnActivity.from_json(data))
    return out


BATCH_COLS = (
    "batch_id, session_id, enqueue_seq, source_key, delivery_policy, slot_policy, merge_key, "
    "available_at_ms, enqueued_at_ms, items, claim_id, claim_generation, claimed_at_ms, "
    "attempts, error, failed_at_ms"
)
BATCH_NCOLS = 16  # columns of BATCH_COLS; a query's extra columns follow them


def decode_batch(r: Sequence[Any]) -> QueuedWorkBatch:
    items = tuple(
        QueuedWorkItem(i["item_id"], i["kind"], i["payload"]) for i in json.loads(r[9])
    )
    return QueuedWorkBatch(
        batch_id=r[0],
        session_id=r[1],
        enqueue_seq=int(r[2]),
        source_key=r[3],
        delivery_policy=DeliveryPolicy(r[4]),
        slot_policy=SlotPolicy(r[5]),
        merge_key=r[6],
        available_at_ms=int(r[7]),
        enqueued_at_ms=int(r[8]),
        items=items,
        attempts=int(r[13] or 0),
        error=r[14],
        failed_at_ms=None if r[15] is None else int(r[15]),
    )


def decode_listing(
    found: Iterable[tuple[Sequence[Any], bool]], include_claimed: bool
) -> list[QueuedWorkBatch]:
    """Batches from ``(row, claimed)`` pairs in enqueue order; claimed rows carry their claim
    (and are left out unless ``include_claimed``)."""
    out = []
    for r, claimed in found:
        if claimed and not include_claimed:
            continue
        b = decode_batch(r)
        if claimed:
            b = dataclasses.replace(b, claim_id=r[10], claimed_at_ms=r[12])
        out.append(b)
    return out
