"""Import a trace JSONL file written by the Rust lash runtime (trace schema version 2).

Each line is one record ``{schema_version, id, timestamp, context, type, ...payload}``
(lash-observe-spec §6). The import follows the recipe of §6.5 and yields the store's tables,
so every report frame reads a trace like a store:

- ``turns``: ``turn_started`` / ``turn_completed`` joined on (session, turn); status
  ``completed`` -> outcome ``finished`` (``agent_frame_switch`` when that is the reason),
  ``failed`` -> ``stopped``; ``done_reason`` is the stop reason. A turn without a
  ``turn_completed`` record is ``open``.
- ``llm_calls``: ``llm_call_started`` with ``llm_call_completed`` or ``llm_call_failed``,
  joined on ``context.llm_call_id`` (a ``:log`` duplicate of an id is dropped); the model is
  the request's model id; usage comes from ``llm_call_completed.usage``.
- ``usage_deltas``: one row per completed call with usage. A trace has no ledger source
  label: calls inside a turn get source ``turn``, calls outside any turn ``direct``.
- ``tool_calls``: ``tool_call_started`` / ``tool_call_completed`` joined on ``call_id``;
  success = ``output.outcome.status == "success"``; a call that never completed is kept as
  interrupted.

Lines that are not JSON objects of a known envelope are counted and listed in
``problems`` (never fatal); lines of a newer schema version are counted apart and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._core.text import clean_json
from .._errors import LashWarning
from .tables import import_arrow, insert_arrow

log = logging.getLogger("lash_nb.reports")
TRACE_SCHEMA_VERSION = 2
_FRACTION = re.compile(r"(\.\d{1,6})\d*")
# the trace's five-bucket usage, and the older four-field form (cached / reasoning)
_USAGE_ALIASES = {
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "cache_read_input_tokens": ("cache_read_input_tokens", "cached_input_tokens"),
    "cache_write_input_tokens": ("cache_write_input_tokens",),
    "reasoning_output_tokens": ("reasoning_output_tokens", "reasoning_tokens"),
}


def parse_timestamp_us(text: str) -> int:
    """RFC 3339 (any fraction length, ``Z`` or offset) -> epoch microseconds, UTC."""
    t = _FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class LashTrace:
    """An imported lash trace. Pass it to any report frame: ``usage_frame(trace, by="model")``."""

    path: str
    records: Any  # DataFrame: line, id, timestamp, type, session_id, turn_id, llm_call_id
    tables: dict[str, Any]  # store table name -> Arrow table
    bad_lines: int = 0
    unsupported_lines: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    def load_into(self, con: Any) -> None:
        for name, table in self.tables.items():
            insert_arrow(con, name, table)

    @property
    def protocol_steps(self) -> Any:
        """``protocol_step`` records: line, timestamp, session_id, turn_id, plugin_id, payload."""
        r = self.records
        steps = r[r["type"] == "protocol_step"]
        return steps[["line", "timestamp", "session_id", "turn_id", "plugin_id", "payload"]] \
            .reset_index(drop=True)

    def __repr__(self) -> str:
        return (f"LashTrace({self.path!r}, {len(self.records)} records, "
                f"{self.bad_lines} bad lines, {self.unsupported_lines} newer-schema lines)")


def read_lash_trace(path: str | os.PathLike[str]) -> LashTrace:
    """Read a lash trace JSONL file; bad lines are counted in ``bad_lines`` / ``problems``.

    DuckDB reads it (``read_ndjson_objects`` and SQL, :mod:`.trace_sql`); the Python reader
    below says why a line is bad, and reads a file DuckDB cannot read the same way."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no lash trace at {path}; pass the path of a trace JSONL file")
    import_arrow()  # pandas + pyarrow, never racing a DuckDB store's background import
    try:
        from .trace_sql import read_with_duckdb

        got = read_with_duckdb(path, version=TRACE_SCHEMA_VERSION, parse_line=_parse_line)
    except Exception as err:  # anything DuckDB reads differently: the Python path decides
        log.debug("trace %s: DuckDB import gave up (%s); reading it in Python", path, err)
        got = None
    if got is None:
        return _read_in_python(path)
    import pandas as pd

    records = got["records"].to_pandas()
    if str(records["timestamp"].dtype) != "datetime64[us]":
        records["timestamp"] = pd.to_datetime(records["timestamp"]).astype("datetime64[us]")
    _warn_skipped(path, got["bad"], got["newer"])
    return LashTrace(path, records, got["tables"], got["bad"], got["newer"], got["problems"])


def _warn_skipped(path: str, bad: int, newer: int) -> None:
    if bad or newer:
        warnings.warn(
            f"{path}: {bad} bad line(s) and {newer} line(s) of a newer trace schema were "
            "skipped; see .problems on the returned LashTrace",
            LashWarning,
            stacklevel=3,
        )


