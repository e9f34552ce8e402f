"""An API key or a credential header with characters an HTTP header cannot carry.

The user's situation: a key read from a file keeps its newline (``api_key=open("key").read()``),
a key pasted with a line break in the middle, a gateway key in ``headers=`` with a trailing
newline, a key with a non-ASCII letter. httpx refused each request ("Illegal header value
b'...'"), the turn said the server "could not be reached" and was retried, and the refused
value was quoted in the error, in the result and in the store: whole for a header, from the
line break on for a key.

Now surrounding whitespace is dropped (never part of a header value), and a value still
holding a control character or a non-ASCII letter is a one-line error where the provider is
made, naming the argument and not the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from local_openai import ChatHandler, serve
from notebook_harness import ReraisingShell

from lash_nb import LashCore, run_sync
from lash_nb.errors import ConfigurationError
from lash_nb.providers import Anthropic, OpenAICompatible, RetryPolicy


class _EchoAuth(ChatHandler):
    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        return 200, (f"auth={self.headers.get('Authorization')!r} "
                     f"gw={self.headers.get('X-Gateway-Key')!r}")


@pytest.fixture
def port() -> Iterator[int]:
    with serve(_EchoAuth) as p:
        yield p


def _answer(provider: Any) -> str:
    async def body() -> str:
        core = (LashCore.builder().provider(provider).retry_policy(RetryPolicy(max_attempts=1))
                .build())
        s = await core.session("h").open()
        out = await s.turn("hi").run()
        await core.close()
        return json.dumps(out.result.to_json(), default=str)

    return run_sync(body())


def test_a_key_and_a_header_read_with_their_newline_are_sent_without_it(port):
    provider = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1", model="m",
                                api_key="gw-key-abcdef123456\n",
                                headers={"X-Gateway-Key": " gwsecret-998877\r\n"})
    shown = _answer(provider)
    assert '"finished"' in shown
    # the server saw both, whole and trimmed; echoed back, they are scrubbed as the key is
    assert "auth='Bearer [redacted]' gw='[redacted]'" in shown
    assert "abcdef123456" not in shown and "998877" not in shown


@pytest.mark.parametrize("options, named", [
    ({"api_key": "gw-key-abc\ndef123456"}, "api_key"),
    ({"api_key": "gw-key-abc\x00def123456"}, "api_key"),
    ({"api_key": "gw-key-ab\u00e9def123456"}, "api_key"),
    ({"api_key": "k", "headers": {"X-Gateway-Key": "gwsecret\n998877"}}, "header 'X-Gateway-Key'"),
])
def test_a_value_no_header_can_carry_is_a_one_line_error_without_it(options, named):
    for make in (lambda: OpenAICompatible(base_url="http://127.0.0.1:9/v1", model="m", **options),
                 lambda: Anthropic(base_url="http://127.0.0.1:9", model="m", **options)):
        with pytest.raises(ConfigurationError) as info:
            make()
        message = str(info.value)
        assert "\n" not in message
        assert f"{named} has a character an HTTP header cannot carry" in message
        for part in ("gw-key-ab", "def123456", "gwsecret", "998877"):
            assert part not in message


def test_the_notebook_with_a_key_broken_over_two_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-brokenkey\nsecondhalf-4242")
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        from IPython.core.error import UsageError

        with pytest.raises(UsageError) as info:
            sh.run_cell("%lash open h --store h.duckdb --provider openai --model gpt-test")
        message = str(info.value)
        assert "api_key has a character an HTTP header cannot carry" in message
        assert "\n" not in message and "secondhalf" not in message and "brokenkey" not in message
    finally:
        sh.close()
