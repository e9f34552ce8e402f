"""Turns in standard mode: streaming, tool calls, outcomes, retries, usage."""

from __future__ import annotations

import asyncio
import time

import pytest

from lash_nb import LashCore, TurnInput, tool
from lash_nb._core.usage import TokenUsage
from lash_nb._errors import TurnIdMismatch
from lash_nb.providers import (
    Completed,
    FunctionProvider,
    LlmPart,
    LlmResponse,
    LlmTransportError,
    ProviderFailureKind,
    RetryPolicy,
    TerminalReason,
    TextDelta,
)
from lash_nb.testing import scripted, tool_call


def run(coro):
    return asyncio.run(coro)


def core_with(provider, *tools, **kw):
    b = LashCore.builder().provider(provider).model("m-test").retry_policy(
        RetryPolicy(max_attempts=3, base_delay_s=0.0))
    if tools:
        b = b.tools(*tools)
    if "max_turns" in kw:
        b = b.max_turns(kw["max_turns"])
    return b.build()


@tool
async def echo_tool(text: str) -> str:
    """Echo text back."""
    return f"echo:{text}"


def test_plain_answer_streams_prose_and_finishes_with_assistant_message():
    async def body():
        s = await core_with(scripted("hello world")).session("s").open()
        out = await s.turn(TurnInput.text("hi")).run()
        types = [a.type for a in out.activities]
        assert str(out.result.outcome) == "finished: assistant_message"
        assert out.result.assistant_message() == "hello world"
        assert "assistant_prose_delta" in types
        assert not any(t.startswith("tool_call") for t in types)
        assert out.result.is_success()
    run(body())


def test_builder_is_awaitable():
    async def body():
        s = await core_with(scripted("x")).session("s").open()
        out = await s.turn("hi")
        assert out.result.assistant_message() == "x"
    run(body())


def test_text_parts_stream_raw_but_commit_joined_with_a_blank_line():
    async def body():
        provider = scripted(LlmResponse(parts=(LlmPart.text_part("first"), LlmPart.text_part("second"))))
        s = await core_with(provider).session("s").open()
        out = await s.turn("hi").run()
        deltas = "".join(a.event.text for a in out.activities if a.type == "assistant_prose_delta")
        assert deltas == "firstsecond"
        assert out.result.assistant_message() == "first\n\nsecond"
        assert s.read_view().messages()[-1].text() == "first\n\nsecond"
    run(body())


def test_tool_call_round_trip_shares_one_correlation_id_and_feeds_the_result_back():
    seen_results = []

    def model(request):
        last = request.messages[-1]
        if last.tool_results():
            seen_results.append(last.tool_results()[0].content)
            return "done"
        return [tool_call("echo_tool", '{"text": "abc"}', "call_1")]

    async def body():
        s = await core_with(FunctionProvider(model), echo_tool).session("s").open()
        out = await s.turn("use the tool").run()
        started = [a for a in out.activities if a.type == "tool_call_started"]
        completed = [a for a in out.activities if a.type == "tool_call_completed"]
        assert len(started) == len(completed) == 1
        assert started[0].correlation_id == completed[0].correlation_id == "tool:call_1"
        assert completed[0].event.output == "echo:abc" and completed[0].event.success
        assert seen_results == ["echo:abc"]
        assert out.result.tool_calls[0].tool == "echo_tool"
    run(body())


def test_tool_calls_of_one_response_run_concurrently_and_results_keep_call_order():
    windows = {}

    @tool
    async def slow(n: int) -> int:
        """Sleep a little."""
        windows[n] = [time.perf_counter()]
        await asyncio.sleep(0.05 * (4 - n))
        windows[n].append(time.perf_counter())
        return n * 10

    def model(request):
        last = request.messages[-1]
        if last.tool_results():
            return ",".join(p.content for p in last.tool_results())
        return [tool_call("slow", f'{{"n": {i}}}', f"c{i}") for i in (1, 2, 3)]

    async def body():
        s = await core_with(FunctionProvider(model), slow).session("s").open()
        out = await s.turn("go").run()
        assert out.result.assistant_message() == "10,20,30"
        starts = [w[0] for w in windows.values()]
        ends = [w[1] for w in windows.values()]
        assert max(starts) < min(ends)  # all three were in flight at once
    run(body())


def test_a_raising_tool_gives_the_model_an_error_result_and_the_turn_finishes():
    @tool
    def boom() -> str:
        """Always fails."""
        raise RuntimeError("kaput")

    def model(request):
        last = request.messages[-1]
        if last.tool_results():
            r = last.tool_results()[0]
            return f"tool failed: {r.is_error} {r.content}"
        return [tool_call("boom")]

    async def body():
        s = await core_with(FunctionProvider(model), boom).session("s").open()
        out = await s.turn("try").run()
        assert out.result.assistant_message() == "tool failed: True RuntimeError: kaput"
        assert out.result.tool_calls[0].success is False
    run(body())


