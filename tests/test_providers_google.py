"""The Gemini provider in a user's situation: a thinking model that calls a tool (its
signature must go back with the call), a stream that drops mid-answer, keys from the
variables the google-genai SDK reads. Scripts are hand-written from the published format
(``tests/wire_scripts/google.*.json``) or inline below."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmRequest, LlmToolSpec
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._core.usage import TokenUsage
from lash_nb._providers.google import GoogleGemini, google_contents
from lash_nb.providers import RetryPolicy
from lash_nb.stores import DuckDBStore
from lash_nb.testing import ReplayTransport

LOCAL = Path(__file__).resolve().parent / "wire_scripts"
KEY = "AIzaSyTEST-key-0123456789abcdefghijklm"
SIGNATURE = "CiQBsig-test=="


def _answer(name: str, text: str, match: dict[str, Any]) -> dict[str, Any]:
    chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                             "finishReason": "STOP", "index": 0}],
             "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 4}}
    return {
        "schema": "lash.provider-wire-script.v1", "name": name, "provider_kind": "google",
        "endpoint": {"method": "POST", "path": "/models/gemini-test:streamGenerateContent"},
        "request_match": {"body": match},
        "timeline": [
            {"at": 0, "event": "response_start", "status": 200,
             "headers": [{"name": "content-type", "value": "text/event-stream"}]},
            {"at": 1, "event": "sse", "data": json.dumps(chunk)},
            {"at": 2, "event": "end"},
        ],
    }


@tool
def lookup(q: str) -> str:
    """Look something up."""
    return f"{q} is 42"


def test_a_function_calls_signature_goes_back_with_it_and_survives_a_reopened_session(
        tmp_path: Path) -> None:
    file = tmp_path / "g.duckdb"
    carries_call = {
        "contents[1].role": {"equals": "model"},
        "contents[1].parts[0].functionCall.name": {"equals": "lookup"},
        "contents[1].parts[0].thoughtSignature": {"equals": SIGNATURE},
        "contents[2].parts[0].functionResponse.name": {"equals": "lookup"},
        "contents[2].parts[0].functionResponse.response.result": {"contains": "x is 42"},
    }
    transport = ReplayTransport([
        LOCAL / "google.stream-thought-function-call.json",
        _answer("after-tool", "x is 42.", carries_call),
        _answer("next-morning", "Still 42.", {**carries_call, "contents[4].role": {"equals": "user"}}),
    ])

    async def day(prompt: str) -> Any:
        store = DuckDBStore(file)
        provider = GoogleGemini(api_key=KEY, model="gemini-test", transport=transport)
        core = LashCore.builder().provider(provider).store(store).tools(lookup).build()
        session = await core.session("g").open()
        out = await session.turn(prompt).run()
        await core.close()
        await store.close()
        return out

    first = asyncio.run(day("what is x?"))
    assert first.result.assistant_message() == "x is 42."
    assert [(c.tool, c.args) for c in first.result.tool_calls] == [("lookup", {"q": "x"})]
    assert asyncio.run(day("and again?")).result.assistant_message() == "Still 42."
    assert transport.remaining == 0
    # thought summaries are shown, not sent back (only a signed part is)
    assert all("thought" not in p for c in transport.requests[2].body["contents"] for p in c["parts"])


def test_a_signature_is_not_sent_to_another_model() -> None:
    replay = json.dumps({"api": "google", "model": "gemini-test", "thoughtSignature": SIGNATURE})
    assistant = Message("m1", Role.ASSISTANT, (
        Part("m1.p0", PartKind.TOOL_CALL, '{"q": "x"}', "c1", "lookup", replay=replay),))
    result = Message("m2", Role.USER, (Part("m2.p0", PartKind.TOOL_RESULT, "not json", "c1", None),))
    request = LlmRequest(model="", messages=[assistant, result])
    same, other = google_contents(request, "gemini-test"), google_contents(request, "gemini-other")
    assert same[0]["parts"][0]["thoughtSignature"] == SIGNATURE
    assert "thoughtSignature" not in other[0]["parts"][0]
    # a result without a tool name takes its call's; a text result is wrapped in an object
    assert same[1]["parts"][0] == {"functionResponse": {"name": "lookup",
                                                        "response": {"result": "not json"}}}


def test_a_dropped_stream_is_retried_its_text_retracted_and_usage_counted_once() -> None:
    transport = ReplayTransport([LOCAL / "google.stream-disconnect-after-text.json",
                                 _answer("second", "Whole answer.", {})])
    provider = GoogleGemini(api_key=KEY, model="gemini-test", transport=transport)

    async def body() -> Any:
        core = (LashCore.builder().provider(provider)
                .retry_policy(RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0)).build())
        s = await core.session("s").open()
        out = await s.turn("hello").run()
        await core.close()
        return out

    out = asyncio.run(body())
    acts = out.activities
    reset = next(i for i, a in enumerate(acts) if a.type == "model_attempt_reset")
    assert [a.event.text for a in acts[:reset] if a.type == "assistant_prose_delta"] == ["Partial"]
    assert out.result.assistant_message() == "Whole answer."
    assert out.result.usage == TokenUsage(30, 4, 0, 0, 0)
    assert transport.open_streams == 0


def test_the_request_follows_the_gemini_format_and_the_key_stays_out_of_the_url(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyGEMINI-variable-0123456789abcdefg")
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)  # the SDK prefers GOOGLE_API_KEY when both are set
    user = Message.build(Role.USER, [(PartKind.TEXT, "hi")])
    system = Message.build(Role.SYSTEM, [(PartKind.TEXT, "Use metric units.")])
    provider = GoogleGemini(model="gemini-test", thinking_budget=512, include_thoughts=True)
    req = provider.build_http_request(LlmRequest(
        model="", messages=[system, user], system_prompt="Be brief.", max_output_tokens=64,
        tools=(LlmToolSpec("lookup", "Look up.", {"type": "object"}),), tool_choice="lookup"))
    assert str(req.url) == ("https://generativelanguage.googleapis.com/v1beta/models/"
                            "gemini-test:streamGenerateContent?alt=sse")
    assert req.headers["x-goog-api-key"] == KEY and KEY not in str(req.url)
    assert json.loads(req.content) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief.\n\nUse metric units."}]},
        "tools": [{"functionDeclarations": [{"name": "lookup", "description": "Look up.",
                                             "parameters": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}},
        "generationConfig": {"maxOutputTokens": 64,
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 512}},
    }
    assert KEY not in repr(provider)


def test_the_registry_builds_google_and_openai_responses_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from lash_nb._errors import ConfigurationError
    from lash_nb._providers.openai_responses import OpenAIResponses
    from lash_nb._providers.registry import NAMES, build_provider, check_key

    assert {"google", "openai-responses"} <= set(NAMES)  # so %lash open --provider and the worker take them
    google = build_provider("google", environ={"GEMINI_API_KEY": KEY})
    assert isinstance(google, GoogleGemini) and google.kind == "google"
    assert google.model == "gemini-2.5-flash"
    responses = build_provider("openai-responses", model="gpt-5", environ={"OPENAI_API_KEY": "sk-x" * 5})
    assert isinstance(responses, OpenAIResponses) and responses.kind == "openai-responses"
    check_key("google", {"GOOGLE_API_KEY": KEY})  # either variable will do
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        check_key("google", {})
