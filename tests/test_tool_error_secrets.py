"""A tool that fails with a secret in its error text does not put the secret anywhere.

A user's tool calls a web API with the same key the session's provider uses (or any key) and
the HTTP client's error names the request: ``... Authorization: Bearer sk-...`` or a URL with
``?api_key=...``. That error text becomes the tool's result: the model reads it, the live
widget shows it, and the store keeps it. The provider's own key (in any encoding) and
credential-shaped strings are removed from it, like from a provider's own error, and the rest
of the error (what failed, the status) is kept so the model can still react to it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from local_openai import chat_script

from lash_nb import LashCore, tool
from lash_nb.providers import OpenAICompatible
from lash_nb.stores import DuckDBStore
from lash_nb.testing import LoopbackServer

KEY = "lnb-tool-echo-0c9e7d52b1"  # the session's provider key; shaped like no known key
FOREIGN = "hunter2hunter2"  # another service's key, in a credential-shaped assignment


TOOL_CALL = chat_script(
    "calls-lookup",
    '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
    '"function":{"name":"lookup","arguments":"{\\"q\\": \\"x\\"}"}}]}}]}',
    '{"choices":[{"finish_reason":"tool_calls","delta":{}}]}')
TEXT = chat_script("answers", '{"choices":[{"delta":{"content":"The search failed."}}]}',
                    '{"choices":[{"finish_reason":"stop","delta":{}}]}')


def _run_turn(tmp_path: Path, scripts: list[dict[str, Any]], fn: Any,
              prompt: str) -> tuple[Any, list[str], list[Any]]:
    """One turn with ``fn`` as the tool against the scripted server: the result, every text
    the turn left (live activities, stored events, turn results, tool_calls and graph rows)
    and the bodies of the requests the server got."""
    async def body() -> tuple[Any, list[str], list[Any]]:
        with LoopbackServer(scripts, time_scale=0) as srv:
            store = DuckDBStore(tmp_path / "tools.duckdb", idle_release_s=None)
            provider = OpenAICompatible(base_url=srv.base_url, api_key=KEY, model="openai/gpt-5.4")
            core = LashCore.builder().provider(provider).tools(fn).store(store).build()
            s = await core.session("s").open()
            stream = s.turn(prompt).stream()
            live = [repr(activity) async for activity in stream]
            out = await stream.finish()
            stored = [json.dumps([e.to_json() for e in await store.load_events("s")], default=str),
                      json.dumps([t.result for t in await store.load_turns("s")], default=str),
                      store.query("SELECT * FROM tool_calls").to_json(date_format="iso"),
                      store.query("SELECT * FROM graph_nodes").to_json(date_format="iso")]
            await core.close()
            assert srv.errors == []
            return out, live + stored, [r.body for r in srv.requests]

    return asyncio.run(body())


@tool
def lookup(q: str) -> str:
    """Search the web."""
    raise RuntimeError(
        f"401 Unauthorized for GET https://search.example/v1?q={q}&api_key={FOREIGN} "
        f"(sent Authorization: Bearer {KEY}); the service said: bad key {KEY}")


def test_a_tool_error_with_keys_in_it_reaches_no_model_request_event_row_or_file(tmp_path: Path) -> None:
    out, texts, requests = _run_turn(tmp_path, [TOOL_CALL, TEXT], lookup, "find x")
    assert str(out.outcome) == "finished: assistant_message"
    (call,) = out.tool_calls
    assert call.success is False
    # what failed is still there for the model and the reader
    assert str(call.output).startswith("RuntimeError: 401 Unauthorized for GET https://search.example/v1?q=x")
    assert "bad key [redacted]" in str(call.output)
    sent_back = json.dumps(requests[1])  # the request that carried the tool's result
    assert "401 Unauthorized" in sent_back
    for text in [repr(out), sent_back, *texts]:
        assert KEY not in text
        assert FOREIGN not in text
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert KEY.encode() not in raw
    assert FOREIGN.encode() not in raw


@tool
def env_dump() -> dict[str, Any]:
    """Show the environment the kernel runs with."""
    return {"HOME": "/home/me", "OPENAI_API_KEY": KEY, "nested": [f"Bearer {KEY}"],
            "NOTE": "a token-looking value kept as the tool returned it: tok_abcdef0123456789"}


ENV_CALL = chat_script(
    "calls-env-dump",
    '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_2","type":"function",'
    '"function":{"name":"env_dump","arguments":"{}"}}]}}]}',
    '{"choices":[{"finish_reason":"tool_calls","delta":{}}]}')


def test_a_tool_that_returns_the_provider_key_stores_and_shows_it_redacted(tmp_path: Path) -> None:
    """A data scientist's tool returns ``dict(os.environ)`` (or a config) holding the
    session provider's key. A successful output is the tool's data and keeps every other
    value as returned, but the provider's own key (in any encoding) is the one secret lash
    knows and promises never to store: it was in the tool_calls row, the graph, the events
    and the file, and in every saved notebook that showed the turn."""
    out, texts, requests = _run_turn(tmp_path, [ENV_CALL, TEXT], env_dump, "what is my environment?")
    (call,) = out.tool_calls
    assert call.success is True
    assert call.output == {"HOME": "/home/me", "OPENAI_API_KEY": "[redacted]",
                           "nested": ["Bearer [redacted]"],
                           "NOTE": "a token-looking value kept as the tool returned it: "
                                   "tok_abcdef0123456789"}
    sent_back = json.dumps(requests[1])  # the request that carried the tool's result
    assert "/home/me" in sent_back and "tok_abcdef0123456789" in sent_back
    for text in [repr(out), sent_back, *texts]:
        assert KEY not in text
    raw = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert KEY.encode() not in raw


def test_scrub_value_takes_every_encoding_of_the_key_out_of_keys_and_values_only() -> None:
    """The check behind a tool's output: the key raw, base64'd (a Basic auth header a tool
    echoed) and URL-quoted, in dict keys and nested lists, with a key whose raw form JSON
    would escape too; a value without the key comes back as the same object."""
    import base64

    from lash_nb._core.secrets import Scrubber

    odd = 'lnb"odd\\key-0123456789'
    for key in (KEY, odd):
        basic = base64.b64encode(f":{key}".encode()).decode()
        value = {key: 1, "auth": [f"Basic {basic}", {"url": f"https://x/?k={key}"}], "n": 3.5}
        assert Scrubber([key]).scrub_value(value) == {
            "[redacted]": 1, "auth": ["Basic [redacted]", {"url": "https://x/?k=[redacted]"}],
            "n": 3.5}
        clean = {"rows": [{"a": 1, "b": "tok_abcdef0123456789"}]}
        assert Scrubber([key]).scrub_value(clean) is clean
