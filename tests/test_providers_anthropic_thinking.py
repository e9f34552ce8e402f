"""Anthropic extended thinking across calls: the thinking block goes back with its signature
(and a redacted block with its data) first in its assistant message, after a tool call in the
same turn and after the notebook is closed and reopened; it is never sent to another model,
nor when thinking is off, nor kept when the model's thinking held the key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from test_providers_replay import collect

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmRequest
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._providers.anthropic import Anthropic, anthropic_messages
from lash_nb.stores import DuckDBStore
from lash_nb.testing import ReplayTransport, load_wire_script

LOCAL = Path(__file__).resolve().parent / "wire_scripts"
KEY = "sk-ant-test-LEAKCHECK-123456"
THINKING = {"type": "thinking", "thinking": "The user wants a lookup.", "signature": "EqQBCgIYAhIM"}


def _answer(name: str, text: str, match: dict[str, Any]) -> dict[str, Any]:
    def sse(at: int, obj: dict[str, Any]) -> dict[str, Any]:
        return {"at": at, "event": "sse", "data": json.dumps(obj)}

    return {
        "schema": "lash.provider-wire-script.v1", "name": name, "provider_kind": "anthropic",
        "endpoint": {"method": "POST", "path": "/v1/messages"},
        "request_match": {"body": {"thinking.type": {"equals": "enabled"}, **match}},
        "timeline": [
            {"at": 0, "event": "response_start", "status": 200,
             "headers": [{"name": "content-type", "value": "text/event-stream"}]},
            sse(1, {"type": "message_start", "message": {"id": f"msg_{name}", "model": "claude-test",
                                                         "usage": {"input_tokens": 9, "output_tokens": 1}}}),
            sse(2, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            sse(3, {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
            sse(4, {"type": "content_block_stop", "index": 0}),
            sse(5, {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
            sse(6, {"type": "message_stop"}),
            {"at": 7, "event": "end"},
        ],
    }


@tool
def lookup(q: str) -> str:
    """Look something up."""
    return f"{q} is on the menu"


def test_a_thinking_block_goes_back_with_its_signature_after_a_tool_call_and_a_reopen(
        tmp_path: Path) -> None:
    file = tmp_path / "a.duckdb"
    carries = {
        "messages[1].role": {"equals": "assistant"},
        "messages[1].content[0].type": {"equals": "thinking"},
        "messages[1].content[0].signature": {"equals": THINKING["signature"]},
        "messages[1].content[0].thinking": {"equals": THINKING["thinking"]},
        "messages[1].content[1].type": {"equals": "text"},
        "messages[1].content[2].type": {"equals": "tool_use"},
        "messages[2].content[0].type": {"equals": "tool_result"},
    }
    transport = ReplayTransport([LOCAL / "anthropic.thinking-tool-use-input-json.json",
                                 _answer("after-tool", "It is.", carries),
                                 _answer("next-morning", "Still is.", carries)])

    async def day(prompt: str) -> Any:
        store = DuckDBStore(file)
        provider = Anthropic(api_key=KEY, model="claude-test", thinking_budget=1024,
                             transport=transport)
        core = LashCore.builder().provider(provider).store(store).tools(lookup).build()
        session = await core.session("a").open()
        out = await session.turn(prompt).run()
        await core.close()
        await store.close()
        return out

    assert asyncio.run(day("is café on the menu?")).result.assistant_message() == "It is."
    assert asyncio.run(day("sure?")).result.assistant_message() == "Still is."
    assert transport.remaining == 0
    assert transport.requests[2].body["messages"][1]["content"][0] == THINKING


def _response_parts(script: str, *, key: str = KEY) -> tuple[Any, ...]:
    provider = Anthropic(api_key=key, model="claude-test", thinking_budget=1024,
                         transport=ReplayTransport([LOCAL / script]))
    user = Message.build(Role.USER, [(PartKind.TEXT, "hi")])
    out = asyncio.run(collect(provider, LlmRequest(model="", messages=[user])))
    assert out.error is None and len(out.completed) == 1
    return out.completed[0].parts


def _as_message(parts: tuple[Any, ...]) -> Message:
    kinds = {"text": PartKind.PROSE, "reasoning": PartKind.REASONING}
    return Message("m1", Role.ASSISTANT, tuple(
        Part(f"m1.p{i}", kinds[p.kind], p.text, replay=p.replay) for i, p in enumerate(parts)))


def test_redacted_thinking_is_kept_and_sent_back_only_to_its_model_with_thinking_on() -> None:
    parts = _response_parts("anthropic.redacted-thinking.json")
    assert [(p.kind, p.text) for p in parts] == [("reasoning", ""), ("reasoning", "Answer plainly."),
                                                 ("text", "Done.")]
    history = [Message.build(Role.USER, [(PartKind.TEXT, "hi")]), _as_message(parts),
               Message.build(Role.USER, [(PartKind.TEXT, "again")])]
    request = LlmRequest(model="", messages=history)
    data = load_wire_script(LOCAL / "anthropic.redacted-thinking.json").timeline[2].get("data")
    redacted = json.loads(data)["content_block"]["data"]
    _, same = anthropic_messages(request, "claude-test")
    assert same[1]["content"] == [
        {"type": "redacted_thinking", "data": redacted},
        {"type": "thinking", "thinking": "Answer plainly.", "signature": "ErUBCkYIBxgCIkB"},
        {"type": "text", "text": "Done."}]
    for model in (None, "claude-other"):  # thinking off, or another model: text only
        _, other = anthropic_messages(request, model)
        assert other[1]["content"] == [{"type": "text", "text": "Done."}]


def test_a_thinking_block_that_held_the_key_is_shown_scrubbed_and_not_kept() -> None:
    parts = _response_parts("anthropic.redacted-thinking.json", key="Answer plainly")
    thought = [p for p in parts if p.kind == "reasoning" and p.text]
    assert thought[0].text == "[redacted]." and thought[0].replay is None
