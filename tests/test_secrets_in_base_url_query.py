"""Credentials in a provider's base URL beyond a password (ADR 146 did the password): a key in
its query string (``http://gateway/v1?api-key=...``, an Azure Functions ``?code=...``), a
password in a base URL whose scheme is mistyped, and a URL with a password that a server
names in an error body.

The user's situation: a gateway that takes its key in the query string, configured as
``OpenAICompatible(base_url="http://gateway/v1?api-key=KEY")`` or ``OPENAI_BASE_URL``. The
request must reach ``/v1/chat/completions`` with the query kept, and the key must stay out of
``repr``, the turn's result, the DuckDB file, the notebook's record and the log, also when the
server echoes the URL back in its answer or its error body.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output
from local_openai import ChatHandler, serve
from notebook_harness import ReraisingShell

from lash_nb import LashCore, run_sync
from lash_nb.errors import ConfigurationError
from lash_nb.providers import Anthropic, OpenAICompatible, OpenAIResponses, RetryPolicy
from lash_nb.stores import DuckDBStore

QUERY_KEY = "qk-7f3a9b2c1d55e0"
PASSWORD = "Tr0ub4dor-gw"
OTHER_PASSWORD = "pw9"  # too short to be known by value: only a URL's shape gives it away


class _EchoUrl(ChatHandler):
    """Answers with the path and query it was sent; fails with them in the body when the
    prompt asks for a status; names some other URL with a password when asked."""

    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        prompt = body["messages"][-1]["content"]
        seen = f"POST http://{self.headers.get('Host')}{self.path}"
        if prompt.startswith("status "):
            return int(prompt.split()[1]), f"refused {seen}"
        if prompt == "other url":
            return 502, f"upstream http://bob:{OTHER_PASSWORD}@10.0.0.9/v1 refused {seen}"
        return 200, f"I was called at {seen}."


@pytest.fixture
def port() -> Iterator[int]:
    with serve(_EchoUrl) as p:
        yield p


def _leaks(text: str) -> list[str]:
    return [s for s in (QUERY_KEY, PASSWORD, f"bob:{OTHER_PASSWORD}@") if s in text]


def _file_leaks(folder: Path) -> list[str]:
    data = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
    return _leaks(data.decode("utf-8", "replace"))


def _turns(provider: Any, tmp_path: Path, prompts: list[str]) -> tuple[list[Any], list[str]]:
    async def body() -> tuple[list[Any], list[str]]:
        core = (LashCore.builder().provider(provider).retry_policy(RetryPolicy(max_attempts=1))
                .store(DuckDBStore(tmp_path / "q.duckdb", idle_release_s=None)).build())
        s = await core.session("q").open()
        runs = [await s.turn(p).run() for p in prompts]
        texts = [repr(provider), *(json.dumps(r.result.to_json(), default=str) for r in runs)]
        await core.close()
        return runs, texts

    return run_sync(body())


@pytest.mark.parametrize("query", [f"api-key={QUERY_KEY}", f"code={QUERY_KEY}",
                                   f"key={QUERY_KEY}&api-version=2024-10-21"])
def test_a_key_in_the_base_url_query_reaches_the_server_and_stays_out(port, tmp_path, caplog,
                                                                         query):
    caplog.set_level(logging.DEBUG)
    provider = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1?{query}", model="gpt-test",
                                api_key="sk-test-querykey-0001")
    runs, texts = _turns(provider, tmp_path, ["hello", "status 401", "status 500"])
    answer = runs[0].result.assistant_output.safe_text
    # the path goes before the query, the query (the gateway's key) is sent as written
    assert "/v1/chat/completions?" in answer
    assert "api-version=2024-10-21" in answer or "api-version" not in query
    assert [str(r.result.outcome) for r in runs[1:]] == ["stopped: provider_error"] * 2
    assert "refused POST" in texts[2] and "refused POST" in texts[3]
    assert [_leaks(t) for t in texts] == [[], [], [], []]
    assert _file_leaks(tmp_path) == []
    assert _leaks(caplog.text) == []


def test_the_query_goes_after_the_path_for_every_http_provider():
    for provider, path in ((Anthropic(base_url="https://gw.example?code=abc12345", api_key="k",
                                      model="m"), "/v1/messages"),
                           (OpenAIResponses("https://gw.example/v1?code=abc12345", api_key="k",
                                            model="m"), "/v1/responses")):
        from lash_nb._core.llm import LlmRequest

        url = provider.build_http_request(LlmRequest(messages=(), model="m")).url
        assert (url.path, url.query) == (path, b"code=abc12345")
        assert "abc12345" not in repr(provider)


def test_a_url_with_a_password_in_a_server_error_is_redacted(port, tmp_path):
    provider = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1", model="gpt-test",
                                api_key="sk-test-querykey-0002")
    runs, texts = _turns(provider, tmp_path, ["other url"])
    assert str(runs[0].result.outcome) == "stopped: provider_error"
    assert "upstream http://bob:[redacted]@10.0.0.9/v1" in texts[1]
    assert _file_leaks(tmp_path) == []


def test_a_mistyped_scheme_does_not_print_the_password_or_the_query_key():
    with pytest.raises(ConfigurationError) as info:
        OpenAICompatible(base_url=f"htp://alice:{PASSWORD}@gw.example/v1?api-key={QUERY_KEY}",
                         model="m")
    message = str(info.value)
    assert "does not start with http:// or https://" in message
    assert "htp://alice:[redacted]@gw.example/v1" in message
    assert _leaks(message) == []


def test_the_notebook_with_a_query_key_in_openai_base_url(port, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-querykey-0003")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1?api-key={QUERY_KEY}")
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        with capture_output() as cap:
            sh.run_cell("%lash open q --store q.duckdb --provider openai --model gpt-test")
            sh.run_cell("%%lash\nhello\n")
            sh.run_cell("%%lash\nstatus 401\n")
            sh.run_cell("%lash")
            sh.run_cell("%lash sql SELECT * FROM llm_calls")
        shown = cap.stdout + cap.stderr + json.dumps([o.data for o in cap.outputs])
        assert "I was called at" in shown and "refused POST" in shown
        assert _leaks(shown) == []
        sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    finally:
        sh.close()
    assert _file_leaks(tmp_path) == []


def test_the_worker_with_a_mistyped_base_url_prints_no_password(tmp_path):
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-querykey-0004",
           "OPENAI_BASE_URL": f"htps://alice:{PASSWORD}@gw.example/v1?api-key={QUERY_KEY}"}
    done = subprocess.run([sys.executable, "-m", "lash_nb", "worker", "--store",
                           str(tmp_path / "w.duckdb"), "--provider", "openai",
                           "--exit-when-idle", "0.1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not start with http:// or https://" in done.stderr
    assert _leaks(done.stdout + done.stderr) == []


AT_PASSWORD = "p@ss-w0rd"  # an '@' left unescaped: the URL's last '@' ends the password


def test_a_password_with_an_unescaped_at_sign_is_redacted_whole(port, tmp_path):
    provider = OpenAICompatible(base_url=f"http://alice:{AT_PASSWORD}@127.0.0.1:{port}/v1",
                                model="gpt-test", api_key="sk-test-querykey-0005")
    assert repr(provider).startswith(
        "OpenAICompatible(kind='openai-compatible', base_url='http://alice:[redacted]@127.0.0.1:")
    runs, texts = _turns(provider, tmp_path, ["hello", "status 401"])
    assert "I was called at" in runs[0].result.assistant_output.safe_text
    assert [t for t in texts if "ss-w0rd" in t] == []
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"ss-w0rd" not in data


@pytest.mark.parametrize("text, shown", [
    ("upstream http://bob:p@ss@10.0.0.9/v1 refused",
     "upstream http://bob:[redacted]@10.0.0.9/v1 refused"),
    ("dsn postgresql://me:a@b@db:5432/x and mail me@example.com",
     "dsn postgresql://me:[redacted]@db:5432/x and mail me@example.com"),
    ("http://host:8080/path?next=a@b stays", "http://host:8080/path?next=a@b stays"),
])
def test_a_url_password_with_an_at_sign_in_server_text_is_redacted_whole(text, shown):
    from lash_nb._core.secrets import scrub, scrub_urls

    assert scrub(text) == shown
    assert scrub_urls(text) == shown


@pytest.mark.parametrize("query", ["code=qk-secret-7788", "access_code=qk-secret-7788",
                                   "x-functions-key=qk-secret-7788"])
def test_an_mcp_url_with_a_function_key_in_its_query_is_shown_without_it(query):
    # an MCP server hosted on Azure Functions is reached at .../mcp?code=FUNCTION_KEY
    from lash_nb import MCPServer

    server = MCPServer.http("fn", f"https://fn.example/runtime/webhooks/mcp?{query}")
    assert "qk-secret-7788" not in repr(server) and "qk-secret-7788" not in server.target
    assert server.target.endswith("=[redacted]")
    provider = OpenAICompatible(base_url=f"https://fn.example/v1?{query}", model="m")
    assert "qk-secret-7788" not in repr(provider)


def test_a_worker_draining_through_a_gateway_with_url_credentials_prints_and_stores_none(
        port, tmp_path):
    # python -m lash_nb worker with OPENAI_BASE_URL holding a password and a query key; the
    # server echoes them in an answer, a 401 and a 500 (retried, each retry a stderr line)
    from lash_nb.testing import scripted

    async def enqueue() -> None:
        core = (LashCore.builder().provider(scripted("x")).model("gpt-test")
                .store(DuckDBStore(tmp_path / "w.duckdb", idle_release_s=None)).build())
        s = await core.session("w").open()
        for prompt in ("hello", "status 401", "status 500"):
            await s.enqueue(prompt).send()
        await core.close()

    run_sync(enqueue())
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-querykey-0006",
           "OPENAI_BASE_URL": f"http://alice:{PASSWORD}@127.0.0.1:{port}/v1?api-key={QUERY_KEY}"}
    done = subprocess.run([sys.executable, "-m", "lash_nb", "worker", "--store",
                           str(tmp_path / "w.duckdb"), "--provider", "openai", "--model",
                           "gpt-test", "--max-attempts", "1", "--exit-when-idle", "0.5"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (f"returned HTTP 500 (http): refused POST http://127.0.0.1:{port}/v1/chat/"
            "completions?api-key=[redacted]") in done.stderr  # the retry's line
    assert "worker done: 3 turns {'finished: assistant_message': 1, 'stopped: provider_error': 2}" \
        in done.stderr
    assert _leaks(done.stdout + done.stderr) == []
    assert _file_leaks(tmp_path) == []
