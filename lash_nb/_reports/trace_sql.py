"""The lash trace import in DuckDB: ``read_ndjson_objects`` and one SQL text per table.

The rules are the ones :mod:`.trace` documents (and its Python builder implements): the same
joins, the same "first start / first end" of a model call, the same "last record wins" of a
turn or a tool call, the same usage aliases. Python is used only where SQL cannot say it:

- which non-blank line each object came from, when the file has blank lines;
- why a line is bad (the Python parser's own message), for the few lines DuckDB could not
  read or whose envelope is wrong; a line DuckDB refused but Python reads (JSON escapes that
  spell lone surrogates or NUL, cleaned to U+FFFD as ADR 12 says) is loaded from Python;
- the JSON text of tool arguments, tool outputs and payloads, written as ``json.dumps``
  writes it (the form every store keeps).

:func:`read_with_duckdb` returns None when the file is something it does not handle the same
way (then the Python path reads it); the caller never sees a difference but speed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_BAD = "bad"
_NEWER = "newer"

# one row per object: its ordinal among non-blank lines, the JSON (NULL: not JSON)
_LOAD = """
CREATE TEMP TABLE trace_raw AS
SELECT ordinality AS row, json AS j
FROM read_ndjson_objects($path, ignore_errors = true) WITH ORDINALITY
"""

# one parse per record: every field any table needs, by name (a missing field is NULL, a
# JSON null is the JSON value null)
_FIELDS = {
    "sv": "$.schema_version", "type": "$.type", "timestamp": "$.timestamp",
    "context": "$.context", "id": "$.id", "sid": "$.context.session_id",
    "turn_id": "$.context.turn_id", "turn_index": "$.context.turn_index",
    "cid": "$.context.llm_call_id", "iteration": "$.context.protocol_iteration",
    "status": "$.status", "done_reason": "$.done_reason", "model": "$.request.model",
    "usage": "$.usage", "response_ms": "$.response.duration_ms",
    "error_message": "$.error.message", "error_code": "$.error.code",
    "error_reason": "$.error.terminal_reason",
    "u_input": "$.usage.input_tokens", "u_output": "$.usage.output_tokens",
    "u_cache_read": "$.usage.cache_read_input_tokens", "u_cached": "$.usage.cached_input_tokens",
    "u_cache_write": "$.usage.cache_write_input_tokens",
    "u_reasoning": "$.usage.reasoning_output_tokens", "u_reasoning_old": "$.usage.reasoning_tokens",
    "call_id": "$.call_id", "name": "$.name", "args": "$.args",
    "tool_status": "$.output.outcome.status", "tool_payload": "$.output.outcome.payload",
    "tool_ms": "$.duration_ms", "plugin_id": "$.plugin_id", "payload": "$.payload",
}
_AT = {name: i for i, name in enumerate(_FIELDS, start=1)}


def _text(name: str) -> str:
    return f"(f[{_AT[name]}] ->> '$')"


def _json(name: str) -> str:
    return f"CAST(f[{_AT[name]}] AS VARCHAR)"


def _int(*names: str) -> str:
    return "coalesce(" + ", ".join(f"TRY_CAST({_text(n)} AS BIGINT)" for n in names) + ", 0)"


_ENVELOPE = f"""
CREATE TEMP TABLE trace_rec AS
WITH x AS (
    SELECT r.row, {{line}} AS line, r.j IS NULL AS unread,
        json_extract(r.j, {list(_FIELDS.values())!r}) AS f
    FROM trace_raw r{{join}}
), y AS (
    SELECT *, TRY_CAST({_text("timestamp")} AS TIMESTAMPTZ) AS tstz FROM x
)
SELECT line,
    CASE
        WHEN unread  -- an array or a scalar has no $.schema_version: the next test holds it
            OR coalesce(json_type(f[{_AT["sv"]}]), '') NOT IN ('UBIGINT', 'BIGINT') THEN 'bad'
        WHEN TRY_CAST({_text("sv")} AS BIGINT) > $version THEN 'newer'
        WHEN coalesce(json_type(f[{_AT["type"]}]), '') <> 'VARCHAR'
            OR coalesce(json_type(f[{_AT["timestamp"]}]), '') <> 'VARCHAR'
            OR coalesce(json_type(f[{_AT["context"]}]), 'OBJECT') <> 'OBJECT' THEN 'bad'
        WHEN tstz IS NULL THEN 'bad_timestamp'
        ELSE 'ok'
    END AS verdict,
    {_text("id")} AS id, {_text("type")} AS type, make_timestamp(epoch_us(tstz)) AS ts,
    coalesce({_text("sid")}, '') AS sid,
    coalesce({_text("turn_id")},
             CASE WHEN coalesce(json_type(f[{_AT["turn_index"]}]), 'NULL') <> 'NULL'
                  THEN 'idx' || {_text("turn_index")} END) AS tid,
    {_text("cid")} AS cid, {_text("iteration")} AS iteration,
    {_text("status")} AS status, {_text("done_reason")} AS done_reason,
    {_text("model")} AS model, coalesce(json_type(f[{_AT["usage"]}]), 'NULL') <> 'NULL' AS has_usage,
    TRY_CAST({_text("response_ms")} AS DOUBLE) AS response_ms,
    {_text("error_message")} AS error_message,
    coalesce({_text("error_code")}, {_text("error_reason")}) AS error_kind,
    {_int("u_input")} AS u_input, {_int("u_output")} AS u_output,
    {_int("u_cache_read", "u_cached")} AS u_cache_read, {_int("u_cache_write")} AS u_cache_write,
    {_int("u_reasoning", "u_reasoning_old")} AS u_reasoning,
    {_text("call_id")} AS call_id, {_text("name")} AS name,
    coalesce({_json("args")}, 'null') AS args, {_text("tool_status")} AS tool_status,
    coalesce({_json("tool_payload")}, 'null') AS tool_payload,
    coalesce(TRY_CAST({_text("tool_ms")} AS DOUBLE), 0.0) AS tool_ms,
    {_text("plugin_id")} AS plugin_id, {_json("payload")} AS payload
