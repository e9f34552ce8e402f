"""Report frames over real turns (memory and DuckDB stores), prices, charts and empty stores."""

from __future__ import annotations

import asyncio
import warnings

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from lash_nb import DeliveryPolicy, LashCore, SlotPolicy, tool
from lash_nb._core.queue import QueuedWorkDraft
from lash_nb._core.usage import TokenUsage
from lash_nb._errors import StorePathError
from lash_nb.providers import LlmPart, LlmResponse, OfflineProvider, TerminalReason
from lash_nb.reports import (
    graph_frame,
    llm_calls_frame,
    queue_frame,
    tool_calls_frame,
    turns_frame,
    usage_chart,
    usage_frame,
)
from lash_nb.testing import scripted

TEXT = "str" if int(pd.__version__.split(".")[0]) >= 3 else "object"  # pandas 2 keeps text as object
BUCKET_NAMES = ["input_tokens", "output_tokens", "cache_read_input_tokens",
                "cache_write_input_tokens", "reasoning_output_tokens"]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(params=["memory", "duckdb"])
def store_arg(request, tmp_path):
    return None if request.param == "memory" else str(tmp_path / "r.duckdb")


def usage_script():
    """Turn t1: one call. Turn t2: a tool call, then the answer. Explicit usage on each."""
    return scripted(
        LlmResponse(parts=(LlmPart.text_part("first"),), usage=TokenUsage(10, 5, 3, 1, 2)),
        LlmResponse(parts=(LlmPart.tool_call("call-1", "add", '{"a": 2, "b": 3}'),),
                    usage=TokenUsage(20, 4, 0, 0, 0), terminal_reason=TerminalReason.TOOL_USE),
        LlmResponse(parts=(LlmPart.text_part("five"),), usage=TokenUsage(30, 6, 0, 2, 1)),
    )


async def two_turns(store_arg):
    core = LashCore.builder().provider(usage_script()).model("m-test").tools(add) \
        .store(store_arg).build()
    s = await core.session("s1").open()
    await s.turn("one").turn_id("t1").run()
    await s.turn("two").turn_id("t2").run()
    return core, s


