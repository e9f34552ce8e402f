"""Records <-> DuckDB rows: Arrow batches for inserts, decoders for reads."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._core.events import TurnActivity
from ..._core.graph import SessionNode
from ..._core.json_text import encoder
from ..._core.queue import DeliveryPolicy, QueuedWorkBatch, QueuedWorkItem, SlotPolicy
from ..._core.records import ToolCallRecord
from ..._core.usage import BUCKETS, LlmCallRecord
from ..base import SessionMeta, TurnRecord, UsageDelta
from .arrow import need_arrow
from .schema import ADDED_DEFAULTS, arrow_schemas

_SCHEMAS: dict[str, Any] | None = None
_KNOWN: dict[str, frozenset[str]] = {}  # the column names of each table's batch


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
    need_arrow()  # not racing the store's background import; never holding the file (ADR 0213)
    import pyarrow as pa

    if _SCHEMAS is None:
        _SCHEMAS = arrow_schemas()
    schema = _SCHEMAS[table]
    n = len(next(iter(columns.values()))) if columns else 0
    # a column added later (``schema.ADDED_COLUMNS``) is absent from older commit_log rows
    arrays = [pa.array(columns[f.name] if f.name in columns else [ADDED_DEFAULTS.get(
        (table, f.name))] * n, f.type) for f in schema]
    known = _KNOWN.get(table) or _KNOWN.setdefault(table, frozenset(schema.names))
    if known.issuperset(columns):
        batch = pa.table(arrays, schema=schema)
    else:  # rows a newer lash_nb logged with a column it added (ADR 221): kept where the
        # table has it, as JSON gave them (the insert casts them to the column's type)
        extra = _added_by_newer(con, table, [c for c in columns if c not in known])
        batch = pa.table(arrays + [pa.array(columns[c]) for c in extra],  # noqa: F841
                         names=[*schema.names, *extra])
    # ``batch`` is found by DuckDB's replacement scan of this frame's locals: unlike
    # register()/unregister() it costs no extra calls (~1 ms saved per table)
    con.execute(statement or f"INSERT INTO {table} BY NAME SELECT * FROM batch")


def _added_by_newer(con: Any, table: str, names: list[str]) -> list[str]:
    """Which of ``names`` are columns of ``table`` in this file (added by a newer lash_nb)."""
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ?", [table]).fetchall()}
    return [c for c in names if c in have]


# a commit's rows are built as one tuple per row and turned into columns at once
# (``_columns``): one comprehension a table, not one per column (~60 in a turn's final commit)
NODE_COLUMNS = ("session_id", "seq", "node_id", "parent_node_id", "kind", "role", "content",
                "created_at", "turn_id")
USAGE_COLUMNS = ("session_id", "turn_id", "seq", "source", "model", "created_at", "estimated",
                 *BUCKETS)
LLM_CALL_COLUMNS = ("session_id", "turn_id", "call_id", "model", "protocol_iteration", "attempt",
                    "started_at", "duration_ms", "outcome", "request_id", "served_model", "error",
                    "error_kind", "seq", "estimated", *BUCKETS)
TOOL_CALL_COLUMNS = ("session_id", "turn_id", "call_id", "name", "args", "output", "success",
                     "duration_ms", "started_at", "interrupted", "seq", "printed")
EVENT_COLUMNS = ("session_id", "turn_id", "seq", "activity_id", "correlation_id", "type",
                 "payload", "created_at")
_buckets = operator.attrgetter(*BUCKETS)  # a usage's buckets as a tuple, in BUCKETS order
_NO_USAGE = (0,) * len(BUCKETS)


def _columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Row tuples (values in ``names`` order) as insert columns."""
    if not rows:
        return {name: [] for name in names}
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


def node_columns(sid: str, seq0: int, nodes: Sequence[SessionNode]) -> dict[str, list[Any]]:
    return _columns(NODE_COLUMNS, [
        (sid, seq, n.node_id, n.parent_node_id, n.kind, n.role, n.content_text(),
         n.created_at_ms, n.turn_id)
        for seq, n in enumerate(nodes, seq0)])


def usage_columns(sid: str, seq0: int, t: int, deltas: Sequence[UsageDelta]) -> dict[str, list[Any]]:
    return _columns(USAGE_COLUMNS, [
        (sid, d.turn_id, seq, d.source, d.model, t, bool(getattr(d, "estimated", False)),
         *_buckets(d.usage))
        for seq, d in enumerate(deltas, seq0)])


def llm_call_columns(
    sid: str, seq0: int, calls: Sequence[tuple[str, LlmCallRecord]]
) -> dict[str, list[Any]]:
    return _columns(LLM_CALL_COLUMNS, [
        (sid, tid, c.call_id, c.model, c.protocol_iteration, a.ordinal, a.started_at_ms,
         float(a.duration_ms), a.outcome, a.request_id, a.served_model, a.error, a.error_kind,
         seq, bool(getattr(a, "estimated", False)),
         *(_buckets(a.usage) if a.usage is not None else _NO_USAGE))
        for seq, (tid, c, a) in enumerate(
            [(tid, c, a) for tid, c in calls for a in c.attempts], seq0)])


def tool_call_columns(
    sid: str, seq0: int, calls: Sequence[tuple[str, ToolCallRecord]]
) -> dict[str, list[Any]]:
    return _columns(TOOL_CALL_COLUMNS, [
        (sid, tid, c.call_id, c.tool, dumps(c.args), dumps(c.output), bool(c.success),
         float(c.duration_ms), c.started_at_ms, bool(c.interrupted), seq, c.printed)
        for seq, (tid, c) in enumerate(calls, seq0)])


def event_columns(
    sid: str, seq0: int, t: int, events: Sequence[TurnActivity]
) -> dict[str, list[Any]]:
    return _columns(EVENT_COLUMNS, [
        (sid, e.turn_id, seq, e.id, e.correlation_id, e.event.type, dumps(e.event.to_json()), t)
        for seq, e in enumerate(events, seq0)])


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