def test_unknown_tool_and_missing_arguments_become_error_results():
    def model(request):
        last = request.messages[-1]
        if last.tool_results():
            return " | ".join(p.content for p in last.tool_results())
        return [tool_call("nope", "{}", "a"), tool_call("echo_tool", "{}", "b")]

    async def body():
        s = await core_with(FunctionProvider(model), echo_tool).session("s").open()
        out = await s.turn("x").run()
        assert out.result.assistant_message() == (
            "unknown tool 'nope'; available tools: echo_tool | "
            # a missing argument is the tool's validation's: counted in its retry bound
            "ToolArgumentsInvalid: invalid arguments for tool 'echo_tool': text: Field required; "
            "fix the arguments and call 'echo_tool' again (2 tries left in this turn)"
        )
    run(body())


def test_max_turns_stops_the_loop_with_max_turns():
    async def body():
        provider = scripted([tool_call("echo_tool", '{"text": "again"}')])
        s = await core_with(provider, echo_tool, max_turns=2).session("s").open()
        out = await s.turn("loop").run()
        assert str(out.result.outcome) == "stopped: max_turns"
        assert provider.calls == 2
        assert s.read_view().messages()[-1].parts[0].content == (
            "Turn limit reached (2) before a final assistant response.")
    run(body())


@pytest.mark.parametrize("reason, expected", [
    (TerminalReason.OUTPUT_LIMIT, "stopped: incomplete"),
    (TerminalReason.CONTENT_FILTER, "stopped: provider_error"),
])
def test_terminal_reasons_map_to_stops(reason, expected):
    async def body():
        provider = scripted(LlmResponse(parts=(LlmPart.text_part("partial"),), terminal_reason=reason))
        s = await core_with(provider).session("s").open()
        out = await s.turn("x").run()
        assert str(out.result.outcome) == expected
    run(body())


def test_empty_response_is_a_provider_error():
    async def body():
        s = await core_with(scripted(LlmResponse())).session("s").open()
        out = await s.turn("x").run()
        assert str(out.result.outcome) == "stopped: provider_error"
        assert any(a.type == "error" for a in out.activities)
    run(body())


def test_blank_input_commits_invalid_input():
    async def body():
        s = await core_with(scripted("never")).session("s").open()
        out = await s.turn(TurnInput.text("   ")).run()
        assert str(out.result.outcome) == "stopped: invalid_input"
        turns = await s.store.load_turns("s")
        assert [t.stop_reason for t in turns] == ["invalid_input"]
    run(body())


def test_a_terminal_provider_failure_ends_stopped_provider_error_and_is_committed():
    def model(request):
        raise LlmTransportError("bad request", kind=ProviderFailureKind.VALIDATION, status=400)

    async def body():
        s = await core_with(FunctionProvider(model)).session("s").open()
        out = await s.turn("x").run()
        assert str(out.result.outcome) == "stopped: provider_error"
        assert out.result.errors[0].message == "bad request"
        assert [t.stop_reason for t in await s.store.load_turns("s")] == ["provider_error"]
    run(body())


def test_retryable_failure_then_success_emits_one_retry_status():
    calls = {"n": 0}

    def model(request):
        calls["n"] += 1
        if calls["n"] == 1:
            raise LlmTransportError("overloaded", kind=ProviderFailureKind.OVERLOADED, retryable=True)
        return "ok"

    async def body():
        s = await core_with(FunctionProvider(model)).session("s").open()
        out = await s.turn("x").run()
        retries = [a.event for a in out.activities if a.type == "retry_status"]
        assert [(r.attempt, r.max_attempts, r.wait_seconds) for r in retries] == [(1, 3, 0.0)]
        assert out.result.assistant_message() == "ok"
        assert [a.outcome for a in out.result.llm_calls[0].attempts] == ["failed", "completed"]
    run(body())


def test_a_retry_after_streamed_prose_resets_exactly_that_attempts_rows():
    calls = {"n": 0}

    async def stream_then_fail():
        yield TextDelta("lost words")
        raise LlmTransportError("dropped", kind=ProviderFailureKind.STREAM, retryable=True)

    def model(request):
        calls["n"] += 1
        return stream_then_fail() if calls["n"] == 1 else "kept words"

    async def body():
        s = await core_with(FunctionProvider(model)).session("s").open()
        out = await s.turn("x").run()
        acts = out.activities
        first = next(a for a in acts if a.type == "assistant_prose_delta")
        reset = next(a for a in acts if a.type == "model_attempt_reset")
        assert reset.event.assistant_prose_correlation_ids == [first.correlation_id]
        later = [a for a in acts if a.type == "assistant_prose_delta" and a is not first]
        assert [a.event.text for a in later] == ["kept words"]
        assert first.correlation_id not in {a.correlation_id for a in later}
        assert out.result.assistant_message() == "kept words"
    run(body())


