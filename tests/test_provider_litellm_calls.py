"""What an agent engineer does with ``LiteLLMProvider`` against an OpenAI-compatible gateway,
run on whatever LiteLLM the environment holds: the floor (1.60, the lowest lock) and the
newest (1.110, the newest lock since ADR 209). The gateway is a local ``http.server``
(``local_openai``) that records the ``Authorization`` header it was sent.

Before ADR 209 only the floor was ever run. With the newest, a password in ``api_base`` beside
an ``api_key`` failed every call ("Cannot combine AUTHORIZATION header with AUTH argument or
credentials encoded in URL", from LiteLLM's aiohttp transport) and read "HTTP 500 ... a server
error; the runtime retries"; a key missing everywhere read the same; and a stream the server
cut after some text read as a server error too.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import io
import json
import time
from typing import Any, ClassVar

import pytest
from local_openai import ChatHandler, serve

from lash_nb import LashCore, run_sync, tool
from lash_nb.errors import ConfigurationError
from lash_nb.providers import LiteLLMProvider, RetryPolicy

# looked up, not imported: LiteLLM 1.110 takes seconds of CPU to import, and every test
# worker collects this file; the provider imports it at its first call, on the one worker
# that runs the LiteLLM tests (one xdist group)
pytestmark = [pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                                 reason="LiteLLM is not installed (extra litellm)"),
              pytest.mark.xdist_group("litellm")]

PASSWORD = "Gw-Pass-7f3e91c2d4"
KEY = "sk-litellm-calls-0123456789abcdef"
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


class _Gateway(ChatHandler):
    """Answers "Hello there." unless the prompt asks otherwise: ``slow`` waits 3 s first,
    ``cut`` sends one piece of text and closes the connection without a finish_reason,
    ``weather`` calls the ``weather`` tool (its arguments in two deltas) and then answers
    with the tool's output. Every request's ``Authorization`` header is kept in ``seen``."""

    seen: ClassVar[list[str | None]] = []

    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return 200, f"The tool says: {last['content']}"
        if "slow" in last["content"]:
            time.sleep(3)
        return 200, ["Hello ", "there."]

    def do_POST(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        last = json.loads(raw)["messages"][-1]
        chunks: list[dict[str, Any]]
        cut = False
        if last["role"] == "user" and "weather" in last["content"]:
            call = {"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": '}}
            chunks = [{"delta": {"tool_calls": [call]}},
                      {"delta": {"tool_calls": [{"index": 0,
                                                 "function": {"arguments": '"Oslo"}'}}]}},
                      {"delta": {}, "finish_reason": "tool_calls"}]
        elif last["role"] == "user" and "cut" in last["content"]:
            chunks = [{"delta": {"content": "The first half"}}]
            cut = True  # no finish_reason, no [DONE]: the connection closes (HTTP/1.0)
        else:
            self.rfile = io.BytesIO(raw)  # ChatHandler reads the body again
            super().do_POST()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for choice in chunks:
            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-test",
                     "choices": [{"index": 0, **choice}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if not cut:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@pytest.fixture
def gateway() -> Any:
    _Gateway.seen = []
    with serve(_Gateway) as port:
        yield port


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


def _turn(provider: LiteLLMProvider, prompt: str, attempts: int = 1) -> Any:
    async def body() -> Any:
        core = (LashCore.builder().provider(provider).tools(weather)
                .retry_policy(RetryPolicy(max_attempts=attempts, base_delay_s=0.01,
                                          max_delay_s=0.01)).build())
        s = await core.session("gw").open()
        out = await s.turn(prompt).run()
        await core.close()
        return out.result

    return run_sync(body())


def _shown(result: Any) -> str:
    return json.dumps(result.to_json(), default=str)


def test_a_password_in_api_base_beside_an_api_key_is_sent_as_basic_auth_and_answers(gateway):
    """The user's call: ``api_base="http://alice:<pw>@host/v1"`` and ``api_key=...``. Both
    claim the Authorization header; the URL's user and password go as basic auth, as httpx,
    requests, lash_nb's own OpenAI-compatible provider and LiteLLM 1.60 send them, so the call
    reads the same on every LiteLLM the extra allows."""
    provider = LiteLLMProvider("openai/gpt-test", api_key=KEY, timeout=10.0,
                               api_base=f"http://alice:{PASSWORD}@127.0.0.1:{gateway}/v1")
    result = _turn(provider, "hello")
    assert _Gateway.seen == [BASIC]
    assert str(result.outcome) == "finished: assistant_message"
    assert result.assistant_message() == "Hello there."
    assert PASSWORD not in _shown(result) + repr(provider)


def test_an_authorization_header_beside_a_password_in_api_base_is_one_line_naming_both():
    """Two explicit values for one header: lash_nb cannot tell which the gateway wants, so it
    says so when the provider is made, not as a server error on every call."""
    with pytest.raises(ConfigurationError) as caught:
        LiteLLMProvider("openai/gpt-test", api_key=KEY,
                        api_base=f"https://alice:{PASSWORD}@gw.example/v1",
                        extra={"extra_headers": {"Authorization": "Bearer gw-token-abc"}})
    message = str(caught.value)
    assert "\n" not in message and PASSWORD not in message
    assert "https://alice:[redacted]@gw.example/v1" in message
    assert "Authorization" in message and "keep one" in message


def test_no_key_anywhere_is_one_line_and_not_retried_as_a_server_error(gateway, monkeypatch):
    """No ``api_key`` and no ``OPENAI_API_KEY``: the OpenAI SDK inside LiteLLM refuses before
    sending anything, and LiteLLM wraps it as status 500. Retrying cannot help."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = LiteLLMProvider("openai/gpt-test", api_base=f"http://127.0.0.1:{gateway}/v1",
                               timeout=10.0)
    result = _turn(provider, "hello", attempts=3)
    assert str(result.outcome) == "stopped: provider_error"
    assert _Gateway.seen == []  # nothing reached the gateway
    (error,) = result.errors
    assert error.retryable is False
    assert "server error" not in error.message and "HTTP 500" not in error.message
    assert "\n" not in error.message
    assert "give LiteLLMProvider its api_key" in error.message  # what to do