FROM y
"""

_OK = "CREATE TEMP VIEW trace_ok AS SELECT * EXCLUDE (verdict) FROM trace_rec WHERE verdict = 'ok'"

_RECORDS = """
SELECT line, id, ts AS timestamp, type, nullif(sid, '') AS session_id, tid AS turn_id,
    cid AS llm_call_id, plugin_id, payload
FROM trace_ok ORDER BY line
"""

_SESSIONS = """
SELECT sid AS session_id, '' AS provider_id, '' AS model, '{}' AS policy,
    0::BIGINT AS head_revision, 0::BIGINT AS turn_index, min(ts) AS created_at,
    min(ts) AS updated_at, 0::BIGINT AS next_seq
FROM trace_ok WHERE sid <> '' GROUP BY sid ORDER BY min(line)
"""

_TURNS = """
WITH t AS (
    SELECT sid, tid, min(line) AS seq,
        arg_max(ts, line) FILTER (WHERE type = 'turn_started') AS started,
        arg_max({'ts': ts, 'status': status, 'reason': done_reason}, line)
            FILTER (WHERE type = 'turn_completed') AS done
    FROM trace_ok WHERE type IN ('turn_started', 'turn_completed') AND tid IS NOT NULL
    GROUP BY sid, tid
)
SELECT sid AS session_id, tid AS turn_id,
    CASE WHEN done IS NULL THEN 'open' ELSE 'committed' END AS status,
    CASE WHEN done IS NULL THEN NULL
         WHEN done.status = 'completed' AND done.reason = 'agent_frame_switch'
             THEN 'agent_frame_switch'
         WHEN done.status = 'completed' THEN 'finished' ELSE 'stopped' END AS outcome,
    CASE WHEN done IS NULL THEN NULL ELSE nullif(done.reason, '') END AS stop_reason,
    coalesce(started, done.ts) AS started_at,
    CASE WHEN done IS NULL THEN NULL
         ELSE (epoch_us(done.ts) - epoch_us(coalesce(started, done.ts))) / 1000.0 END
        AS duration_ms,
    seq
