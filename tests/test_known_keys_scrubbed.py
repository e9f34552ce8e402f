"""Keys this process knows do not enter a session through a prompt or a tool's output.

A data scientist has ``ANTHROPIC_API_KEY`` and ``OPENAI_API_KEY`` in their environment (most
do) and runs a session on one provider, or on the offline one. A tool of theirs returns
``dict(os.environ)`` (or reads a ``.env`` file), or they paste a key into a prompt to ask about
it. Before ADR 196 only the session provider's own key was taken out of a tool's output and
nothing out of a prompt: the other keys went into the DuckDB file, the saved notebook and
the request to another company's model. Now every key lash knows (a keyed provider alive in
the process, the provider variables of the environment) is ``[redacted]`` there, in every
encoding; every other value stays as the user or the tool wrote it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from local_openai import chat_script
from notebook_harness import lash_shell

from lash_nb import LashCore, tool
from lash_nb.providers import OpenAICompatible
from lash_nb.stores import DuckDBStore
from lash_nb.testing import LoopbackServer

SESSION_KEY = "lnb-session-key-4d1f0a9c"  # the session provider's key
ANTHROPIC = "envkey-only-7Hq2pLx9Vd4Rk8Wm"  # in the environment, used by no session here;
# not shaped like a known key, so only knowing the value can take it out
PLAIN = "plain-value-not-a-key-2718"  # an ordinary environment value: must stay

TOOL_CALL = chat_script(
    "calls-env",
    '{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",'
    '"function":{"name":"env","arguments":"{}"}}]}}]}',
    '{"choices":[{"finish_reason":"tool_calls","delta":{}}]}')
TEXT = chat_script("answers", '{"choices":[{"delta":{"content":"Read it."}}]}',
                   '{"choices":[{"finish_reason":"stop","delta":{}}]}')


def _file_bytes(path: Path) -> bytes:
    """The store's file and its write-ahead log, as they are on disk."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}.wal")) if p.exists())


def _run(tmp_path: Path, fn: Any, prompt: str) -> tuple[Any, list[str], bytes]:
    async def body() -> tuple[Any, list[str], bytes]:
        with LoopbackServer([TOOL_CALL, TEXT], time_scale=0) as srv:
            path = tmp_path / "keys.duckdb"
            store = DuckDBStore(path, idle_release_s=None)
            provider = OpenAICompatible(base_url=srv.base_url, api_key=SESSION_KEY,
                                        model="openai/gpt-5.4")
            core = LashCore.builder().provider(provider).tools(fn).store(store).build()
            s = await core.session("s").open()
            out = (await s.turn(prompt).run()).result
            await core.close()
            assert srv.errors == []
            return out, [json.dumps(r.body) for r in srv.requests], _file_bytes(path)

    return asyncio.run(body())


@tool
def env() -> dict:
    """The environment."""
    return dict(os.environ)


def test_a_tool_returning_the_environment_hands_on_no_key_but_every_other_value(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC)
    monkeypatch.setenv("MY_SETTING", PLAIN)
    out, requests, stored = _run(tmp_path, env, "show me the environment")
    (call,) = out.tool_calls
    assert call.success is True
    assert call.output["ANTHROPIC_API_KEY"] == "[redacted]"
    assert call.output["MY_SETTING"] == PLAIN  # the tool's data is otherwise as returned
    sent_back = requests[1]  # the request carrying the tool's result to the model
    assert PLAIN in sent_back
    assert ANTHROPIC not in sent_back
    assert ANTHROPIC.encode() not in stored
    assert PLAIN.encode() in stored


def test_a_key_in_any_encoding_inside_a_tools_output_or_error_is_redacted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC)
    b64 = base64.b64encode(f":{ANTHROPIC}".encode()).decode()

    @tool
    def env() -> dict:
        """The environment."""
        return {"nested": [{"auth": f"Basic {b64}"}], ANTHROPIC: "as a key"}

    out, requests, stored = _run(tmp_path, env, "go")
    assert out.tool_calls[0].output == {"nested": [{"auth": "Basic [redacted]"}],
                                        "[redacted]": "as a key"}
    assert b64 not in requests[1] and ANTHROPIC not in requests[1]

    @tool(name="env")
    def failing() -> str:
        """The environment."""
        raise RuntimeError(f"could not log in with {ANTHROPIC}")

    (tmp_path / "second").mkdir()
    out, requests, stored = _run(tmp_path / "second", failing, "go")
    assert out.tool_calls[0].success is False
    assert out.tool_calls[0].output == "RuntimeError: could not log in with [redacted]"
    (kept,) = out.tool_tracebacks.values()  # the traceback kept for the user (ADR 192)
    assert "could not log in with [redacted]" in kept and ANTHROPIC not in kept
    assert ANTHROPIC.encode() not in stored and ANTHROPIC not in requests[1]


def test_a_key_pasted_into_a_prompt_is_neither_stored_nor_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC)
    prompt = f"why is {ANTHROPIC} refused? and is {SESSION_KEY} mine? ({PLAIN})"
    out, requests, stored = _run(tmp_path, env, prompt)
    assert str(out.outcome) == "finished: assistant_message"
    first = requests[0]
    assert f"why is [redacted] refused? and is [redacted] mine? ({PLAIN})" in first
    for text in (ANTHROPIC, SESSION_KEY):
        assert all(text not in r for r in requests)
        assert text.encode() not in stored


def test_the_notebook_offline_session_keeps_no_environment_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's default (offline provider, no key of its own), in a notebook whose
    environment holds a key: the record, ``%lash sql`` and the file all read [redacted]."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-env-kept-out-Tb5nQ1zX8cK3")
    with lash_shell(tmp_path, monkeypatch) as sh:
        sh.run_cell("from lash_nb import tool\nimport os\n"
                    "@tool\n"
                    "def show_env(name: str) -> str:\n"
                    "    '''One environment variable.'''\n"
                    "    return os.environ[name]\n")
        sh.run_cell("%lash open s1 --store nb.duckdb")
        sh.run_cell("r = %lash turn please show_env name=OPENAI_API_KEY")
        r = sh.user_ns["r"]
        (call,) = r.tool_calls
        assert call.output == "[redacted]"
        rows = sh.run_cell("%lash sql SELECT output FROM tool_calls")
        assert "[redacted]" in rows.to_string()
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "await _magics().ctx.close()")
    assert b"sk-proj-env-kept-out" not in _file_bytes(tmp_path / "nb.duckdb")
