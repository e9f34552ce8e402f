"""A model request's body encodes each message of the history once across calls (issue 21),
and is byte for byte the body the provider sent before: the plain ``json.dumps`` of its
payload, through a growing conversation, a rewind to an earlier message, a changed system
prompt, untrusted text (quotes, newlines, non-ASCII) and an ``extra_body`` that replaces the
messages."""

from __future__ import annotations

import json

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


def _plain(provider: OpenAICompatible, request: LlmRequest) -> bytes:
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


def test_an_older_view_after_a_newer_one_sends_only_its_own_messages() -> None:
    provider = OpenAICompatible(api_key="sk-test", model="m")
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
