"""A gateway password in LiteLLMProvider's ``api_base`` and a gateway key in its headers are
scrubbed like its API key (ADR 153; ADR 146 did it for the HTTP providers).

The user's situation: ``LiteLLMProvider("openai/gpt-test", api_base="https://alice:pw@gateway/v1",
extra={"extra_headers": {"X-Gateway-Key": ...}})``. The gateway echoes its request headers, in
an error body and in the model's text, and ``repr(provider)`` printed ``api_base`` as given.

LiteLLM is an optional extra and not in the test environment (about 350 MB with its
dependencies); where it is not installed, a stand-in module does what LiteLLM does for an
``openai/`` model: POST the chat completion to ``api_base`` with httpx (which sends the URL's
user and password as basic auth) and the extra headers, and yield the streamed chunks; an HTTP
error raises an exception carrying ``status_code`` and the body in its message. Where LiteLLM is
installed the same tests run through it.
"""

from __future__ import annotations

import json
import socket
import sys
import types
from typing import Any

import httpx
import pytest
from test_secrets_in_url_and_headers import (
    GATEWAY_KEY,
    PASSWORD,
    _file_leaks,
    _leaks,
    echo_then_refusal,
    port,
)

from lash_nb import LashCore, run_sync
from lash_nb.providers import LiteLLMProvider, RetryPolicy

__all__ = ["port"]  # the echoing server's fixture
pytestmark = pytest.mark.xdist_group("litellm")  # one worker imports LiteLLM (ADR 209)


class _StatusError(Exception):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class APIConnectionError(Exception):
    pass


class APIError(_StatusError):
    """What LiteLLM raises when it could not connect (1.60 and 1.110 alike): a status 500
    error whose cause is OpenAI's ``APIConnectionError``, itself caused by the transport's
    connect error. No server answered, whatever the status says."""


async def _acompletion(*, model: str, messages: list[Any], api_base: str,
                       api_key: str | None = None, extra_headers: dict[str, str] | None = None,
                       **rest: Any) -> Any:
    headers = {"Authorization": f"Bearer {api_key}", **(extra_headers or {})}
    client = httpx.AsyncClient(timeout=rest.get("timeout", 30.0))
    request = client.build_request("POST", api_base.rstrip("/") + "/chat/completions",
                                   headers=headers, json={"model": model.split("/", 1)[-1],
                                                          "messages": messages, "stream": True})
    try:
        response = await client.send(request, stream=True)
    except httpx.ConnectError as err:
        await client.aclose()
        try:
            raise APIConnectionError("Connection error.") from err
        except APIConnectionError as conn:
            raise APIError(500, "litellm.APIError: APIError: OpenAIException - Connection "
                                "error.") from conn
    if response.status_code >= 400:
        body = (await response.aread()).decode()
        await client.aclose()
        raise _StatusError(response.status_code, f"OpenAIException - {body}")

    async def chunks() -> Any:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield json.loads(line[len("data: "):])
        await client.aclose()

    return chunks()


@pytest.fixture(params=["stand-in", "installed"])
def litellm(request, monkeypatch) -> None:
    if request.param == "installed":
        pytest.importorskip("litellm")
        return
    module = types.ModuleType("litellm")
    module.acompletion = _acompletion  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "litellm", module)


def _provider(base: str) -> LiteLLMProvider:
    return LiteLLMProvider("openai/gpt-test", api_base=base, api_key="sk-test-litellm-0001",
                           timeout=10.0, extra={"extra_headers": {"X-Gateway-Key": GATEWAY_KEY}})


def test_a_password_in_api_base_and_a_key_header_stay_out_of_results_store_and_repr(
        litellm, port, tmp_path):
    provider = _provider(f"http://alice:{PASSWORD}@127.0.0.1:{port}/v1")

    ok, refused, texts = echo_then_refusal(provider, tmp_path, RetryPolicy(max_attempts=1))
    assert "I saw" in ok.result.assistant_output.safe_text  # the echo came back
    assert str(refused.result.outcome) == "stopped: provider_error"
    assert "refused:" in texts[3]
    assert [_leaks(t) for t in texts] == [[], [], [], []]
    assert _file_leaks(tmp_path) == []
    assert "alice:[redacted]@127.0.0.1" in texts[0]


def test_an_unreachable_api_base_is_named_without_its_password(litellm, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    provider = _provider(f"http://alice:{PASSWORD}@127.0.0.1:{closed}/v1")

    async def body():
        core = LashCore.builder().provider(provider).retry_policy(
            RetryPolicy(max_attempts=1)).build()
        s = await core.session("gw").open()
        out = await s.turn("hello").run()
        await core.close()
        return out

    out = run_sync(body())
    text = json.dumps(out.result.to_json(), default=str)
    assert str(out.result.outcome) == "stopped: provider_error"
    assert f"127.0.0.1:{closed}" in text  # the error still says where it could not reach
    assert _leaks(text) == []
    (error,) = out.result.errors
    # no server answered: not "HTTP 500 ... a server error", as LiteLLM's status said
    assert error.message.startswith(f"litellm could not reach http://alice:[redacted]@127.0.0.1:"
                                    f"{closed}/v1 ")
    assert "HTTP 500" not in error.message
