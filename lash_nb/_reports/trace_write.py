"""Write lash_nb's own turns as a lash trace JSONL file (schema version 2).

The records are the ones lash's trace writer (``lash-trace``, ``TraceRecord`` / ``TraceEvent``)
writes for a turn, with its field names: ``turn_started``, ``llm_call_started`` and
``llm_call_completed`` / ``llm_call_failed`` per attempt (``context.llm_call_id`` is
``<call id>:<attempt>``, one id per attempt as lash writes them), ``tool_call_started`` /
``tool_call_completed``, ``turn_completed``. Timestamps are the stored ones (RFC 3339, UTC);
records are written in time order.

What a store does not keep is left out or empty, never invented: requests carry the model and
no messages (prompts stay in the store), responses no text. Usage is written on completed
attempts only, as lash does; an attempt cut by a cancel (its usage an estimate in the store)
is written as ``llm_call_failed``, so a trace of a cancelled turn counts fewer tokens than the
store's ledger.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from .._core.usage import BUCKETS
from .tables import open_tables, session_filter

TRACE_SCHEMA_VERSION = 2
# records at one instant keep the order a turn produces them in
_ORDER = {"turn_started": 0, "llm_call_started": 1, "llm_call_completed": 2,
          "llm_call_failed": 2, "tool_call_started": 3, "tool_call_completed": 4,
          "turn_completed": 5}


def write_lash_trace(source: Any, path: str | os.PathLike[str]) -> int:
    """Write the turns of ``source`` (a session, core, store or DuckDB path) to ``path`` as a
    lash trace; returns the number of records. ``read_lash_trace(path)`` reads it back."""
    with open_tables(source) as tables:
        sid, params = session_filter(tables)
        turns = tables.query(
            "SELECT session_id, turn_id, status, outcome, stop_reason, started_at, duration_ms "
            f"FROM turns WHERE true{sid} ORDER BY started_at, seq", params)
        calls = tables.query(
            "SELECT session_id, turn_id, call_id, model, protocol_iteration, attempt, started_at, "
            f"duration_ms, outcome, error, error_kind, {', '.join(BUCKETS)} "
            f"FROM llm_calls WHERE true{sid} ORDER BY started_at, seq, attempt", params)
        tools = tables.query(
            "SELECT session_id, turn_id, call_id, name, args, output, success, interrupted, "
            f"duration_ms, started_at FROM tool_calls WHERE true{sid} ORDER BY started_at, seq",
            params)
    records: list[tuple[int, int, dict[str, Any]]] = []
    for t in turns.to_dict("records"):
        _turn(records, t)
    for c in calls.to_dict("records"):
        _call(records, c)
    for t in tools.to_dict("records"):
        _tool(records, t)
    records.sort(key=lambda r: (r[0], r[1]))
    with open(os.fspath(path), "w", encoding="utf-8") as f:
        for _, _, rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    return len(records)


def _us(ts: Any) -> int:
    """A stored timestamp (naive UTC, or aware) as epoch microseconds."""
    import pandas as pd

    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)


def _rfc3339(us: int) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(us / 1_000_000, tz=datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _add(out: list[tuple[int, int, dict[str, Any]]], us: int, kind: str,
         context: dict[str, Any], **fields: Any) -> None:
    ctx = {k: v for k, v in context.items() if v is not None}
    out.append((us, _ORDER[kind], {"schema_version": TRACE_SCHEMA_VERSION,
                                   "id": str(uuid.uuid4()), "timestamp": _rfc3339(us),
                                   "context": ctx, "type": kind, **fields}))


def _ms(value: Any) -> float:
    return 0.0 if value is None or value != value else float(value)  # NaN: not recorded


def _turn(out: list[tuple[int, int, dict[str, Any]]], t: dict[str, Any]) -> None:
    ctx = {"session_id": t["session_id"], "turn_id": t["turn_id"],
           "graph_node_id": f"turn:{t['session_id']}:{t['turn_id']}"}
    start = _us(t["started_at"])
    _add(out, start, "turn_started", ctx)
    if t["status"] != "committed":
        return  # still running, or lost: lash writes no turn_completed either
    ok = t["outcome"] in ("finished", "agent_frame_switch")
    _add(out, start + int(_ms(t["duration_ms"]) * 1000), "turn_completed", ctx,
         status="completed" if ok else "failed", done_reason=str(t["stop_reason"] or ""))


def _call(out: list[tuple[int, int, dict[str, Any]]], c: dict[str, Any]) -> None:
    call_id = f"{c['call_id']}:{int(c['attempt'])}"
    ctx = {"session_id": c["session_id"], "turn_id": c["turn_id"],
           "protocol_iteration": int(c["protocol_iteration"]), "llm_call_id": call_id,
           "graph_node_id": f"llm:{call_id}"}
    start = _us(c["started_at"])
    duration = _ms(c["duration_ms"])
    _add(out, start, "llm_call_started", ctx,
         request={"model": c["model"], "messages": [], "tool_choice": "auto", "stream": True})
    end = start + int(duration * 1000)
    if c["outcome"] == "completed":
        _add(out, end, "llm_call_completed", ctx,
             response={"text": "", "duration_ms": round(duration)},
             usage={b: int(c[b] or 0) for b in BUCKETS})
    else:
        error: dict[str, Any] = {"message": str(c["error"] or c["outcome"]), "retryable": False}
        if c["error_kind"]:
            error["code"] = str(c["error_kind"])
        _add(out, end, "llm_call_failed", ctx, error=error)


def _tool(out: list[tuple[int, int, dict[str, Any]]], t: dict[str, Any]) -> None:
    ctx = {"session_id": t["session_id"], "turn_id": t["turn_id"],
           "graph_node_id": f"tool:{t['call_id']}"}
    start = _us(t["started_at"])
    args = json.loads(t["args"]) if isinstance(t["args"], str) else t["args"]
    _add(out, start, "tool_call_started", ctx, call_id=t["call_id"], name=t["name"], args=args)
    if t["interrupted"] and t["output"] is None:
        return
    status = "cancelled" if t["interrupted"] else "success" if t["success"] else "failure"
    payload = json.loads(t["output"]) if isinstance(t["output"], str) else t["output"]
    duration = _ms(t["duration_ms"])
    _add(out, start + int(duration * 1000), "tool_call_completed", ctx, call_id=t["call_id"],
         name=t["name"], args=args, output={"outcome": {"status": status, "payload": payload}},
         duration_ms=round(duration))
