"""What the providers send: wire-format messages, headers, client reuse, and no key leaks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from lash_nb._core.llm import LlmRequest, LlmToolSpec, LlmTransportError, ProviderFailureKind
from lash_nb._core.records import Message, Part, PartKind, Role
from lash_nb._errors import ConfigurationError
from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.openai_compat import OpenAICompatible
from lash_nb._providers.select import select_provider
from lash_nb.testing import LoopbackServer, ReplayTransport, load_wire_script

KEY = "sk-test-LEAKCHECK-123"
LOCAL = Path(__file__).resolve().parent / "wire_scripts"
LOOKUP = LlmToolSpec("lookup", "Look something up.", {"type": "object", "properties": {"q": {"type": "string"}}})


def _part(kind: PartKind, content: str, **kw: Any) -> Part:
    return Part(id=f"p-{kind.value}-{content[:4]}", kind=kind, content=content, **kw)


def conversation() -> list[Message]:
    return [
        Message("m1", Role.USER, (_part(PartKind.TEXT, "What is 2+2?"),)),
        Message("m2", Role.ASSISTANT, (
            _part(PartKind.REASONING, "simple sum"),
            _part(PartKind.PROSE, "Let me compute."),
            _part(PartKind.TOOL_CALL, '{"q":"2+2"}', tool_call_id="call_1", tool_name="lookup"),
        )),
        Message("m3", Role.USER, (_part(PartKind.TOOL_RESULT, "4", tool_call_id="call_1", tool_name="lookup"),)),
        Message("m4", Role.ASSISTANT, (_part(PartKind.PROSE, "It is 4."),)),
        Message("m5", Role.USER, (_part(PartKind.TEXT, "Thanks"),)),
    ]


def request(messages: list[Message] | None = None, **kw: Any) -> LlmRequest:
    return LlmRequest(model="m-1", messages=messages if messages is not None else conversation(),
                      system_prompt="Be brief.", tools=(LOOKUP,), **kw)


def body_of(http_request: Any) -> dict[str, Any]:
    return json.loads(http_request.content)


def test_openai_payload_puts_system_first_and_maps_tool_calls_and_results() -> None:
    body = body_of(OpenAICompatible("https://h/v1", api_key=KEY).build_http_request(request()))
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "Let me compute.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"2+2"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "Thanks"},
    ]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    assert body["tool_choice"] == "auto"


def test_openai_non_streaming_mode_asks_for_one_body() -> None:
    provider = OpenAICompatible("https://h/v1", api_key=KEY, streaming=False)
    body = body_of(provider.build_http_request(request(max_output_tokens=99)))
    assert body["stream"] is False and "stream_options" not in body
    assert body["max_tokens"] == 99


def test_anthropic_payload_merges_roles_and_leads_user_turns_with_tool_results() -> None:
    messages = [
        Message("m1", Role.USER, (_part(PartKind.TEXT, "Look up x"),)),
        Message("m2", Role.ASSISTANT, (
            _part(PartKind.PROSE, "Looking."),
            _part(PartKind.TOOL_CALL, '{"q":"x"}', tool_call_id="toolu_1", tool_name="lookup"),
            _part(PartKind.TOOL_RESULT, "not found", tool_call_id="toolu_1", tool_name="lookup", is_error=True),
        )),
        Message("m3", Role.USER, (_part(PartKind.TEXT, "Try again"),)),
    ]
    body = body_of(Anthropic(api_key=KEY).build_http_request(request(messages)))
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Look up x"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "not found", "is_error": True},
            {"type": "text", "text": "Try again"}]},
    ]
    assert body["max_tokens"] == 4096 and body["stream"] is True
    assert body["tools"] == [{"name": "lookup", "description": "Look something up.",
                              "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    assert body["tool_choice"] == {"type": "auto"}


def test_anthropic_payload_for_the_plain_conversation() -> None:
    body = body_of(Anthropic(api_key=KEY).build_http_request(request()))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "4"}]}


def test_anthropic_sends_version_beta_and_key_headers() -> None:
    headers = Anthropic(api_key=KEY).build_http_request(request()).headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"
    assert headers["x-api-key"] == KEY and "authorization" not in headers


def test_a_provider_without_a_key_sends_no_auth_header() -> None:
    provider = OpenAICompatible("http://localhost:11434/v1", api_key_env=None)
    assert "authorization" not in provider.build_http_request(request()).headers


def test_a_request_without_any_model_is_a_configuration_error() -> None:
    provider = OpenAICompatible("https://h/v1", api_key=KEY)
    with pytest.raises(ConfigurationError, match="pass model="):
        provider.build_http_request(LlmRequest(model="", messages=conversation()))


def test_the_provider_model_fills_in_for_an_empty_request_model() -> None:
    provider = Anthropic(api_key=KEY, model="claude-default")
    request = LlmRequest(model="", messages=conversation())
    assert body_of(provider.build_http_request(request))["model"] == "claude-default"


# ----------------------------------------------------------------------------- secrets


def test_reprs_and_attributes_do_not_show_the_key() -> None:
    for provider in (OpenAICompatible("https://h/v1", api_key=KEY), Anthropic(api_key=KEY)):
        assert KEY not in repr(provider)
        assert KEY not in repr(vars(provider))
        assert KEY not in repr(vars(provider._exchange))


def test_the_request_minus_its_auth_header_does_not_contain_the_key() -> None:
    for provider in (OpenAICompatible("https://h/v1", api_key=KEY), Anthropic(api_key=KEY)):
        sent = provider.build_http_request(request())
        visible = [(k, v) for k, v in sent.headers.items() if k not in ("authorization", "x-api-key")]
        assert KEY not in str(sent) + str(sent.url) + str(visible) + sent.content.decode()


@pytest.mark.parametrize("name", [
    "openai-compatible.auth-401", "openai-compatible.rate-limit-429-retry-after",
    "openai-compatible.server-error-500", "openai-compatible.chunk-timeout-after-prose",
    "anthropic.response-start-timeout", "anthropic.overloaded-529",
])
def test_errors_do_not_contain_the_key_even_when_the_server_echoes_it(name: str) -> None:
    script = load_wire_script(LOCAL / f"{name}.json")
    transport = ReplayTransport([script])
    if script.provider_kind == "anthropic":
        provider: Any = Anthropic(api_key=KEY, model="claude-test", transport=transport)
    else:
        provider = OpenAICompatible("https://h/v1", api_key=KEY, model="gpt-test", transport=transport)

    async def run() -> LlmTransportError:
        with pytest.raises(LlmTransportError) as caught:
            async for _ in provider.stream(LlmRequest(model="", messages=conversation())):
                pass
        return caught.value

    err = asyncio.run(run())
    assert KEY not in str(err) and KEY not in repr(err) and KEY not in repr(vars(err))
    if name.endswith("auth-401"):
        assert err.kind is ProviderFailureKind.AUTH and "[redacted]" in err.message


def test_a_connection_refused_error_does_not_contain_the_key() -> None:
    with LoopbackServer([]) as server:
        base = server.base_url
    provider = OpenAICompatible(base + "/v1", api_key=KEY, model="m")  # the server is gone

    async def run() -> LlmTransportError:
        with pytest.raises(LlmTransportError) as caught:
            async for _ in provider.stream(request()):
                pass
        return caught.value

    err = asyncio.run(run())
    assert err.kind is ProviderFailureKind.TRANSPORT and err.retryable
    assert KEY not in str(err)


def test_selection_reason_and_info_name_the_variable_not_the_value() -> None:
    info = select_provider({"OPENAI_API_KEY": KEY})
    assert "OPENAI_API_KEY" in info.reason
    assert KEY not in info.reason and KEY not in repr(info)


# ----------------------------------------------------------------------------- client reuse


def test_one_client_serves_consecutive_calls_and_a_new_loop_gets_a_new_one() -> None:
    script = load_wire_script(LOCAL / "openai-compatible.content-filter.json")
    with LoopbackServer([script, script, script], time_scale=0) as server:
        provider = OpenAICompatible(server.base_url + "/v1", api_key=KEY)

        async def call_twice() -> None:
            for _ in range(2):
                async for _ in provider.stream(LlmRequest(model="gpt-test", messages=conversation())):
                    pass

        asyncio.run(call_twice())
        assert server.connections == 1

        async def call_once() -> None:
            async for _ in provider.stream(LlmRequest(model="gpt-test", messages=conversation())):
                pass
            await provider.aclose()

        asyncio.run(call_once())  # the old client belonged to a closed loop
        assert server.connections == 2
        assert server.errors == [] and len(server.requests) == 3


def test_a_buffered_chat_body_that_reports_an_error_is_a_classified_failure_not_an_empty_answer() -> None:
    """``streaming=False`` against a gateway that answers 200 with ``{"error": ...}`` (as an
    upstream outage through OpenRouter does): the turn must see the failure, retryable and
    without the key, not a finished turn with no text."""
    body = {"error": {"message": f"upstream overloaded (key {KEY})", "code": 529}}
    script = {"schema": "lash.provider-wire-script.v1", "name": "chat-buffered-error-200",
              "endpoint": {"method": "POST", "path": "/chat/completions"},
              "timeline": [{"at": 0, "event": "body", "data": json.dumps(body)}]}
    provider = OpenAICompatible("https://h/v1", api_key=KEY, model="m-1", streaming=False,
                                transport=ReplayTransport([script]))

    async def run() -> list[Any]:
        return [event async for event in provider.stream(request())]

    with pytest.raises(LlmTransportError) as info:
        asyncio.run(run())
    assert info.value.kind is ProviderFailureKind.OVERLOADED and info.value.retryable
    assert "upstream overloaded" in str(info.value) and KEY not in str(info.value)
