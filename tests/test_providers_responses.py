"""The OpenAI Responses provider in a user's situation: a reasoning model that calls a tool,
a notebook closed and reopened the next morning, a stream that drops mid-answer, a model
switched mid-session. Every script is a wire script (shared or hand-written here)."""

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
from lash_nb._providers.openai_responses import OpenAIResponses
from lash_nb._providers.responses_parse import responses_input
from lash_nb.providers import RetryPolicy
from lash_nb.stores import DuckDBStore
from lash_nb.testing import ReplayTransport

LOCAL = Path(__file__).resolve().parent / "wire_scripts"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "wire-scripts"
ENCRYPTED = "gAAAAB-encrypted-reasoning-1"
KEY = "sk-test-LEAKCHECK-123"


def _text_answer(name: str, text: str, match: dict[str, Any]) -> dict[str, Any]:
    """A hand-written Responses stream answering ``text``; ``match`` holds what the request
    body must carry (this is where replayed reasoning is checked)."""
    def sse(at: int, obj: dict[str, Any]) -> dict[str, Any]:
        return {"at": at, "event": "sse", "data": json.dumps(obj)}

    return {
        "schema": "lash.provider-wire-script.v1", "name": name, "provider_kind": "openai",
        "endpoint": {"method": "POST", "path": "/responses"},
        "request_match": {"body": {"model": {"equals": "gpt-5-test"}, "store": {"equals": False},
                                   **match}},
        "timeline": [
            {"at": 0, "event": "response_start", "status": 200,
             "headers": [{"name": "content-type", "value": "text/event-stream"}]},
            sse(1, {"type": "response.output_item.added", "output_index": 0,
                    "item": {"type": "message", "id": "msg_9", "role": "assistant", "content": []}}),
            sse(2, {"type": "response.output_text.delta", "item_id": "msg_9", "output_index": 0,
                    "content_index": 0, "delta": text}),
            sse(3, {"type": "response.completed", "response": {
                "id": f"resp_{name}", "status": "completed",
                "usage": {"input_tokens": 50, "output_tokens": 5}}}),
            {"at": 4, "event": "end"},
        ],
    }


@tool
def lookup(q: str) -> str:
    """Look something up."""
    return f"{q} is 42"


def test_reasoning_items_round_trip_through_a_reopened_duckdb_session(tmp_path: Path) -> None:
    file = tmp_path / "s.duckdb"
    same_turn = _text_answer("after-tool", "x is 42.", {
        "input[0].role": {"equals": "user"},
        "input[1].type": {"equals": "reasoning"},
        "input[1].id": {"equals": "rs_1"},
        "input[1].encrypted_content": {"equals": ENCRYPTED},
        "input[2].type": {"equals": "function_call"},
        "input[2].call_id": {"equals": "call_1"},
        "input[3].type": {"equals": "function_call_output"},
        "input[3].output": {"contains": "x is 42"},
    })
    next_morning = _text_answer("next-morning", "Still 42.", {
        "input[1].encrypted_content": {"equals": ENCRYPTED},
        "input[4].role": {"equals": "assistant"},
        "input[5].role": {"equals": "user"},
    })
    transport = ReplayTransport([LOCAL / "openai.responses-reasoning-tool-call.json", same_turn,
                                 next_morning])

    async def day(prompt: str) -> Any:
        store = DuckDBStore(file)
        provider = OpenAIResponses(api_key=KEY, model="gpt-5-test", transport=transport)
        core = LashCore.builder().provider(provider).store(store).tools(lookup).build()
        session = await core.session("s").open()
        out = await session.turn(prompt).run()
        await core.close()
        await store.close()
        return out

    first = asyncio.run(day("what is x?"))
    assert first.result.assistant_message() == "x is 42."
    second = asyncio.run(day("and again?"))
    assert second.result.assistant_message() == "Still 42."
    assert transport.remaining == 0
    bodies = [r.body for r in transport.requests]
    # the reasoning item goes back exactly as it came, summary and all
    kept = {"type": "reasoning", "id": "rs_1", "encrypted_content": ENCRYPTED,
            "summary": [{"type": "summary_text", "text": "Need the lookup tool."},
                        {"type": "summary_text", "text": "Query x."}]}
    assert bodies[1]["input"][1] == kept and bodies[2]["input"][1] == kept
    assert bodies[2]["input"][-1] == {"role": "user",
                                      "content": [{"type": "input_text", "text": "and again?"}]}
    # the reasoning summary is also readable in the stored history
    assert first.result.llm_calls[0].attempts[0].outcome == "completed"