FROM t ORDER BY seq
"""

_CALLS = """
WITH c AS (
    SELECT CASE WHEN cid LIKE '%:log' THEN cid[:-5] ELSE cid END AS key, *
    FROM trace_ok WHERE type LIKE 'llm\\_call\\_%' ESCAPE '\\' AND coalesce(cid, '') <> ''
), k AS (
    SELECT key, min(line) AS seq, arg_min({'sid': sid, 'tid': tid}, line) AS base,
        arg_min({'ts': ts, 'model': model, 'iteration': iteration}, line)
            FILTER (WHERE type = 'llm_call_started') AS st,
        arg_min({'ts': ts, 'type': type, 'iteration': iteration, 'usage': has_usage,
                 'duration': response_ms, 'message': error_message, 'kind': error_kind,
                 'input': u_input, 'output': u_output, 'cache_read': u_cache_read,
                 'cache_write': u_cache_write, 'reasoning': u_reasoning}, line)
            FILTER (WHERE type IN ('llm_call_completed', 'llm_call_failed')) AS en
    FROM c GROUP BY key
), r AS (
    SELECT *, coalesce(st.ts, en.ts) AS first_ts,
        CASE WHEN en IS NULL THEN 'interrupted'
             WHEN en.type = 'llm_call_completed' THEN 'completed' ELSE 'failed' END AS outcome
    FROM k WHERE st IS NOT NULL OR en IS NOT NULL
)
SELECT base.sid AS session_id, base.tid AS turn_id, key AS call_id,
    coalesce(nullif(st.model, ''), 'unknown') AS model,
    coalesce(TRY_CAST(CASE WHEN st IS NOT NULL THEN st.iteration ELSE en.iteration END
                      AS BIGINT), 0) AS protocol_iteration,
    1::BIGINT AS attempt, first_ts AS started_at,
    CASE WHEN outcome = 'interrupted' THEN 0.0
         WHEN outcome = 'completed' AND en.duration IS NOT NULL THEN en.duration
         ELSE (epoch_us(en.ts) - epoch_us(first_ts)) / 1000.0 END AS duration_ms,
    outcome,
    CASE WHEN outcome = 'failed' THEN en.message END AS error,
    CASE WHEN outcome = 'failed' THEN en.kind END AS error_kind,
    CASE WHEN outcome = 'completed' THEN en.input ELSE 0 END AS input_tokens,
    CASE WHEN outcome = 'completed' THEN en.output ELSE 0 END AS output_tokens,
    CASE WHEN outcome = 'completed' THEN en.cache_read ELSE 0 END AS cache_read_input_tokens,
    CASE WHEN outcome = 'completed' THEN en.cache_write ELSE 0 END AS cache_write_input_tokens,
    CASE WHEN outcome = 'completed' THEN en.reasoning ELSE 0 END AS reasoning_output_tokens,
    seq,
    CASE WHEN outcome = 'completed' THEN en.ts ELSE first_ts END AS created_at,
    outcome = 'completed' AND en.usage AS has_usage,
    CASE WHEN base.tid IS NULL THEN 'direct' ELSE 'turn' END AS source
FROM r ORDER BY seq
"""

_USAGE = """
SELECT session_id, turn_id, min(seq) AS seq, source, model,
    sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens,
    sum(cache_read_input_tokens)::BIGINT AS cache_read_input_tokens,
    sum(cache_write_input_tokens)::BIGINT AS cache_write_input_tokens,
    sum(reasoning_output_tokens)::BIGINT AS reasoning_output_tokens,
    min(created_at) AS created_at
FROM trace_calls WHERE has_usage
GROUP BY session_id, turn_id, source, model ORDER BY min(seq)
"""

_TOOLS = """
WITH t AS (
    SELECT coalesce(nullif(call_id, ''), 'line' || line) AS key, *
    FROM trace_ok WHERE type IN ('tool_call_started', 'tool_call_completed')
), k AS (
    SELECT sid, key, min(line) AS seq, arg_min(tid, line) AS tid,
        arg_max({'ts': ts, 'name': name, 'args': args}, line)
            FILTER (WHERE type = 'tool_call_started') AS st,
        arg_max({'ts': ts, 'name': name, 'args': args, 'status': tool_status,
                 'payload': tool_payload, 'duration': tool_ms}, line)
            FILTER (WHERE type = 'tool_call_completed') AS done
    FROM t GROUP BY sid, key
)
SELECT sid AS session_id, tid AS turn_id, key AS call_id,
    coalesce(CASE WHEN done IS NULL THEN st.name ELSE done.name END, '') AS name,
    CASE WHEN done IS NULL THEN st.args ELSE done.args END AS args,
    CASE WHEN done IS NULL THEN NULL ELSE done.payload END AS output,
    coalesce(done.status = 'success', false) AS success,
    coalesce(done.duration, 0.0) AS duration_ms,
    coalesce(st.ts, done.ts - to_microseconds(CAST(done.duration * 1000 AS BIGINT)))
        AS started_at,
    done IS NULL OR coalesce(done.status = 'cancelled', false) AS interrupted,
    seq
FROM k ORDER BY seq
"""


def _line_numbers(path: str, rows: int) -> list[int] | None:
    """The file line of each object DuckDB read: None when the file has no blank line (then
    the n-th object is on line n; DuckDB skips blank lines and nothing else)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if lines == rows:
        return None
    return [n for n, line in enumerate(data.split(b"\n"), start=1) if line.strip(b" \t\r")]


