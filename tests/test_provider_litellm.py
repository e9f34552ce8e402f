"""The LiteLLM-backed provider (extra ``litellm``), replayed against a local OpenAI-compatible
server on loopback: LiteLLM targets it with ``openai/<model>`` and ``api_base``. LiteLLM is not
in the ``test`` extra (with its dependencies it is about 350 MB): the lowest run installs it at
its declared floor (requirements/ci-lowest.txt, ADR 202) and runs these; elsewhere they skip
when it is not installed. Before ADR 202 no run had it, and the floor was never tried."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from test_providers_replay import LOOKUP, check, collect

from lash_nb import LashCore
from lash_nb._core.llm import LlmRequest
from lash_nb._core.records import Message, PartKind, Role
from lash_nb.providers import LiteLLMProvider, RetryPolicy
from lash_nb.testing import LoopbackServer

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "wire-scripts"
LOCAL = Path(__file__).resolve().parent / "wire_scripts"
KEY = "sk-litellm-test-0123456789abcdef"
# looked up, not imported: LiteLLM 1.110 takes seconds of CPU to import, and every test
# worker collects this file; the provider imports it at its first call, on the one worker
# that runs the LiteLLM tests (one xdist group)
pytestmark = [pytest.mark.skipif(importlib.util.find_spec("litellm") is None,
                                 reason="LiteLLM is not installed (extra litellm)"),
              pytest.mark.xdist_group("litellm")]


def _request(model: str, *, tools: bool = False) -> LlmRequest:
    user = Message.build(Role.USER, [(PartKind.TEXT, "Please look up x.")])
    return LlmRequest(model=model, messages=[user], tools=(LOOKUP,) if tools else ())


def _run(script: Path, model: str, *, tools: bool = False) -> tuple[Any, Any]:
    if not script.exists():
        pytest.skip(f"wire script {script} not found (clone shared/ beside the repo)")
    with LoopbackServer([script]) as server:
        provider = LiteLLMProvider(f"openai/{model}", api_base=server.base_url + "/v1",
                                   api_key=KEY, timeout=10.0)
        out = asyncio.run(collect(provider, _request(f"openai/{model}", tools=tools)))
        assert server.errors == []
        requests = list(server.requests)
    return out, requests


def test_a_text_stream_through_litellm():
    out, requests = _run(SHARED / "openai-compatible.chat-runtime-text-stream.json",
                         "openai/gpt-5.4")
    check({"terminal_reason": "stop", "text": "Runtime scripted answer."}, out, in_process=False)
    assert len(requests) == 1  # LiteLLM's own retries are off


def test_a_split_tool_call_through_litellm():
    out, _ = _run(SHARED / "openai-compatible.chat-tool-call-split-stream.json",
                  "openai/gpt-5.4", tools=True)
    check({"terminal_reason": "tool_use", "tool_names": ["lookup"]}, out, in_process=False)


def test_context_length_exceeded_through_litellm_is_its_own_kind_and_no_key_leaks():
    out, requests = _run(LOCAL / "openai-compatible.context-length-400.json", "gpt-test")
    check({"failure_kind": "context_overflow", "retryable": False}, out, in_process=False)
    assert len(requests) == 1
    assert KEY not in str(out.error)


def test_a_session_turn_through_litellm_counts_usage_once():
    script = LOCAL / "openai-compatible.usage-cached-reasoning-repeated.json"

    async def body(base: str) -> Any:
        provider = LiteLLMProvider("openai/gpt-test", api_base=base + "/v1", api_key=KEY)
        core = (LashCore.builder().provider(provider)
                .retry_policy(RetryPolicy(max_attempts=1)).build())
        s = await core.session("s").open()
        out = await s.turn("what is the answer?").run()
        await core.close()
        return out

    with LoopbackServer([script]) as server:
        out = asyncio.run(body(server.base_url))
    assert str(out.result.outcome) == "finished: assistant_message"
    assert out.result.assistant_message() == "Forty-two."
    # the script's final chunk, counted once: 1000 prompt of which 800 cached, 150 out of
    # which 100 reasoning
    assert out.result.usage.to_json() == {
        "input_tokens": 200, "output_tokens": 150, "cache_read_input_tokens": 800,
        "cache_write_input_tokens": 0, "reasoning_output_tokens": 100}


ECHO = LOCAL / "key-echo"
ECHO_KEY = "lnb/ECHO+k3y_9f2c7a41d05e"  # the key the key-echo scripts send back


def _echo(name: str) -> Any:
    with LoopbackServer([ECHO / f"openai-compatible.{name}.json"]) as server:
        provider = LiteLLMProvider("openai/gpt-test", api_base=server.base_url + "/v1",
                                   api_key=ECHO_KEY, timeout=10.0)
        return asyncio.run(collect(provider, _request("openai/gpt-test")))


def test_a_key_echoed_across_streamed_deltas_through_litellm_is_scrubbed():
    out = _echo("key-split-across-prose-deltas")
    streamed = "".join(d.text for d in out.deltas)
    assert streamed == out.completed[0].full_text == "Your key is [redacted], keep it safe."


def test_a_key_echoed_in_an_error_body_through_litellm_is_scrubbed():
    out = _echo("error-body-401")
    assert out.error is not None and out.error.kind.value == "auth"
    assert "k3y_9f2c7a41d05e" not in str(out.error) and "\n" not in out.error.message
