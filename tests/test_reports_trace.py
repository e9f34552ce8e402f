"""Importing a hand-written lash trace (schema 2) and empty stores giving typed empty frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from lash_nb.reports import (
    graph_frame,
    llm_calls_frame,
    queue_frame,
    read_lash_trace,
    tool_calls_frame,
    turns_frame,
    usage_frame,
)
from lash_nb.stores import DuckDBStore, MemoryStore

TRACE = Path(__file__).parent / "data" / "lash_trace_v2.jsonl"
STR = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"  # pandas 2 keeps text as object


def load():
    with pytest.warns(UserWarning, match="1 bad line"):
        return read_lash_trace(TRACE)


def test_bad_and_newer_schema_lines_are_counted_not_fatal():
    trace = load()
    assert trace.bad_lines == 1
    assert trace.unsupported_lines == 1
    assert [line for line, _ in trace.problems] == [8, 10]
    assert "newer" in trace.problems[1][1]
    assert len(trace.records) == 18  # 20 lines, two skipped


def test_trace_usage_by_turn_sums_each_turn_call_and_keeps_direct_calls_apart():
    frame = usage_frame(load(), by="turn")
    expected = pd.DataFrame({
        "session_id": ["prod-1", "prod-1"], "turn_id": ["t1", None],
        "source": ["turn", "direct"], "model": ["gpt-x", "small-y"],
        "input_tokens": [230, 40], "output_tokens": [30, 8],
        "cache_read_input_tokens": [50, 10],  # the direct call uses the older cached_input_tokens
        "cache_write_input_tokens": [0, 0], "reasoning_output_tokens": [5, 0],
        "total_tokens": [310, 58], "turns": [1, 0], "estimated": [False, False],
        "llm_calls": [3, 0],  # t1: the failed attempt, its retry and the answer
        "started_at": pd.to_datetime(["2026-03-01 10:00:01", None]).astype("datetime64[us]").tz_localize("UTC"),
        "duration_ms": [2500.0, float("nan")],
    }).astype(dict.fromkeys(["session_id", "turn_id", "source", "model"], STR))
    assert_frame_equal(frame, expected)


def test_trace_turns_show_the_completed_and_the_failed_turn():
    frame = turns_frame(load())
    expected = pd.DataFrame({
        "session_id": ["prod-1", "prod-1"], "turn_id": ["t1", "t2"],
        "status": ["committed", "committed"], "outcome": ["finished", "stopped"],
        "stop_reason": ["assistant_message", "provider_error"],
        "started_at": pd.to_datetime(["2026-03-01 10:00:01", "2026-03-01 11:00:00"])
        .astype("datetime64[us]").tz_localize("UTC"),
        "duration_ms": [2500.0, 400.0],
        "llm_calls": [3, 1], "tool_calls": [1, 0], "failed_tool_calls": [0, 0],
        "cancelled_tool_calls": [0, 0],
        "total_tokens": [310, 0], "error": [None, None],
        "cancelled_by": [None, None], "cancel_reason": [None, None],
    }).astype(dict.fromkeys(["session_id", "turn_id", "status", "outcome", "stop_reason", "error",
                             "cancelled_by", "cancel_reason"], STR))
    assert_frame_equal(frame, expected)


def test_trace_llm_calls_keep_the_failed_call_with_its_error():
    frame = llm_calls_frame(load())
    assert frame["call_id"].tolist() == ["prod-1:0:0:1", "prod-1:0:0:2", "prod-1:0:1:1",
                                         "prod-1:1:0:1", "direct-1"]
    assert frame["outcome"].tolist() == ["failed", "completed", "completed", "failed",
                                         "completed"]
    assert frame["error"].tolist()[0] == "upstream reset"
    assert frame["error_kind"].tolist()[3] == "429"
    assert frame["duration_ms"].tolist() == [300.0, 1200.0, 500.0, 250.0, 200.0]
    assert frame["total_tokens"].tolist() == [0, 170, 140, 0, 58]


def test_trace_tool_call_pair_becomes_one_row():
    frame = tool_calls_frame(load())
    expected = pd.DataFrame({
        "session_id": ["prod-1"], "turn_id": ["t1"], "call_id": ["c1"], "name": ["search"],
        "args_bytes": [len('{"q": "duck"}')], "output_bytes": [len('"3 hits"')],
        "success": [True], "interrupted": [False], "status": ["success"],
        "started_at": pd.to_datetime(["2026-03-01 10:00:02.750"]).astype("datetime64[us]").tz_localize("UTC"),
        "duration_ms": [40.0],
        "approval": [None], "approved_by": [None],  # a lash trace records no approvals
        "printed": [None],  # nor what a tool printed
    }).astype(dict.fromkeys(["session_id", "turn_id", "call_id", "name", "status", "approval",
                             "approved_by", "printed"], STR))
    assert_frame_equal(frame, expected)


def test_trace_protocol_steps_are_listed():
    steps = load().protocol_steps
    assert steps["plugin_id"].tolist() == ["runtime"]
    assert steps["line"].tolist() == [13]


USAGE_BY_MODEL_DTYPES = {
    "model": STR, "input_tokens": "int64", "output_tokens": "int64",
    "cache_read_input_tokens": "int64", "cache_write_input_tokens": "int64",
    "reasoning_output_tokens": "int64", "total_tokens": "int64", "turns": "int64", "estimated": "bool",
    "started_at": "datetime64[us, UTC]", "cost": "float64", "price_note": STR,
}
USAGE_BY_TURN_COLUMNS = [
    "session_id", "turn_id", "source", "model", "input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_write_input_tokens", "reasoning_output_tokens",
    "total_tokens", "turns", "estimated", "llm_calls", "started_at", "duration_ms",
]
QUEUE_DTYPES = {
    "session_id": STR, "batch_id": STR, "state": STR, "delivery_policy": STR,
    "slot_policy": STR, "source_key": STR, "enqueue_seq": "int64",
    "enqueued_at": "datetime64[us, UTC]", "claimed_at": "datetime64[us, UTC]",
    "finished_at": "datetime64[us, UTC]", "age_ms": "float64", "wait_ms": "float64", "turn_id": STR,
    "attempts": "int64", "error": STR,
}


@pytest.fixture(params=["memory", "duckdb"])
def empty_store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
        return
    store = DuckDBStore(tmp_path / "empty.duckdb")
    yield store
    store.close_sync()


def test_empty_stores_give_empty_frames_with_the_documented_columns_and_dtypes(empty_store):
    by_model = usage_frame(empty_store, by="model", prices={"m": {"input_tokens": 1.0}})
    assert len(by_model) == 0
    assert {c: str(t) for c, t in by_model.dtypes.items()} == USAGE_BY_MODEL_DTYPES
    by_turn = usage_frame(empty_store)
    assert list(by_turn.columns) == USAGE_BY_TURN_COLUMNS and len(by_turn) == 0
    assert str(by_turn["duration_ms"].dtype) == "float64"
    assert str(by_turn["llm_calls"].dtype) == "int64"
    queue = queue_frame(empty_store)
    assert len(queue) == 0
    assert {c: str(t) for c, t in queue.dtypes.items()} == QUEUE_DTYPES
    for frame in (turns_frame(empty_store), tool_calls_frame(empty_store),
                  llm_calls_frame(empty_store), graph_frame(empty_store)):
        assert len(frame) == 0 and len(frame.columns) >= 8
    assert str(turns_frame(empty_store)["total_tokens"].dtype) == "int64"
    assert str(graph_frame(empty_store)["on_active_path"].dtype) == "bool"


def test_a_trace_whose_json_spells_lone_surrogates_and_nul_still_reports(tmp_path):
    # lash writes JSON; an escape like \ud800 (a tool that decoded bytes with surrogateescape)
    # is valid JSON text but no DuckDB JSON value: it is read as U+FFFD
    bad = TRACE.read_text().replace('"3 hits"', '"3 hits \\ud800 \\u0000"')
    path = tmp_path / "trace.jsonl"
    path.write_text(bad)
    with pytest.warns(UserWarning, match="1 bad line"):
        trace = read_lash_trace(path)
    frame = tool_calls_frame(trace)
    # stored as the JSON text "3 hits \ufffd \ufffd" (ASCII escapes of U+FFFD)
    assert frame["output_bytes"].tolist() == [len('"3 hits \\ufffd \\ufffd"')]
    assert turns_frame(trace)["turn_id"].tolist() == ["t1", "t2"]