def test_a_stream_cut_after_some_text_is_a_dropped_stream_not_a_finished_answer(gateway):
    """On 1.110 LiteLLM raises ``MidStreamFallbackError``; 1.60 makes up a "stop" of its own,
    which the provider sees through (no finish_reason received from the server, ADR 0222)."""
    provider = LiteLLMProvider("openai/gpt-test", api_key=KEY, timeout=10.0,
                               api_base=f"http://127.0.0.1:{gateway}/v1")
    result = _turn(provider, "cut")
    assert str(result.outcome) == "stopped: provider_error"
    (error,) = result.errors
    assert error.code != "http" and "server error" not in error.message
    assert "stream" in error.message and "\n" not in error.message


def test_a_gateway_slower_than_the_timeout_is_a_timeout(gateway):
    provider = LiteLLMProvider("openai/gpt-test", api_key=KEY, timeout=1.0,
                               api_base=f"http://127.0.0.1:{gateway}/v1")
    result = _turn(provider, "slow")
    (error,) = result.errors
    assert error.code == "timeout" and error.retryable is True
    assert "timed out (limit 1 s)" in error.message


def test_a_tool_call_streamed_in_pieces_runs_the_tool_and_the_answer_follows(gateway):
    provider = LiteLLMProvider("openai/gpt-test", api_key=KEY, timeout=10.0,
                               api_base=f"http://127.0.0.1:{gateway}/v1")
    result = _turn(provider, "what is the weather in Oslo?")
    assert str(result.outcome) == "finished: assistant_message"
    assert result.assistant_message() == "The tool says: sunny in Oslo"
    assert len(_Gateway.seen) == 2  # the call, then the answer with the tool's output
