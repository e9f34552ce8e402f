"""A model request's body encodes each message of the history once across calls (issue 21),
and is byte for byte the body the provider sent before: the plain ``json.dumps`` of its
payload, through a growing conversation, a rewind to an earlier message, a changed system
prompt, untrusted text (quotes, newlines, non-ASCII) and an ``extra_body`` that replaces the
messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lash_nb._core.graph import SessionGraph, SessionNode
from lash_nb._core.llm import LlmRequest
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._providers.openai_compat import OpenAICompatible


def _node(graph: SessionGraph, role: Role, *parts: Part) -> SessionNode:
    nid = f"n{len(graph)}"
    msg = Message(nid, role, tuple(parts))
    return graph.append(SessionNode(nid, graph.leaf_node_id, "message", msg, None, 1, "t"))


def _exchange(graph: SessionGraph, k: int) -> None:
    _node(graph, Role.USER, Part(f"u{k}", PartKind.TEXT, f'question {k}: "caf\u00e9"\nline two'))
    _node(graph, Role.ASSISTANT, Part(f"c{k}", PartKind.TOOL_CALL, '{"city": "Paris"}',
                                      tool_call_id=f"call{k}", tool_name="get_weather"))
    _node(graph, Role.USER, Part(f"r{k}", PartKind.TOOL_RESULT, "sunny \u2600",
                                 tool_call_id=f"call{k}"))
    _node(graph, Role.ASSISTANT, Part(f"a{k}", PartKind.PROSE, f"answer {k}"))


def _plain(provider: Any, request: LlmRequest) -> bytes:
    return json.dumps(provider.payload(request)).encode()


def test_a_growing_conversation_sends_the_same_bytes_as_a_full_encode() -> None:
    provider = OpenAICompatible(api_key="sk-test", model="m")
    graph = SessionGraph()
    for k in range(6):
        _exchange(graph, k)
        for system in ("You are terse.", None):
            request = LlmRequest("m", graph.view(), system_prompt=system)
            assert provider.build_http_request(request).content == _plain(provider, request)
    body = json.loads(provider.build_http_request(LlmRequest("m", graph.view())).content)
    assert len(body["messages"]) == 6 * 4
    assert body["messages"][0]["content"] == 'question 0: "caf\u00e9"\nline two'


def test_a_rewind_to_an_earlier_message_is_encoded_from_the_new_path() -> None:
    provider = OpenAICompatible(api_key="sk-test", model="m")
    graph = SessionGraph()
    for k in range(3):
        _exchange(graph, k)
    provider.build_http_request(LlmRequest("m", graph.view()))
    graph.branch_to("n3")  # back to the end of the first exchange
    _node(graph, Role.USER, Part("u-new", PartKind.TEXT, "a different question"))
    request = LlmRequest("m", graph.view())
    body = provider.build_http_request(request).content
    assert body == _plain(provider, request)
    assert [m.get("content") for m in json.loads(body)["messages"]][-1] == "a different question"
    assert len(json.loads(body)["messages"]) == 5


@pytest.mark.parametrize("kind", ["openai-compatible", "anthropic"])
def test_an_older_view_after_a_newer_one_sends_only_its_own_messages(kind: str) -> None:
    from lash_nb._providers.anthropic import Anthropic

    provider: Any = (OpenAICompatible(api_key="sk-test", model="m") if kind != "anthropic"
                     else Anthropic(api_key="sk-ant-test", model="m"))
    graph = SessionGraph()
    _exchange(graph, 0)
    old = LlmRequest("m", graph.view())
    _exchange(graph, 1)
    provider.build_http_request(LlmRequest("m", graph.view()))
    assert provider.build_http_request(old).content == _plain(provider, old)
    assert len(json.loads(provider.build_http_request(old).content)["messages"]) == 4


def test_extra_body_that_replaces_messages_and_plain_lists_still_work() -> None:
    graph = SessionGraph()
    _exchange(graph, 0)
    replaced = OpenAICompatible(api_key="sk-test", model="m",
                                extra_body={"messages": [{"role": "user", "content": "x"}]})
    request = LlmRequest("m", graph.view())
    assert json.loads(replaced.build_http_request(request).content)["messages"] == [
        {"role": "user", "content": "x"}]
    provider = OpenAICompatible(api_key="sk-test", model="m")
    as_list = LlmRequest("m", list(graph.view()), system_prompt="s")
    assert provider.build_http_request(as_list).content == _plain(provider, as_list)


def test_each_message_is_encoded_once_across_a_sessions_calls(monkeypatch) -> None:
    """Ten exchanges with a model call after each: 40 messages encoded, not 220 (the whole
    history on every call)."""
    from lash_nb._providers import openai_compat

    seen: list[str] = []
    real = openai_compat._chat_message

    def counting(message: Message):  # type: ignore[no-untyped-def]
        seen.append(message.id)
        return real(message)

    monkeypatch.setattr(openai_compat, "_chat_message", counting)
    provider = OpenAICompatible(api_key="sk-test", model="m")
    graph = SessionGraph()
    for k in range(10):
        _exchange(graph, k)
        provider.build_http_request(LlmRequest("m", graph.view()))
    assert len(seen) == 40
    assert len(set(seen)) == 40


# ---------------------------------------------------------------------- Anthropic
def _thinking_turn(graph: SessionGraph, k: int, model: str) -> None:
    """A user question, then an assistant message with kept thinking and a tool call, its
    result and a text answer: consecutive user messages (the result, the next question)
    merge into one Messages API entry with the tool result first."""
    replay = json.dumps({"api": "anthropic", "model": model,
                         "block": {"type": "thinking", "thinking": f"hmm {k}", "signature": "sig"}})
    _node(graph, Role.ASSISTANT, Part(f"t{k}", PartKind.REASONING, f"hmm {k}", replay=replay),
          Part(f"c{k}", PartKind.TOOL_CALL, '{"q": 1}', tool_call_id=f"k{k}", tool_name="look"))
    _node(graph, Role.USER, Part(f"r{k}", PartKind.TOOL_RESULT, "found \u2603", tool_call_id=f"k{k}"))
    _node(graph, Role.USER, Part(f"q{k}", PartKind.TEXT, f'and "then" {k}?'))


def test_anthropic_a_growing_conversation_sends_the_same_bytes_as_a_full_encode() -> None:
    """Every call while the history grows message by message (so the open last entry grows
    too), with and without thinking replay, a system prompt and system messages."""
    from lash_nb._providers.anthropic import Anthropic

    for budget in (None, 1024):
        provider = Anthropic(api_key="sk-ant-test", model="claude-x", thinking_budget=budget)
        graph = SessionGraph()
        _node(graph, Role.SYSTEM, Part("s0", PartKind.TEXT, "house rules"))
        for k in range(4):
            _exchange(graph, k)
            _thinking_turn(graph, k, "claude-x")
            for system in ("Be brief.", None):
                request = LlmRequest("claude-x", graph.view(), system_prompt=system)
                assert provider.build_http_request(request).content == \
                    _plain(provider, request)
        body = json.loads(provider.build_http_request(LlmRequest("claude-x", graph.view())).content)
        assert body["system"] == "house rules"
        merged = [e for e in body["messages"] if e["role"] == "user" and len(e["content"]) > 1]
        assert merged and all(e["content"][0]["type"] == "tool_result" for e in merged)


def test_anthropic_a_rewind_is_encoded_from_the_new_path() -> None:
    from lash_nb._providers.anthropic import Anthropic

    provider = Anthropic(api_key="sk-ant-test", model="claude-x")
    graph = SessionGraph()
    for k in range(2):
        _exchange(graph, k)
    provider.build_http_request(LlmRequest("claude-x", graph.view()))
    graph.branch_to("n1")  # back to the first tool call
    _node(graph, Role.USER, Part("u-new", PartKind.TEXT, "never mind"))
    request = LlmRequest("claude-x", graph.view())
    body = provider.build_http_request(request).content
    assert body == _plain(provider, request)
    assert json.loads(body)["messages"][-1]["content"][-1]["text"] == "never mind"