def test_usage_is_counted_once_per_response_and_totals_reconcile():
    async def streaming_usage():
        yield TextDelta("a")
        yield TextDelta("b")
        yield Completed(LlmResponse(parts=(LlmPart.text_part("ab"),),
                                    usage=TokenUsage(input_tokens=10, output_tokens=2,
                                                     cache_read_input_tokens=3,
                                                     reasoning_output_tokens=1)))

    async def body():
        s = await core_with(FunctionProvider(lambda r: streaming_usage())).session("s").open()
        await s.turn("one").run()
        out = await s.turn("two").run()
        assert out.result.usage == TokenUsage(10, 2, 3, 0, 1)
        report = s.usage_report()
        assert report.usage == TokenUsage(20, 4, 6, 0, 2)
        assert report.usage.total() == 30  # reasoning excluded
        assert report.by_model["m-test"].input_tokens == 20
        assert report.by_source["turn"].output_tokens == 4
    run(body())


def test_a_trace_turn_id_that_differs_from_the_turn_id_is_rejected():
    async def body():
        s = await core_with(scripted("x")).session("s").open()
        with pytest.raises(TurnIdMismatch):
            await s.turn(TurnInput.text("hi").with_trace_turn_id("a")).turn_id("b").run()
        out = await s.turn(TurnInput.text("hi").with_trace_turn_id("same")).turn_id("same").run()
        assert out.result.turn_id == "same"
    run(body())


def test_offline_provider_calls_a_named_tool_and_reports_its_result():
    from lash_nb.providers import OfflineProvider

    @tool
    def weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    async def body():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(weather).build()
        s = await core.session("s").open()
        out = await s.turn("what does weather say for 'Oslo'?").run()
        assert out.result.tool_calls[0].args == {"city": "Oslo"}
        assert out.result.assistant_message() == "weather returned sunny in Oslo."
        assert s.policy_snapshot().model == "lash-offline"
    run(body())


def test_offline_provider_echoes_a_tool_that_returned_a_long_log_without_streaming_it_for_hours():
    """A new user's tool reads a log (80,000 lines) and the offline model answers with it:
    word by word at the notebook's 0.03 s that was 480,000 deltas, about four hours; the
    first 200 words stream, the rest is one delta, and the answer is still the whole echo."""
    from lash_nb.providers import OfflineProvider

    log = "line of the log 0123456789 abcdefghij\n" * 80_000

    @tool(max_output=4_000_000)  # the whole 3 MB log to the model (ADR 174's bound raised)
    def read_log(name: str) -> str:
        """Read a log file."""
        return log

    async def body():
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(read_log).build()
        s = await core.session("s").open()
        stream = s.turn("what does read_log say for 'app'?").stream()
        deltas = [a.event.text for a in [a async for a in stream] if a.type == "assistant_prose_delta"]
        out = await stream.finish()
        return out, deltas

    out, deltas = run(body())
    assert out.assistant_message() == f"read_log returned {log}."
    assert len(deltas) == 201
    assert deltas[:3] == ["read_log ", "returned ", "line "]
    assert "".join(deltas) == f"read_log returned {log}."


def test_a_turn_records_the_same_commit_hash_as_the_documented_recipe():
    """The stored ``commit_hash`` (what a re-run of the same turn is compared against) is the
    SHA-256 of sorted JSON over turn id, outcome and each new message's role and parts (kind,
    content, tool name). Spelled out here so a faster recipe cannot change a stored hash."""
    import hashlib
    import json

    def model(request):
        if request.messages[-1].tool_results():
            return "done"
        return [tool_call("echo_tool", '{"text": "abc"}', "call_1")]

    async def body():
        s = await core_with(FunctionProvider(model), echo_tool).session("s").open()
        out = await s.turn("use the tool").run()
        rows = await s.store.load_turns("s")
        assert [r.turn_id for r in rows] == [out.result.turn_id]
        new = list(s.read_view().messages())
        assert [m.role.value for m in new] == ["user", "assistant", "user", "assistant"]
        body_ = {
            "turn_id": out.result.turn_id,
            "outcome": {"finished": {"assistant_message": {"text": "done"}}},
            "messages": [[m.role.value, [[p.kind.value, p.content, p.tool_name] for p in m.parts]]
                         for m in new],
        }
        want = hashlib.sha256(json.dumps(body_, sort_keys=True).encode()).hexdigest()
        assert rows[0].commit_hash == want
    run(body())