def read_with_duckdb(path: str, *, version: int,
                     parse_line: Callable[[str], tuple[str | None, Any]]) -> dict[str, Any] | None:
    """The trace's tables and records, read by DuckDB; None: let the Python path read it.
    ``parse_line`` is the Python parser (its message says why a line is bad)."""
    import pyarrow as pa

    from .tables import memory_connection

    con = memory_connection()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute(_LOAD, {"path": path})
        ((rows,),) = con.execute("SELECT count(*) FROM trace_raw").fetchall()
        numbers = _line_numbers(path, rows)
        if numbers is None:  # no blank lines: the n-th object is on line n
            envelope = _ENVELOPE.format(line="r.row", join="")
        else:
            if len(numbers) != rows:
                return None
            con.register("trace_lines_arrow", pa.table({
                "row": pa.array(range(1, rows + 1), pa.int64()),
                "line": pa.array(numbers, pa.int64())}))
            con.execute("CREATE TEMP TABLE trace_lines AS SELECT * FROM trace_lines_arrow")
            con.unregister("trace_lines_arrow")
            envelope = _ENVELOPE.format(line="m.line",
                                        join=" JOIN trace_lines m ON m.row = r.row")
        _rescue(con, path, parse_line, numbers)
        con.execute(envelope, {"version": version})
        problems, bad, newer = _problems(con, path, parse_line, version)
        con.execute(_OK)
        tables = {
            "sessions": con.sql(_SESSIONS).to_arrow_table(),
            "turns": con.sql(_TURNS).to_arrow_table(),
        }
        con.execute(f"CREATE TEMP TABLE trace_calls AS {_CALLS}")
        calls = con.sql("SELECT * EXCLUDE (created_at, has_usage, source) FROM trace_calls "
                        "ORDER BY seq").to_arrow_table()
        tables["llm_calls"] = calls
        tables["usage_deltas"] = con.sql(_USAGE).to_arrow_table()
        tables["tool_calls"] = _dumps_columns(con.sql(_TOOLS).to_arrow_table(),
                                              ("args", "output"))
        records = _dumps_columns(con.sql(_RECORDS).to_arrow_table(), ("payload",))
    finally:
        con.close()
    return {"tables": tables, "records": records, "problems": problems, "bad": bad,
            "newer": newer}


def _texts(path: str, wanted: set[int]) -> dict[int, str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return {n: text for n, text in enumerate(f, start=1) if n in wanted}


def _rescue(con: Any, path: str, parse_line: Callable[[str], tuple[str | None, Any]],
            numbers: list[int] | None) -> None:
    """Lines DuckDB could not read but Python can (JSON escapes spelling lone surrogates or
    NUL, read as U+FFFD, ADR 12) are loaded as the JSON Python reads."""
    from .trace import parse_timestamp_us

    unread = [row for (row,) in con.execute(
        "SELECT row FROM trace_raw WHERE j IS NULL ORDER BY row").fetchall()]
    if not unread:
        return
    line_of = {row: numbers[row - 1] if numbers is not None else row for row in unread}
    texts = _texts(path, set(line_of.values()))
    for row, line in line_of.items():
        reason, rec = parse_line(texts.get(line, ""))
        if reason is not None:
            continue
        try:
            parse_timestamp_us(rec["timestamp"])
        except ValueError:
            continue
        con.execute("UPDATE trace_raw SET j = CAST($j AS JSON) WHERE row = $row",
                    {"j": json.dumps(rec), "row": row})


def _problems(con: Any, path: str, parse_line: Callable[[str], tuple[str | None, Any]],
              version: int) -> tuple[list[tuple[int, str]], int, int]:
    """Why each refused line was refused, in the Python reader's words."""
    refused = con.execute("SELECT line, verdict FROM trace_rec WHERE verdict <> 'ok' "
                          "ORDER BY line").fetchall()
    if not refused:
        return [], 0, 0
    texts = _texts(path, {line for line, _ in refused})
    problems: list[tuple[int, str]] = []
    bad = newer = 0
    for line, verdict in refused:
        reason, rec = parse_line(texts.get(line, ""))
        if reason == _NEWER:
            newer += 1
            problems.append((line, f"schema_version {rec} is newer than {version}; skipped"))
        else:
            bad += 1
            problems.append((line, reason or _envelope_reason(verdict, rec)))
    return problems, bad, newer


def _envelope_reason(verdict: str, rec: Any) -> str:
    """The Python reader's words for a record whose timestamp it cannot read either."""
    from .trace import parse_timestamp_us

    kind = rec.get("type") if isinstance(rec, dict) else None
    try:
        parse_timestamp_us(str(rec.get("timestamp")) if isinstance(rec, dict) else "")
    except ValueError as e:
        return f"{kind} record not understood: {e}"
    return f"{kind} record not understood: {verdict}"


def _same_as_dumps(text: str) -> bool:
    """DuckDB writes a scalar as ``json.dumps`` does, unless it holds non-ASCII text (which
    ``json.dumps`` escapes); objects and arrays it writes without spaces."""
    return text[:1] not in ("{", "[") and text.isascii()


def _dumps_columns(table: Any, names: tuple[str, ...]) -> Any:
    """JSON text columns as ``json.dumps`` writes them (what a store keeps)."""
    import pyarrow as pa

    for name in names:
        i = table.schema.get_field_index(name)
        values = [v if v is None or _same_as_dumps(v) else json.dumps(json.loads(v))
                  for v in table.column(i).to_pylist()]
        table = table.set_column(i, name, pa.array(values, pa.string()))
    return table