def test_usage_by_turn_is_one_row_per_turn_with_its_calls_and_tokens(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        frame = usage_frame(s, by="turn")
        expected = pd.DataFrame({
            "session_id": ["s1", "s1"], "turn_id": ["t1", "t2"], "source": ["turn", "turn"],
            "model": ["m-test", "m-test"],
            "input_tokens": [10, 50], "output_tokens": [5, 10],
            "cache_read_input_tokens": [3, 0], "cache_write_input_tokens": [1, 2],
            "reasoning_output_tokens": [2, 1], "total_tokens": [19, 62],
            "turns": [1, 1], "estimated": [False, False], "llm_calls": [1, 2],
        }).astype({"session_id": TEXT, "turn_id": TEXT, "source": TEXT, "model": TEXT})
        assert_frame_equal(frame.drop(columns=["started_at", "duration_ms"]), expected)
        assert str(frame["started_at"].dtype) == "datetime64[us, UTC]"
        assert frame["started_at"].notna().all() and (frame["duration_ms"] >= 0).all()
        assert frame["started_at"].iloc[0] <= frame["started_at"].iloc[1]
        await core.close()
    run(body())


def test_usage_by_model_with_prices_costs_each_bucket_per_million(store_arg):
    async def body():
        core, _s = await two_turns(store_arg)
        prices = {"m-test": {"input_tokens": 1.0, "output_tokens": 2.0,
                             "cache_read_input_tokens": 0.5, "cache_write_input_tokens": 4.0}}
        frame = usage_frame(core, by="model", prices=prices)
        expected = pd.DataFrame({
            "model": ["m-test"], "input_tokens": [60], "output_tokens": [15],
            "cache_read_input_tokens": [3], "cache_write_input_tokens": [3],
            "reasoning_output_tokens": [3], "total_tokens": [81], "turns": [2], "estimated": [False],
            # 60 * 1.0 + 15 * 2.0 + 3 * 0.5 + 3 * 4.0 = 103.5 dollars per million tokens
            "cost": [103.5e-6], "price_note": [None],
        }).astype({"model": TEXT, "price_note": TEXT})
        assert_frame_equal(frame.drop(columns=["started_at"]), expected)
        await core.close()
    run(body())


def test_a_model_without_a_price_costs_nan_and_warns_with_its_name(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        with pytest.warns(UserWarning, match="m-test"):
            frame = usage_frame(s, by="session", prices={"other": {"input_tokens": 1.0}})
        assert frame["session_id"].tolist() == ["s1"]
        assert frame["cost"].isna().all()
        assert frame["price_note"].tolist() == ["no price for this model"]
        await core.close()
    run(body())


def test_a_price_csv_works_like_a_mapping(tmp_path):
    csv = tmp_path / "prices.csv"
    csv.write_text("model,input_tokens,output_tokens,cache_read_input_tokens,"
                   "cache_write_input_tokens\nm-test,1,2,0.5,4\n")

    async def body():
        core, s = await two_turns(None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            frame = usage_frame(s, by="source", prices=csv)
        assert frame["source"].tolist() == ["turn"]
        assert frame["cost"].tolist() == [103.5e-6]
        await core.close()
    run(body())


def test_reasoning_has_no_price_of_its_own():
    with pytest.raises(ValueError, match="output_tokens"):
        usage_frame(None, prices={"m": {"reasoning_output_tokens": 1.0}})


def test_usage_totals_reconcile_with_the_report_and_the_per_call_usage(store_arg):
    async def body():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add) \
            .store(store_arg).build()
        s = await core.session("s1").open()
        await s.turn("hello there").run()
        await s.turn("please add a=2 b=3").run()
        other = await core.session("s2").open()
        await other.turn("unrelated").run()
        report = s.usage_report().usage
        by_turn = usage_frame(s, by="turn")[BUCKET_NAMES].sum()
        by_model = usage_frame(s, by="model")[BUCKET_NAMES].sum()
        per_call = llm_calls_frame(s)[BUCKET_NAMES].sum()
        for bucket in BUCKET_NAMES:
            assert by_turn[bucket] == by_model[bucket] == per_call[bucket] \
                == getattr(report, bucket), bucket
        assert usage_frame(s, by="turn")["total_tokens"].sum() == report.total()
        assert report.total() > 0
        # the whole store holds both sessions
        both = usage_frame(core, by="session")
        assert both["session_id"].tolist() == ["s1", "s2"]
        assert both.loc[0, "total_tokens"] == report.total()
        await core.close()
    run(body())


def test_turns_and_tool_calls_frames_show_outcomes_and_calls(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        turns = turns_frame(s)
        expected = pd.DataFrame({
            "session_id": ["s1", "s1"], "turn_id": ["t1", "t2"],
            "status": ["committed", "committed"], "outcome": ["finished", "finished"],
            "stop_reason": ["assistant_message", "assistant_message"],
            "llm_calls": [1, 2], "tool_calls": [0, 1], "failed_tool_calls": [0, 0],
            "cancelled_tool_calls": [0, 0],
            "total_tokens": [19, 62], "error": [None, None],
            "cancelled_by": [None, None], "cancel_reason": [None, None],
        }).astype(dict.fromkeys(["session_id", "turn_id", "status", "outcome", "stop_reason", "error",
                                 "cancelled_by", "cancel_reason"], TEXT))
        assert_frame_equal(turns.drop(columns=["started_at", "duration_ms"]), expected)
        calls = tool_calls_frame(s)
        expected_calls = pd.DataFrame({
            "session_id": ["s1"], "turn_id": ["t2"], "call_id": ["call-1"], "name": ["add"],
            "args_bytes": [len('{"a":2,"b":3}')], "output_bytes": [1],
            "success": [True], "interrupted": [False], "status": ["success"],
            "approval": [None], "approved_by": [None],  # it ran under "always": nobody asked
            "printed": [None],  # it printed nothing
        }).astype(dict.fromkeys(["session_id", "turn_id", "call_id", "name", "status", "approval",
                                 "approved_by", "printed"], TEXT))
        assert_frame_equal(calls.drop(columns=["started_at", "duration_ms"]), expected_calls)
        await core.close()
    run(body())


def test_graph_frame_lists_nodes_with_parents_and_the_active_path(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        g = graph_frame(s)
        assert g["role"].tolist() == ["user", "assistant", "user", "assistant", "user",
                                      "assistant"]
        assert g["text"].tolist() == ["one", "first", "two", 'call add {"a": 2, "b": 3}',
                                      "add returned: 5", "five"]
        assert g["parent_node_id"].iloc[1:].tolist() == g["node_id"].iloc[:-1].tolist()
        assert g["parent_node_id"].isna().tolist() == [True] + [False] * 5
        assert g["on_active_path"].all()
        assert g["turn_id"].tolist() == ["t1", "t1", "t2", "t2", "t2", "t2"]
        await core.close()
    run(body())


def test_queue_frame_shows_pending_work_with_policies_and_age(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        store = core.store
        draft = QueuedWorkDraft("s1", "k1", DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT,
                                SlotPolicy.EXCLUSIVE, None, 0, (("turn_input", {"text": "x"}),))
        batch = await store.enqueue(draft)
        later = QueuedWorkDraft("s1", "k2", DeliveryPolicy.EARLIEST_SAFE_BOUNDARY,
                                SlotPolicy.JOIN, None, 0, (("turn_input", {"text": "y"}),))
        dropped = await store.enqueue(later)
        await store.cancel_queued_work_batch("s1", dropped.batch_id)
        now = batch.enqueued_at_ms + 5_000
        q = queue_frame(s, now_ms=now)
        pending = q[q["state"] == "pending"]
        assert pending["batch_id"].tolist() == [batch.batch_id]
        assert pending["delivery_policy"].tolist() == ["after_current_turn_commit"]
        assert pending["slot_policy"].tolist() == ["exclusive"]
        assert pending["age_ms"].tolist() == [5000.0]
        assert pending["wait_ms"].isna().all()
        # every store keeps finished batches (queue_history; the memory store in memory)
        assert q["state"].tolist() == ["pending", "cancelled"]
        assert q["slot_policy"].tolist() == ["exclusive", "join"]
        await core.close()
    run(body())


def test_a_session_source_only_sees_its_own_session(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        other = await core.session("s2").open()
        await other.turn("three").turn_id("t3").run()
        assert usage_frame(other)["turn_id"].tolist() == ["t3"]
        assert turns_frame(s)["turn_id"].tolist() == ["t1", "t2"]
        assert sorted(usage_frame(core)["session_id"].unique().tolist()) == ["s1", "s2"]
        await core.close()
    run(body())


def test_a_duckdb_path_reads_the_same_frames_as_its_core(tmp_path):
    path = str(tmp_path / "p.duckdb")

    async def body():
        core, _s = await two_turns(path)
        via_core = usage_frame(core, by="turn")
        await core.close()
        return via_core

    via_core = run(body())
    assert_frame_equal(usage_frame(path, by="turn"), via_core)
    with pytest.raises(StorePathError, match="no lash store"):
        usage_frame(str(tmp_path / "missing.duckdb"))


def test_usage_chart_renders_an_svg_bar_per_turn(store_arg):
    async def body():
        core, s = await two_turns(store_arg)
        chart = usage_chart(s, by="turn")
        assert chart.labels == ("t1 · m-test", "t2 · m-test")
        html = chart.to_html()
        assert html.count("<svg") == 1 and "tokens per turn" in html
        # input 10 + cache read 3 + cache write 1 + output 5 = the turn's total of 19
        assert [sum(v[0] for _, v in chart.series), sum(v[1] for _, v in chart.series)] == [19, 62]
        await core.close()
    run(body())