def _read_in_python(path: str) -> LashTrace:
    """The reference reader: one line at a time, every rule written out in :class:`_Builder`."""
    import pandas as pd

    builder = _Builder()
    problems: list[tuple[int, str]] = []
    bad = newer = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            reason, rec = _parse_line(line)
            if reason == "newer":
                newer += 1
                problems.append((n, f"schema_version {rec} is newer than {TRACE_SCHEMA_VERSION}; skipped"))
            elif reason is not None:
                bad += 1
                problems.append((n, reason))
            else:
                try:
                    builder.add(n, rec)
                except (TypeError, ValueError, KeyError, AttributeError) as e:
                    bad += 1
                    problems.append((n, f"{rec.get('type')} record not understood: {e}"))
    _warn_skipped(path, bad, newer)
    records = pd.DataFrame(builder.records, columns=[
        "line", "id", "timestamp", "type", "session_id", "turn_id", "llm_call_id",
        "plugin_id", "payload"])
    records["timestamp"] = pd.to_datetime(records["timestamp"], unit="us").astype("datetime64[us]")
    return LashTrace(path, records, builder.tables(), bad, newer, problems)


def _parse_line(line: str) -> tuple[str | None, Any]:
    try:
        rec = clean_json(json.loads(line))  # JSON escapes can spell "\ud800" (ADR 12)
    except json.JSONDecodeError as e:
        return f"not JSON ({e.msg})", None
    if not isinstance(rec, dict):
        return "not a JSON object", None
    version = rec.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return "no integer schema_version", None
    if version > TRACE_SCHEMA_VERSION:
        return "newer", version
    if not isinstance(rec.get("type"), str) or not isinstance(rec.get("timestamp"), str):
        return "no type or timestamp", None
    if not isinstance(rec.get("context", {}), dict):
        return "context is not an object", None
    return None, rec


def _usage(data: Any) -> dict[str, int]:
    data = data if isinstance(data, dict) else {}
    return {
        bucket: int(next((data[a] for a in names if data.get(a) is not None), 0))
        for bucket, names in _USAGE_ALIASES.items()
    }


