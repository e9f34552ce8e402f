"""The trace import runs in DuckDB (``read_ndjson_objects`` + SQL) and gives exactly the
tables, records and problems of the line-by-line Python reader, which stays the reference:
on the hand-written trace, on one whose JSON spells lone surrogates, and on a trace written
to hit every rule (blank lines, ``:log`` duplicates, a turn known by its index, a tool call
that never started or never ended, a model call that never ended, the older usage names,
envelopes that are JSON but not records, a timestamp that is not one)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from lash_nb._reports.trace import TRACE_SCHEMA_VERSION, _parse_line, _read_in_python
from lash_nb._reports.trace_sql import read_with_duckdb
from lash_nb.reports import read_lash_trace, usage_frame

TRACE = Path(__file__).parent / "data" / "lash_trace_v2.jsonl"


def _rec(i: int, kind: str, ts: str, ctx: dict[str, Any], **fields: Any) -> str:
    return json.dumps({"schema_version": 2, "id": f"e{i}", "timestamp": ts, "context": ctx,
                       "type": kind, **fields})


EDGES = [
    _rec(1, "turn_started", "2026-04-01T09:00:00Z", {"session_id": "a", "turn_index": 0}),
    "",
    _rec(2, "llm_call_started", "2026-04-01T09:00:00.5Z",
         {"session_id": "a", "turn_index": 0, "llm_call_id": "a:0:0:1", "protocol_iteration": 0},
         request={"model": "m-1"}),
    _rec(3, "llm_call_started", "2026-04-01T09:00:00.6Z",
         {"session_id": "a", "turn_index": 0, "llm_call_id": "a:0:0:1:log"},
         request={"model": "ignored"}),
    "   ",
    _rec(4, "llm_call_completed", "2026-04-01T09:00:01.25+01:00",
         {"session_id": "a", "turn_index": 0, "llm_call_id": "a:0:0:1"},
         response={"text": "x"}, usage={"input_tokens": 7, "cached_input_tokens": 3,
                                        "reasoning_tokens": 2, "output_tokens": 4}),
    _rec(5, "tool_call_completed", "2026-04-01T09:00:02Z", {"session_id": "a", "turn_index": 0},
         call_id="late", name="f", args={"k": [1, 2]},
         output={"outcome": {"status": "cancelled", "payload": None}}, duration_ms=250),
    _rec(6, "tool_call_started", "2026-04-01T09:00:02.1Z", {"session_id": "a", "turn_index": 0},
         call_id="open", name="g"),
    _rec(7, "llm_call_started", "2026-04-01T09:00:03Z", {"session_id": "b", "llm_call_id": "d1"},
         request={}),
    '[1, 2, 3]',
    '{"schema_version": true, "type": "x", "timestamp": "2026-04-01T09:00:00Z"}',
    '{"schema_version": 2, "type": "turn_started", "timestamp": "yesterday", "context": {}}',
    '{"schema_version": 2, "type": "turn_started", "timestamp": "2026-04-01T09:00:00Z", "context": 5}',
    _rec(8, "turn_completed", "2026-04-01T09:00:04.123456789Z",
         {"session_id": "a", "turn_index": 0}, status="completed",
         done_reason="agent_frame_switch"),
    _rec(9, "protocol_step", "2026-04-01T09:00:04Z", {"session_id": "a"}, plugin_id="p",
         payload={"z": "é", "n": None}),
]


def _both(path: Path) -> tuple[dict[str, Any], Any]:
    got = read_with_duckdb(str(path), version=TRACE_SCHEMA_VERSION, parse_line=_parse_line)
    assert got is not None, "the DuckDB path gave up on this file"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _read_in_python(str(path))
    return got, ref


def _assert_same(got: dict[str, Any], ref: Any) -> None:
    assert got["problems"] == ref.problems
    assert (got["bad"], got["newer"]) == (ref.bad_lines, ref.unsupported_lines)
    for name, table in ref.tables.items():
        expected = table.to_pandas()
        actual = got["tables"][name].to_pandas()[list(expected.columns)]
        assert actual.astype(str).values.tolist() == expected.astype(str).values.tolist(), name
    actual_records = got["records"].to_pandas()[list(ref.records.columns)]
    assert actual_records.astype(str).values.tolist() == ref.records.astype(str).values.tolist()


def test_the_hand_written_trace_reads_the_same_in_duckdb_and_in_python():
    _assert_same(*_both(TRACE))


def test_a_trace_spelling_lone_surrogates_reads_the_same(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(TRACE.read_text().replace('"3 hits"', '"3 hits \\ud800 \\u0000"'))
    _assert_same(*_both(path))


def test_a_trace_written_to_hit_every_rule_reads_the_same(tmp_path):
    path = tmp_path / "edges.jsonl"
    path.write_text("\n".join(EDGES) + "\n")
    got, ref = _both(path)
    _assert_same(got, ref)
    # and what the rules give, by hand: one turn known by its index, a :log duplicate
    # dropped, the older usage names, one direct call that never ended
    assert [line for line, _ in got["problems"]] == [10, 11, 12, 13]
    calls = got["tables"]["llm_calls"].to_pylist()
    assert [(c["call_id"], c["turn_id"], c["model"], c["outcome"]) for c in calls] == [
        ("a:0:0:1", "idx0", "m-1", "completed"), ("d1", None, "unknown", "interrupted")]
    assert (calls[0]["input_tokens"], calls[0]["cache_read_input_tokens"],
            calls[0]["reasoning_output_tokens"], calls[0]["duration_ms"]) == (7, 3, 2, -3599250.0)
    # (no response duration: end - start; 09:00:01.25+01:00 is 08:00:01.25 UTC, an hour
    # and 0.75 s before the start, and the offset is honoured)
    turns = got["tables"]["turns"].to_pylist()
    assert [(t["turn_id"], t["outcome"]) for t in turns] == [("idx0", "agent_frame_switch")]


def test_read_lash_trace_takes_the_duckdb_path_and_reports_like_before(monkeypatch):
    from lash_nb._reports import trace

    monkeypatch.setattr(trace, "_read_in_python", lambda path: pytest.fail("Python path used"))
    with pytest.warns(UserWarning, match="1 bad line"):
        got = read_lash_trace(TRACE)
    frame = usage_frame(got, by="model")
    assert dict(zip(frame["model"], frame["input_tokens"], strict=True)) == {
        "gpt-x": 230, "small-y": 40}