def test_a_reasoning_item_is_not_sent_to_another_model() -> None:
    replay = json.dumps({"api": "openai-responses", "model": "gpt-5-test",
                         "item": {"id": "rs_1", "summary": [], "encrypted_content": ENCRYPTED}})
    assistant = Message("m1", Role.ASSISTANT, (
        Part("m1.p0", PartKind.PROSE, "Hi."),
        Part("m1.p1", PartKind.REASONING, "thought", replay=replay)))
    user = Message.build(Role.USER, [(PartKind.TEXT, "hello")])
    request = LlmRequest(model="x", messages=[user, assistant])
    same = responses_input(request, "gpt-5-test")
    other = responses_input(request, "gpt-5-other")
    assert [i.get("type", i.get("role")) for i in same] == ["user", "reasoning", "message"]
    assert [i.get("type", i.get("role")) for i in other] == ["user", "message"]


def test_a_foreign_or_broken_replay_is_ignored_not_sent() -> None:
    for raw in ("not json", json.dumps({"api": "anthropic", "model": "gpt-5-test"}),
                json.dumps({"api": "openai-responses", "model": "gpt-5-test",
                            "item": {"id": "rs_1"}})):  # no encrypted content: unresolvable
        assistant = Message("m1", Role.ASSISTANT, (Part("m1.p0", PartKind.REASONING, "t", replay=raw),))
        assert responses_input(LlmRequest(model="gpt-5-test", messages=[assistant]), "gpt-5-test") == []


def test_a_dropped_codex_stream_is_retried_its_prose_retracted_and_usage_counted_once() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"shared wire scripts not found at {SHARED}")
    transport = ReplayTransport([SHARED / "codex.responses-mid-stream-disconnect.json",
                                 SHARED / "codex.responses-text-stream.json"])
    provider = OpenAIResponses("https://chatgpt.com/backend-api/codex", api_key=KEY,
                               model="gpt-5.4-codex", transport=transport,
                               headers={"OpenAI-Beta": "responses=experimental"})

    async def body() -> Any:
        core = (LashCore.builder().provider(provider)
                .retry_policy(RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0)).build())
        s = await core.session("s").open()
        out = await s.turn("answer directly").run()
        await core.close()
        return out

    out = asyncio.run(body())
    acts = out.activities
    reset = next(i for i, a in enumerate(acts) if a.type == "model_attempt_reset")
    dropped = [a.event.text for a in acts[:reset] if a.type == "assistant_prose_delta"]
    assert dropped == ["Codex partial"]
    assert out.result.assistant_message() == "Codex direct answer."
    assert out.result.usage == TokenUsage(7, 3, 0, 0, 0)
    assert [a.outcome for a in out.result.llm_calls[0].attempts] == ["failed", "completed"]
    assert transport.open_streams == 0


def test_the_request_follows_the_responses_format_and_the_sdk_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://proxy.example/v1/")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_456")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    tools = (LlmToolSpec("lookup", "Look up.", {"type": "object"}),)
    user = Message.build(Role.USER, [(PartKind.TEXT, "hi")])
    plain = OpenAIResponses(model="gpt-4.1-mini")
    req = plain.build_http_request(LlmRequest(model="", messages=[user], tools=tools,
                                              system_prompt="Be brief.", max_output_tokens=99,
                                              tool_choice="lookup"))
    body = json.loads(req.content)
    assert str(req.url) == "https://proxy.example/v1/responses"
    assert req.headers["openai-organization"] == "org-123"
    assert req.headers["openai-project"] == "proj_456"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert body == {
        "model": "gpt-4.1-mini", "stream": True, "store": False, "instructions": "Be brief.",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "tools": [{"type": "function", "name": "lookup", "description": "Look up.",
                   "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "lookup"}, "max_output_tokens": 99,
    }  # a non-reasoning model gets no reasoning parameter (it would refuse it)
    thinking = OpenAIResponses(model="gpt-5-mini", reasoning_effort="low")
    body = json.loads(thinking.build_http_request(LlmRequest(model="", messages=[user])).content)
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert KEY not in repr(thinking)
