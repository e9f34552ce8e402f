"""OpenTelemetry spans (GenAI conventions), read back with the SDK's in-memory exporter: off by
default, one call to enable; a span per turn, per model call (model, tokens, finish reason) and
per tool call, linked to the session and turn ids; no prompt, output or key in any attribute
unless content capture is asked for (and then scrubbed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

import lash_nb
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

SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"
PROMPT = f"weather in Paris? my key is {SECRET}"


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


def _model(request: Any) -> LlmResponse:
    last = request.messages[-1]
    if last.parts and last.parts[-1].kind.value == "tool_result":
        return LlmResponse(parts=(LlmPart.text_part("It is sunny."),),
                           usage=TokenUsage(130, 7, 100, 0, 0), served_model="gpt-4.1-mini-2025")
    return LlmResponse(parts=(LlmPart.tool_call("call-w1", "weather", '{"city": "Paris"}'),),
                       usage=TokenUsage(100, 10, 0, 0, 4), terminal_reason=TerminalReason.TOOL_USE)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    lash_nb.disable_tracing()


def _run(prompt: str = PROMPT, model: Any = _model) -> Any:
    async def body() -> Any:
        core = (LashCore.builder().provider(FunctionProvider(model)).model("gpt-4.1-mini")
                .tools(weather).retry_policy(RetryPolicy(max_attempts=1)).build())
        s = await core.session("traced").open()
        out = await s.turn(prompt).run()
        await core.close()
        return out

    return asyncio.run(body())


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_tracing_is_off_until_enabled(spans: InMemorySpanExporter) -> None:
    _run()
    assert spans.get_finished_spans() == ()


def test_a_turn_with_a_tool_is_one_span_tree_with_the_genai_attributes(spans):
    lash_nb.enable_tracing(_provider(spans))
    out = _run()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert sorted(by_name) == ["chat gpt-4.1-mini", "execute_tool weather", "invoke_agent lash_nb"]
    assert len(spans.get_finished_spans()) == 4  # two model calls, one tool call, the turn
    turn = by_name["invoke_agent lash_nb"]
    calls = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    tool_span = by_name["execute_tool weather"]
    for child in [*calls, tool_span]:
        assert child.parent is not None and child.parent.span_id == turn.context.span_id
        assert child.context.trace_id == turn.context.trace_id
    for s in spans.get_finished_spans():
        assert s.attributes["gen_ai.conversation.id"] == "traced"
        assert s.attributes["lash_nb.turn.id"] == out.result.turn_id
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn.attributes["lash_nb.turn.outcome"] == "finished: assistant_message"
    assert turn.attributes["gen_ai.usage.input_tokens"] == 230
    assert turn.attributes["gen_ai.usage.output_tokens"] == 17
    first, second = sorted(calls, key=lambda s: s.start_time)
    assert dict(first.attributes) == {
        "gen_ai.conversation.id": "traced", "lash_nb.turn.id": out.result.turn_id,
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "function",
        "gen_ai.request.model": "gpt-4.1-mini", "lash_nb.call.id": f"{out.result.turn_id}:0",
        "lash_nb.call.attempts": 1, "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 4,
        "gen_ai.response.finish_reasons": ("tool_use",),
    }
    assert second.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert second.attributes["gen_ai.response.model"] == "gpt-4.1-mini-2025"
    assert second.attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert tool_span.attributes["gen_ai.tool.name"] == "weather"
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call-w1"
    assert tool_span.attributes["lash_nb.tool.status"] == "success"
    # a parent span holds its children (an invariant of the tree, not a timing)
    assert all(turn.start_time <= s.start_time and s.end_time <= turn.end_time
               for s in [*calls, tool_span])


def test_no_prompt_output_or_key_is_an_attribute_by_default(spans):
    lash_nb.enable_tracing(_provider(spans))
    _run()
    for s in spans.get_finished_spans():
        for value in s.attributes.values():
            text = str(value)
            assert SECRET not in text and "Paris" not in text and "sunny" not in text


def test_captured_content_is_scrubbed_of_keys(spans):
    lash_nb.enable_tracing(_provider(spans), capture_content=True)
    _run()
    by_name = {s.name: s for s in spans.get_finished_spans()}
    turn = by_name["invoke_agent lash_nb"]
    assert "weather in Paris?" in turn.attributes["gen_ai.input.messages"]
    assert "It is sunny." in turn.attributes["gen_ai.output.messages"]
    assert by_name["execute_tool weather"].attributes["gen_ai.tool.call.result"] == "sunny in Paris"
    for s in spans.get_finished_spans():
        assert all(SECRET not in str(v) for v in s.attributes.values())


def test_a_failed_model_call_is_an_error_span_and_the_turn_says_why(spans):
    lash_nb.enable_tracing(_provider(spans))

    def refuse(_request: Any) -> Any:
        raise LlmTransportError("quota exhausted", kind=ProviderFailureKind.QUOTA)

    out = _run("hello", refuse)
    assert str(out.result.outcome) == "stopped: provider_error"
    by_name = {s.name: s for s in spans.get_finished_spans()}
    call, turn = by_name["chat gpt-4.1-mini"], by_name["invoke_agent lash_nb"]
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "quota"
    assert turn.status.status_code is StatusCode.ERROR
    assert turn.attributes["error.type"] == "provider_error"


def test_a_broken_exporter_never_fails_the_turn(spans, caplog):
    class Broken(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            raise RuntimeError("collector down")

    lash_nb.enable_tracing(_provider(Broken()))
    out = _run()
    assert str(out.result.outcome) == "finished: assistant_message"