def _group_usage(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One usage row per (session, turn, source, model), as the runtime's ledger deltas."""
    from .._core.usage import BUCKETS

    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in calls:
        key = (c["session_id"], c["turn_id"], c["source"], c["model"])
        row = out.get(key)
        if row is None:
            out[key] = {k: c[k] for k in (
                "session_id", "turn_id", "source", "model", "seq", "created_at", *BUCKETS)}
        else:
            for b in BUCKETS:
                row[b] += c[b]
            row["created_at"] = min(row["created_at"], c["created_at"])
    return list(out.values())


class _Builder:
    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []
        self.turns: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.tools: dict[tuple[str, str], dict[str, Any]] = {}
        self.sessions: dict[str, int] = {}

    def add(self, line: int, rec: dict[str, Any]) -> None:
        ctx = rec.get("context") or {}
        kind = rec["type"]
        ts = parse_timestamp_us(rec["timestamp"])
        sid = str(ctx.get("session_id") or "")
        tid = ctx.get("turn_id")
        if tid is None and ctx.get("turn_index") is not None:
            tid = f"idx{ctx['turn_index']}"
        call_id = ctx.get("llm_call_id")
        self.records.append((
            line, rec.get("id"), ts, kind, sid or None, tid, call_id, rec.get("plugin_id"),
            json.dumps(rec["payload"]) if "payload" in rec else None,
        ))
        self.sessions[sid] = min(self.sessions.get(sid, ts), ts)
        base = {"session_id": sid, "turn_id": tid, "seq": line}
        if kind in ("turn_started", "turn_completed") and tid is not None:
            turn = self.turns.setdefault((sid, tid), {**base, "started": None, "done": None})
            turn["started" if kind == "turn_started" else "done"] = (ts, rec)
        elif kind.startswith("llm_call_") and call_id:
            key = call_id[:-4] if call_id.endswith(":log") else call_id
            call = self.calls.setdefault(key, {**base, "call_id": key, "started": None, "end": None})
            if kind == "llm_call_started" and call["started"] is None:
                call["started"] = (ts, rec, ctx)
            elif kind in ("llm_call_completed", "llm_call_failed") and call["end"] is None:
                call["end"] = (ts, rec, ctx)
        elif kind in ("tool_call_started", "tool_call_completed"):
            cid = str(rec.get("call_id") or f"line{line}")
            tool = self.tools.setdefault((sid, cid), {**base, "call_id": cid, "started": None, "done": None})
            tool["started" if kind == "tool_call_started" else "done"] = (ts, rec)

    def tables(self) -> dict[str, Any]:
        import pyarrow as pa

        from .._core.usage import BUCKETS

        ts = pa.timestamp("us")
        turns = [self._turn(t) for t in self.turns.values()]
        calls = [self._call(c) for c in self.calls.values()]
        tools = [self._tool(t) for t in self.tools.values()]
        usage = _group_usage([c for c in calls if c["outcome"] == "completed" and c["has_usage"]])
        sessions = [s for s in self.sessions if s]

        def table(rows: list[dict[str, Any]], schema: list[tuple[str, Any]]) -> Any:
            return pa.table({name: pa.array([r[name] for r in rows], typ) for name, typ in schema})

        s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
        buckets = [(x, i) for x in BUCKETS]
        return {
            "sessions": pa.table({
                "session_id": pa.array(sessions, s),
                "provider_id": pa.array([""] * len(sessions), s),
                "model": pa.array([""] * len(sessions), s),
                "policy": pa.array(["{}"] * len(sessions), s),
                "head_revision": pa.array([0] * len(sessions), i),
                "turn_index": pa.array([0] * len(sessions), i),
                "created_at": pa.array([self.sessions[x] for x in sessions], ts),
                "updated_at": pa.array([self.sessions[x] for x in sessions], ts),
                "next_seq": pa.array([0] * len(sessions), i),
            }),
            "turns": table(turns, [
                ("session_id", s), ("turn_id", s), ("status", s), ("outcome", s),
                ("stop_reason", s), ("started_at", ts), ("duration_ms", f), ("seq", i)]),
            "llm_calls": table(calls, [
                ("session_id", s), ("turn_id", s), ("call_id", s), ("model", s),
                ("protocol_iteration", i), ("attempt", i), ("started_at", ts),
                ("duration_ms", f), ("outcome", s), ("error", s), ("error_kind", s),
                *buckets, ("seq", i)]),
            "usage_deltas": table(usage, [
                ("session_id", s), ("turn_id", s), ("seq", i), ("source", s), ("model", s),
                *buckets, ("created_at", ts)]),
            "tool_calls": table(tools, [
                ("session_id", s), ("turn_id", s), ("call_id", s), ("name", s), ("args", s),
                ("output", s), ("success", b), ("duration_ms", f), ("started_at", ts),
                ("interrupted", b), ("seq", i)]),
        }

    @staticmethod
    def _turn(t: dict[str, Any]) -> dict[str, Any]:
        started, done = t["started"], t["done"]
        start_us = started[0] if started else done[0]
        row = {**t, "started_at": start_us, "status": "open", "outcome": None,
               "stop_reason": None, "duration_ms": None}
        if done is not None:
            reason = str(done[1].get("done_reason") or "")
            ok = done[1].get("status") == "completed"
            row.update(
                status="committed",
                outcome=("agent_frame_switch" if reason == "agent_frame_switch" else "finished")
                if ok else "stopped",
                stop_reason=reason or None,
                duration_ms=(done[0] - start_us) / 1000.0,
            )
        return row

    @staticmethod
    def _call(c: dict[str, Any]) -> dict[str, Any]:
        started, end = c["started"], c["end"]
        first = started or end
        ctx = first[2]
        request = (started[1].get("request") or {}) if started else {}
        row = {**c, "model": str(request.get("model") or "unknown"),
               "protocol_iteration": int(ctx.get("protocol_iteration") or 0), "attempt": 1,
               "started_at": first[0], "error": None, "error_kind": None, "has_usage": False,
               "source": "turn" if c["turn_id"] is not None else "direct"}
        usage = _usage(None)
        if end is None:
            row.update(outcome="interrupted", duration_ms=0.0)
        elif end[1]["type"] == "llm_call_completed":
            response = end[1].get("response") or {}
            duration = response.get("duration_ms")
            row.update(outcome="completed", has_usage=end[1].get("usage") is not None,
                       duration_ms=float(duration) if duration is not None
                       else (end[0] - first[0]) / 1000.0, created_at=end[0])
            usage = _usage(end[1].get("usage"))
        else:
            error = end[1].get("error") or {}
            row.update(outcome="failed", duration_ms=(end[0] - first[0]) / 1000.0,
                       error=error.get("message"),
                       error_kind=error.get("code") or error.get("terminal_reason"))
        row.setdefault("created_at", first[0])
        return {**row, **usage}

    @staticmethod
    def _tool(t: dict[str, Any]) -> dict[str, Any]:
        started, done = t["started"], t["done"]
        rec = (done or started)[1]
        row = {**t, "name": str(rec.get("name") or ""), "args": json.dumps(rec.get("args")),
               "output": None, "success": False, "interrupted": done is None, "duration_ms": 0.0,
               "started_at": started[0] if started else None}
        if done is not None:
            outcome = (done[1].get("output") or {}).get("outcome") or {}
            duration = float(done[1].get("duration_ms") or 0)
            row.update(output=json.dumps(outcome.get("payload")),
                       success=outcome.get("status") == "success",
                       interrupted=outcome.get("status") == "cancelled", duration_ms=duration)
            if row["started_at"] is None:
                row["started_at"] = done[0] - int(duration * 1000)
        return row
