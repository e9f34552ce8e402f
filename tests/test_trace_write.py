"""lash_nb writes its own turns as a lash trace (schema 2, lash's record names), and the trace
reads back into the same report frames the store gives: a turn with a tool call, a turn whose
first attempt was retried, and a turn that failed; on a DuckDB store file."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb._core.llm import (
    LlmPart,
    LlmResponse,
    LlmTransportError,
    ProviderFailureKind,
    TerminalReason,
)
from lash_nb._core.usage import TokenUsage
from lash_nb.providers import FunctionProvider, RetryPolicy
from lash_nb.reports import (
    read_lash_trace,
    tool_calls_frame,
    turns_frame,
    usage_frame,
    write_lash_trace,
)


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


def _model() -> Any:
    tries = {"flaky": 0}

    def answer(request: Any) -> Any:
        last = request.messages[-1]
        if last.parts and last.parts[-1].kind.value == "tool_result":
            return LlmResponse(parts=(LlmPart.text_part("It is sunny."),),
                               usage=TokenUsage(130, 7, 100, 0, 0))
        text = last.text()
        if text == "weather in Paris?":
            return LlmResponse(parts=(LlmPart.tool_call("call-w1", "weather", '{"city": "Paris"}'),),
                               usage=TokenUsage(100, 10, 0, 0, 4),
                               terminal_reason=TerminalReason.TOOL_USE)
        if text == "flaky":
            tries["flaky"] += 1
            if tries["flaky"] == 1:
                raise LlmTransportError("busy", kind=ProviderFailureKind.OVERLOADED, retryable=True)
            return LlmResponse(parts=(LlmPart.text_part("ok"),), usage=TokenUsage(50, 2, 0, 0, 0))
        raise LlmTransportError("no credits", kind=ProviderFailureKind.QUOTA, code="quota")

    return answer


@pytest.fixture
def store_path(tmp_path: Any) -> str:
    path = str(tmp_path / "lash.duckdb")

    async def body() -> None:
        core = (LashCore.builder().provider(FunctionProvider(_model())).model("m-test")
                .tools(weather).store(path)
                .retry_policy(RetryPolicy(max_attempts=2, base_delay_s=0.0)).build())
        s = await core.session("s1").open()
        for prompt in ("weather in Paris?", "flaky", "broke"):
            await s.turn(prompt).run()
        await core.close()

    asyncio.run(body())
    return path


def test_a_written_trace_has_lashs_records_in_time_order(store_path, tmp_path):
    out = tmp_path / "trace.jsonl"
    n = write_lash_trace(store_path, out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == n
    # 3 turns x (started + completed); 5 attempts x (started + end); 1 tool x (started + end)
    assert n == 3 * 2 + 5 * 2 + 2
    assert all(r["schema_version"] == 2 and r["context"]["session_id"] == "s1" for r in records)
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)
    kinds = [r["type"] for r in records]
    assert kinds[:2] == ["turn_started", "llm_call_started"]
    assert kinds.count("llm_call_failed") == 2  # the overloaded attempt, the quota failure
    done = [r for r in records if r["type"] == "turn_completed"]
    assert [(r["status"], r["done_reason"]) for r in done] == [
        ("completed", "assistant_message"), ("completed", "assistant_message"),
        ("failed", "provider_error")]
    started = next(r for r in records if r["type"] == "llm_call_started")
    assert started["request"]["messages"] == []  # no prompt text leaves the store


def test_the_trace_reads_back_into_the_same_frames(store_path, tmp_path):
    out = tmp_path / "trace.jsonl"
    write_lash_trace(store_path, out)
    trace = read_lash_trace(out)
    assert (trace.bad_lines, trace.unsupported_lines) == (0, 0)
    cols = ["model", "input_tokens", "output_tokens", "cache_read_input_tokens",
            "reasoning_output_tokens", "total_tokens"]
    assert (usage_frame(trace, by="model")[cols].values.tolist()
            == usage_frame(store_path, by="model")[cols].values.tolist()
            == [["m-test", 280, 19, 100, 4, 399]])  # 100+130+50 in, 10+7+2 out
    assert (turns_frame(trace)[["turn_id", "outcome", "stop_reason"]].values.tolist()
            == turns_frame(store_path)[["turn_id", "outcome", "stop_reason"]].values.tolist())
    cols = ["call_id", "name", "success", "status", "output_bytes"]
    assert (tool_calls_frame(trace)[cols].values.tolist()
            == tool_calls_frame(store_path)[cols].values.tolist()
            == [["call-w1", "weather", True, "success", len('"sunny in Paris"')]])
