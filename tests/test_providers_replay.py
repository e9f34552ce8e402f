"""Every provider wire script, replayed through the in-process ReplayTransport and through a
real loopback HTTP server, must produce the classification written in its
``expected_provider`` block (shared real-traffic scripts and hand-written ones alike)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lash_nb._core.llm import (
    Completed,
    LlmRequest,
    LlmResponse,
    LlmToolSpec,
    LlmTransportError,
    ProviderFailureKind,
    ReasoningTextDelta,
    TextDelta,
)
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._errors import WireScriptError
from lash_nb._providers.anthropic import Anthropic
from lash_nb._providers.google import GoogleGemini
from lash_nb._providers.openai_compat import OpenAICompatible
from lash_nb._providers.openai_responses import OpenAIResponses
from lash_nb.testing import LoopbackServer, ReplayTransport, WireScript, load_wire_script

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "wire-scripts"
LOCAL = Path(__file__).resolve().parent / "wire_scripts"
KEY = "sk-test-LEAKCHECK-123"
LOOKUP = LlmToolSpec("lookup", "Look something up.",
                     {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})
KNOWN_EXPECTATIONS = {
    "terminal_reason", "text", "tool_names", "tool_calls", "reasoning", "usage", "served_model",
    "request_id", "status", "retryable_after_classification", "stream_error", "kind", "code",
    "retryable", "stream_events_committed", "failure_kind", "retry_after", "output_started",
    "deltas", "stream_failure",
}
RESPONSES_KINDS = ("openai", "codex")  # the Responses API, api.openai.com and ChatGPT's codex
CODEX_BASE = "/backend-api/codex"


def _script_paths() -> list[Path]:
    shared = (sorted(SHARED.glob("openai-compatible.*.json")) + sorted(SHARED.glob("anthropic.*.json"))
              + sorted(SHARED.glob("codex.responses-*.json"))
              + sorted(SHARED.glob("openai.responses-*.json")) + sorted(SHARED.glob("google.*.json")))
    return shared + sorted(LOCAL.glob("*.json"))


SCRIPTS = _script_paths()
SHARED_MISSING = not SHARED.is_dir()


@dataclass
class Outcome:
    deltas: list[TextDelta] = field(default_factory=list)
    reasoning: list[ReasoningTextDelta] = field(default_factory=list)
    completed: list[LlmResponse] = field(default_factory=list)
    error: LlmTransportError | None = None
    events_after_completed: int = 0


def _matcher(script: WireScript, path: str) -> Any:
    return (script.request_match.get("body") or {}).get(path, {}).get("equals")


def provider_for(script: WireScript, *, base_url: str | None = None, transport: Any = None,
                 timeout: float = 300.0, chunk_timeout: float = 120.0) -> Any:
    if script.provider_kind == "anthropic":
        return Anthropic(api_key=KEY, base_url=base_url or "https://api.anthropic.com",
                         transport=transport, timeout=timeout, chunk_timeout=chunk_timeout,
                         thinking_budget=_matcher(script, "thinking.budget_tokens"))
    if script.provider_kind in ("google", "google_oauth"):  # the Gemini API, Cloud Code Assist
        oauth = script.provider_kind == "google_oauth"
        return GoogleGemini(api_key=KEY, model="gemini-test",
                            base_url=base_url or ("https://cloudcode-pa.googleapis.com" if oauth else
                                                  "https://generativelanguage.googleapis.com/v1beta"),
                            code_assist_project=_matcher(script, "project"),
                            streaming="streamGenerateContent" in script.path, transport=transport,
                            timeout=timeout, chunk_timeout=chunk_timeout)
    if script.provider_kind in RESPONSES_KINDS:
        codex = script.provider_kind == "codex"
        return OpenAIResponses(base_url or ("https://chatgpt.com" + CODEX_BASE if codex else
                                            "https://api.openai.com/v1"),
                               api_key=KEY, transport=transport, timeout=timeout,
                               chunk_timeout=chunk_timeout,
                               headers={"OpenAI-Beta": "responses=experimental"} if codex else None)
    streaming = _matcher(script, "stream")
    return OpenAICompatible(base_url or "https://gateway.example/v1", api_key=KEY, transport=transport,
                            streaming=streaming is not False, timeout=timeout,
                            chunk_timeout=chunk_timeout)


def request_for(script: WireScript) -> LlmRequest:
    body = script.request_match.get("body") or {}
    tools = (LOOKUP,) if any(k.startswith("tools") for k in body) else ()
    said = [m["contains"] for k, m in body.items() if k.endswith(".text") and "contains" in m]
    user = Message.build(Role.USER, [(PartKind.TEXT, " ".join(["Please look up x.", *said]))])
    return LlmRequest(model=_matcher(script, "model") or "", messages=[user], tools=tools,
                      session_id=_matcher(script, "request.sessionId") or "")


async def collect(provider: Any, request: LlmRequest) -> Outcome:
    out = Outcome()
    try:
        async for event in provider.stream(request):
            if out.completed:
                out.events_after_completed += 1
            if isinstance(event, TextDelta):
                out.deltas.append(event)
            elif isinstance(event, ReasoningTextDelta):
                out.reasoning.append(event)
            elif isinstance(event, Completed):
                out.completed.append(event.response)
    except LlmTransportError as exc:
        out.error = exc
    finally:
        await provider.aclose()
    return out


def check(expected: dict[str, Any], out: Outcome, *, in_process: bool) -> None:
    unknown = set(expected) - KNOWN_EXPECTATIONS
    assert not unknown, f"the test does not know how to check {unknown}"
    delta_text = "".join(d.text for d in out.deltas)
    if "terminal_reason" in expected:
        assert out.error is None, out.error
        assert len(out.completed) == 1 and out.events_after_completed == 0
        response = out.completed[0]
        assert response.terminal_reason.value == expected["terminal_reason"]
    else:
        assert out.error is not None, "expected a classified failure, got a response"
        assert out.completed == []
    response_or_error: Any = out.error if out.error is not None else out.completed[0]
    if "text" in expected:
        assert response.full_text == expected["text"]
        assert delta_text == expected["text"]
    if "tool_names" in expected:
        assert [p.tool_name for p in response.tool_calls()] == expected["tool_names"]
    if "tool_calls" in expected:
        got = [[p.call_id, p.tool_name, p.input_json] for p in response.tool_calls()]
        assert got == expected["tool_calls"]
    if "reasoning" in expected:
        assert [p.text for p in response.parts if p.kind == "reasoning"] == [expected["reasoning"]]
        assert "".join(r.text for r in out.reasoning) == expected["reasoning"]
    if "usage" in expected:
        assert response.usage.to_json() == expected["usage"]
    if "served_model" in expected:
        assert response.served_model == expected["served_model"]
    if "request_id" in expected:
        assert response_or_error.request_id == expected["request_id"]
    err = out.error
    if "status" in expected:
        assert err is not None and err.status == expected["status"]
    if "retryable_after_classification" in expected:
        assert err is not None and err.retryable is expected["retryable_after_classification"]
    if "stream_failure" in expected:
        assert err is not None and err.kind is ProviderFailureKind.STREAM and err.retryable
    if "stream_error" in expected:
        assert err is not None and err.kind is ProviderFailureKind.STREAM and err.retryable
        if in_process:  # over a real socket the message is the client's own wording
            assert expected["stream_error"] in err.message
    if expected.get("kind") == "Timeout":
        assert err is not None and err.kind is ProviderFailureKind.TIMEOUT
    if "code" in expected:
        assert err is not None and err.code == expected["code"]
    if "retryable" in expected:
        assert err is not None and err.retryable is expected["retryable"]
    if "stream_events_committed" in expected:
        assert len(out.deltas) + len(out.reasoning) == expected["stream_events_committed"]
    if "failure_kind" in expected:
        assert err is not None and err.kind.value == expected["failure_kind"]
    if "retry_after" in expected:
        assert err is not None and err.retry_after == expected["retry_after"]
    if "output_started" in expected:
        assert err is not None and err.output_started is expected["output_started"]
    if "deltas" in expected:
        assert delta_text == expected["deltas"]
    if err is not None:
        assert KEY not in str(err) and KEY not in repr(err)


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.stem}" for p in paths]


@pytest.fixture(params=SCRIPTS, ids=_ids(SCRIPTS))
def script(request: pytest.FixtureRequest) -> WireScript:
    path: Path = request.param
    return load_wire_script(path)


def test_shared_wire_scripts_are_present() -> None:
    if SHARED_MISSING:
        pytest.skip(f"shared wire scripts not found at {SHARED} (clone shared/ beside the repo)")
    names = {p.stem for p in SCRIPTS if p.parent == SHARED}
    assert "openai-compatible.chat-tool-call-split-stream" in names
    assert "anthropic.messages-text-stream" in names


def test_script_replayed_in_process_matches_its_expected_classification(script: WireScript) -> None:
    transport = ReplayTransport([script])
    out = asyncio.run(collect(provider_for(script, transport=transport), request_for(script)))
    check(dict(script.expected_provider), out, in_process=True)
    assert transport.remaining == 0 and transport.open_streams == 0


def test_script_served_over_a_real_socket_matches_its_expected_classification(script: WireScript) -> None:
    with LoopbackServer([script]) as server:
        base = server.base_url if script.provider_kind == "anthropic" else server.base_url + "/v1"
        base = server.base_url + CODEX_BASE if script.provider_kind == "codex" else base
        base = server.base_url + "/v1beta" if script.provider_kind == "google" else base
        base = server.base_url if script.provider_kind == "google_oauth" else base
        # short read timeouts only where the server goes silent (they end the attempt: what
        # the script tests), still 40x the scripts' widest gap (34 ms): the server is a thread
        # of this process, which a loaded machine can keep from sending for a while (0.3 s
        # between two chunks left little room); a script that answers gets the defaults
        stalls = any(e.event == "timeout" for e in script.timeline)
        provider = (provider_for(script, base_url=base, timeout=2.5, chunk_timeout=1.5) if stalls
                    else provider_for(script, base_url=base))
        out = asyncio.run(collect(provider, request_for(script)))
        assert server.errors == []
        assert len(server.requests) == 1
    check(dict(script.expected_provider), out, in_process=False)
    auth = {"anthropic": "x-api-key", "google": "x-goog-api-key"}.get(script.provider_kind,
                                                                       "authorization")
    assert server.requests[0].header(auth) == "[redacted]"


def _shared(name: str) -> WireScript:
    path = SHARED / f"{name}.json"
    if not path.exists():
        pytest.skip(f"shared wire script {path} not found")
    return load_wire_script(path)


def test_repeated_request_id_header_takes_the_first_value() -> None:
    stream = _shared("openai-compatible.chat-tool-call-split-stream")
    limited = _shared("openai-compatible.chat-rate-limit-429")
    out = asyncio.run(collect(provider_for(stream, transport=ReplayTransport([stream])), request_for(stream)))
    assert out.completed[0].request_id == "req-stream-a"
    out = asyncio.run(collect(provider_for(limited, transport=ReplayTransport([limited])), request_for(limited)))
    assert out.error is not None and out.error.request_id == "req-429-a"
    assert out.error.retry_after == 7.0


def test_a_character_split_across_chunks_arrives_whole() -> None:
    script = _shared("openai-compatible.chat-tool-call-split-stream")
    out = asyncio.run(collect(provider_for(script, transport=ReplayTransport([script])), request_for(script)))
    assert [d.text for d in out.deltas] == ["café "]
    assert out.completed[0].tool_calls()[0].input_json == '{"q":"x"}'


def test_replay_rejects_a_request_that_does_not_match_the_script() -> None:
    script = load_wire_script(LOCAL / "anthropic.max-tokens.json")
    transport = ReplayTransport([script])
    provider = Anthropic(api_key=KEY, transport=transport)
    request = LlmRequest(model="claude-other", messages=[Message.build(Role.USER, [(PartKind.TEXT, "hi")])])
    with pytest.raises(WireScriptError, match="body model: expected 'claude-test', got 'claude-other'"):
        asyncio.run(collect(provider, request))


def test_replay_reports_running_out_of_scripts() -> None:
    script = load_wire_script(LOCAL / "anthropic.max-tokens.json")
    transport = ReplayTransport([script])
    provider = Anthropic(api_key=KEY, transport=transport)
    request = request_for(script)
    first = asyncio.run(collect(provider, request))
    assert first.completed[0].terminal_reason.value == "output_limit"
    with pytest.raises(WireScriptError, match="no wire script left for POST /v1/messages"):
        asyncio.run(collect(provider, request))


def test_loopback_answers_a_mismatched_request_with_418_and_records_why() -> None:
    script = load_wire_script(LOCAL / "openai-compatible.content-filter.json")
    with LoopbackServer([script]) as server:
        provider = OpenAICompatible(server.base_url + "/v1", api_key=KEY)
        request = LlmRequest(model="gpt-wrong", messages=[Message.build(Role.USER, [(PartKind.TEXT, "hi")])])
        out = asyncio.run(collect(provider, request))
        assert out.error is not None and out.error.status == 418
        assert len(server.errors) == 1 and "body model" in server.errors[0]


def test_loopback_plays_events_no_earlier_than_their_scheduled_time() -> None:
    script = load_wire_script(LOCAL / "openai-compatible.content-filter.json")

    async def first_delta_after(base: str) -> float:
        provider = OpenAICompatible(base + "/v1", api_key=KEY)
        loop = asyncio.get_running_loop()
        start = loop.time()
        async for _ in provider.stream(request_for(script)):
            elapsed = loop.time() - start
            break
        await provider.aclose()
        return elapsed

    with LoopbackServer([script], time_scale=20.0) as server:  # delta scheduled at 10 ms x 20
        elapsed = asyncio.run(first_delta_after(server.base_url))
    assert elapsed >= 0.2


def test_cancelling_the_consumer_closes_the_response_and_propagates() -> None:
    script = load_wire_script({
        "schema": "lash.provider-wire-script.v1", "name": "slow", "provider_kind": "openai-compatible",
        "endpoint": {"method": "POST", "path": "/chat/completions"},
        "timeline": [
            {"at": 0, "event": "response_start", "status": 200, "headers": []},
            {"at": 1, "event": "sse", "data": '{"choices":[{"delta":{"content":"first"}}]}'},
            {"at": 60000, "event": "sse", "data": '{"choices":[{"delta":{"content":"never"}}]}'},
        ],
    })
    transport = ReplayTransport([script], time_scale=1.0)
    provider = OpenAICompatible("https://x/v1", api_key=KEY, transport=transport)
    seen: list[str] = []

    async def main() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            request = LlmRequest(model="m", messages=request_for(script).messages)
            async for event in provider.stream(request):
                if isinstance(event, TextDelta):
                    seen.append(event.text)
                    first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert transport.open_streams == 0

    asyncio.run(main())
    assert seen == ["first"]
