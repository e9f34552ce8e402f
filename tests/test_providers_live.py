"""Live calls to real providers; each is skipped unless its key variable is set.

Run with ``pytest -m live``. Each test asks for a one-word answer and then one tool call,
and checks the shape (text streamed, one Completed, usage counted, terminal reason), not the
model's wording.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from lash_nb._core.llm import Completed, LlmRequest, LlmResponse, LlmToolSpec, TextDelta
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.google import GoogleGemini
from lash_nb._providers.openai_compat import OpenAICompatible
from lash_nb._providers.openai_responses import OpenAIResponses

pytestmark = pytest.mark.live

WEATHER = LlmToolSpec("get_weather", "Current weather for a city.",
                      {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _providers() -> list[Any]:
    out: list[Any] = []
    if os.environ.get("OPENAI_API_KEY"):
        out.append(pytest.param(lambda: OpenAICompatible(model="gpt-4.1-mini"), id="openai"))
    else:
        out.append(pytest.param(None, id="openai", marks=pytest.mark.skip(reason="OPENAI_API_KEY not set")))
    if os.environ.get("OPENAI_API_KEY"):
        out.append(pytest.param(lambda: OpenAIResponses(model="gpt-4.1-mini"), id="openai-responses"))
    else:
        out.append(pytest.param(None, id="openai-responses",
                                marks=pytest.mark.skip(reason="OPENAI_API_KEY not set")))
    if os.environ.get("ANTHROPIC_API_KEY"):
        out.append(pytest.param(lambda: Anthropic(model="claude-3-5-haiku-latest", max_tokens=256), id="anthropic"))
    else:
        out.append(pytest.param(None, id="anthropic", marks=pytest.mark.skip(reason="ANTHROPIC_API_KEY not set")))
    if os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY"):
        out.append(pytest.param(lambda: GoogleGemini(model="gemini-2.5-flash", thinking_budget=0),
                                id="google"))
    else:
        out.append(pytest.param(None, id="google", marks=pytest.mark.skip(
            reason="GOOGLE_API_KEY / GEMINI_API_KEY not set")))
    if os.environ.get("OPENROUTER_API_KEY"):
        out.append(pytest.param(lambda: OpenAICompatible("https://openrouter.ai/api/v1",
                                                         api_key_env="OPENROUTER_API_KEY",
                                                         model="openai/gpt-4.1-mini"), id="openrouter"))
    else:
        out.append(pytest.param(None, id="openrouter", marks=pytest.mark.skip(reason="OPENROUTER_API_KEY not set")))
    return out


async def _run(provider: Any, request: LlmRequest) -> tuple[str, LlmResponse]:
    text, completed = "", []
    async for event in provider.stream(request):
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, Completed):
            completed.append(event.response)
    await provider.aclose()
    assert len(completed) == 1
    return text, completed[0]


@pytest.mark.parametrize("make", _providers())
def test_live_text_answer_streams_and_reports_usage(make: Any) -> None:
    user = Message.build(Role.USER, [(PartKind.TEXT, "Reply with the single word: pong")])
    text, response = asyncio.run(_run(make(), LlmRequest(model="", messages=[user], max_output_tokens=50)))
    assert text == response.full_text and "pong" in text.lower()
    assert response.terminal_reason.value == "stop"
    assert response.usage.input_total() > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize("make", _providers())
def test_live_tool_call_arrives_with_json_arguments(make: Any) -> None:
    user = Message.build(Role.USER, [(PartKind.TEXT, "What's the weather in Paris? Use the tool.")])
    request = LlmRequest(model="", messages=[user], tools=(WEATHER,), tool_choice="required",
                         max_output_tokens=200)
    _, response = asyncio.run(_run(make(), request))
    assert response.terminal_reason.value == "tool_use"
    call = response.tool_calls()[0]
    assert call.tool_name == "get_weather" and "paris" in json.loads(call.input_json or "{}")["city"].lower()


@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="OPENAI_API_KEY not set")
def test_live_responses_reasoning_items_are_accepted_back_on_the_next_call() -> None:
    """A reasoning model's encrypted reasoning, kept and sent back with its tool call and the
    tool's result (stateless, store: false), is accepted by the server."""
    from lash_nb._core.records import Part

    user = Message.build(Role.USER, [(PartKind.TEXT, "What's the weather in Paris? Use the tool.")])
    provider = OpenAIResponses(model="gpt-5-mini", reasoning_effort="low")
    request = LlmRequest(model="", messages=[user], tools=(WEATHER,), tool_choice="required")
    _, first = asyncio.run(_run(provider, request))
    kept = [p for p in first.parts if p.kind == "reasoning" and p.replay]
    assert kept, "the reasoning item with encrypted content was not kept"
    call = first.tool_calls()[0]
    assistant = Message("m1", Role.ASSISTANT, tuple(
        [Part(f"m1.r{i}", PartKind.REASONING, p.text, replay=p.replay) for i, p in enumerate(kept)]
        + [Part("m1.c", PartKind.TOOL_CALL, call.input_json or "{}", call.call_id, call.tool_name)]))
    result = Message("m2", Role.USER, (Part("m2.r", PartKind.TOOL_RESULT, "sunny, 21 C", call.call_id),))
    follow = LlmRequest(model="", messages=[user, assistant, result], tools=(WEATHER,))
    text, second = asyncio.run(_run(OpenAIResponses(model="gpt-5-mini", reasoning_effort="low"), follow))
    assert second.terminal_reason.value == "stop" and text


@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="ANTHROPIC_API_KEY not set")
def test_live_anthropic_thinking_signature_is_accepted_back_on_the_next_call() -> None:
    """A thinking block kept with its signature and sent back with its tool call and the
    tool's result is accepted (a wrong or missing signature is a 400)."""
    from lash_nb._core.records import Part

    user = Message.build(Role.USER, [(PartKind.TEXT, "What's the weather in Paris? Use the tool.")])

    def make() -> Anthropic:
        return Anthropic(model="claude-sonnet-4-20250514", max_tokens=2048, thinking_budget=1024)

    _, first = asyncio.run(_run(make(), LlmRequest(model="", messages=[user], tools=(WEATHER,))))
    kept = [p for p in first.parts if p.kind == "reasoning" and p.replay]
    assert kept, "the thinking block with its signature was not kept"
    call = first.tool_calls()[0]
    assistant = Message("m1", Role.ASSISTANT, tuple(
        [Part(f"m1.r{i}", PartKind.REASONING, p.text, replay=p.replay) for i, p in enumerate(kept)]
        + [Part("m1.c", PartKind.TOOL_CALL, call.input_json or "{}", call.call_id, call.tool_name)]))
    result = Message("m2", Role.USER, (Part("m2.r", PartKind.TOOL_RESULT, "sunny, 21 C", call.call_id),))
    text, second = asyncio.run(_run(make(), LlmRequest(model="", messages=[user, assistant, result],
                                                       tools=(WEATHER,))))
    assert second.terminal_reason.value == "stop" and text
