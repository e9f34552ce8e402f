"""A refused key's message says where the key comes from, in words the scrubber leaves alone.

The hint named ``the api_key= argument``: ``api_key=<word>`` is a credential shape, so the
scrubber replaced the next word and the user read "check the api_key= [redacted] or
$OPENAI_API_KEY", as if a key had been printed and hidden.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from lash_nb._core.llm import LlmRequest, LlmTransportError
from lash_nb._providers import exchange
from lash_nb._providers.registry import build_provider


def test_a_401_says_check_the_api_key_argument_or_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    real_init = exchange.HttpExchange.__init__

    def init(self: Any, **kw: Any) -> None:
        kw["transport"] = httpx.MockTransport(answer)
        real_init(self, **kw)

    monkeypatch.setattr(exchange.HttpExchange, "__init__", init)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-HINT-0123456789abcdef")
    provider = build_provider("openai", model="gpt-4.1-mini", offline_delay_s=0)

    async def call() -> str:
        with pytest.raises(LlmTransportError) as err:
            async for _ in provider.stream(LlmRequest(model="gpt-4.1-mini", messages=())):
                pass
        return str(err.value)

    message = asyncio.run(call())
    assert "HTTP 401" in message
    assert "check the api_key argument or $OPENAI_API_KEY" in message
    assert "[redacted]" not in message  # nothing secret was in it
