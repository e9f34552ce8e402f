"""Credentials that are not the api key: a gateway's user and password in the base URL
(``OPENAI_BASE_URL=https://user:pass@gateway/v1``, sent by httpx as HTTP basic auth) and a
gateway key in a header the user adds (``headers={"X-Gateway-Key": ...}``). A server that
echoes its request headers back, in an error body and in the model's text, must not put them
in the turn's result, the store file, the notebook's record or the provider's repr.

The server is a small ``http.server`` speaking OpenAI's streamed chat completions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output
from local_openai import ChatHandler, serve
from notebook_harness import ReraisingShell

from lash_nb import LashCore, run_sync
from lash_nb.providers import OpenAICompatible
from lash_nb.stores import DuckDBStore

PASSWORD = "Hunter2GatewayPw"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
GATEWAY_KEY = "gw-live-4f9a1c77e2b8d0"


class _Echo(ChatHandler):
    """Echoes the credentials it was sent: in the answer, or in a 401 when asked to fail."""

    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        seen = f"{self.headers.get('Authorization')} {self.headers.get('X-Gateway-Key')}"
        if "fail" in body["messages"][-1]["content"]:
            return 401, f"refused: {seen}"
        return 200, f"I saw {seen}."


@pytest.fixture
def port() -> Iterator[int]:
    with serve(_Echo) as p:
        yield p


def echo_then_refusal(provider: Any, tmp_path: Any, retry: Any = None) -> tuple[Any, Any, list[str]]:
    """Two turns on a DuckDB store through the echoing server: one it answers ("I saw ..."),
    one it refuses with a 401 naming what it saw; the texts a user may read (the provider's
    and the core's repr, both results as JSON)."""
    async def body():
        builder = LashCore.builder().provider(provider)
        if retry is not None:
            builder = builder.retry_policy(retry)
        core = builder.store(DuckDBStore(tmp_path / "gw.duckdb", idle_release_s=None)).build()
        s = await core.session("gw").open()
        ok = await s.turn("hello").run()
        refused = await s.turn("please fail").run()
        texts = [repr(provider), repr(core), json.dumps(ok.result.to_json(), default=str),
                 json.dumps(refused.result.to_json(), default=str)]
        await core.close()
        return ok, refused, texts

    return run_sync(body())


def _leaks(text: str) -> list[str]:
    return [s for s in (PASSWORD, BASIC, BASIC.rstrip("="), GATEWAY_KEY) if s in text]


def _file_leaks(folder: Path) -> list[str]:
    data = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
    return _leaks(data.decode("utf-8", "replace"))


def test_a_gateway_password_in_the_base_url_and_a_key_header_are_kept_out(port, tmp_path):
    provider = OpenAICompatible(base_url=f"http://alice:{PASSWORD}@127.0.0.1:{port}/v1",
                                model="gpt-test", api_key="sk-test-gatewaykey-0001",
                                headers={"X-Gateway-Key": GATEWAY_KEY})

    ok, refused, texts = echo_then_refusal(provider, tmp_path)
    assert "I saw" in ok.result.assistant_output.safe_text  # the echo came back
    assert str(refused.result.outcome) == "stopped: provider_error"
    assert "refused:" in json.dumps(refused.result.to_json(), default=str)
    assert [_leaks(t) for t in texts] == [[], [], [], []]
    assert _file_leaks(tmp_path) == []


def test_a_password_in_openai_base_url_stays_out_of_the_notebook_record(port, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-gatewaykey-0002")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://alice:{PASSWORD}@127.0.0.1:{port}/v1")
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        with capture_output() as cap:
            sh.run_cell("%lash open gw --store gw.duckdb --provider openai --model gpt-test")
            sh.run_cell("%%lash\nhello\n")
            sh.run_cell("%%lash\nplease fail\n")
            sh.run_cell("%lash sql SELECT * FROM llm_calls")
        shown = cap.stdout + cap.stderr + json.dumps([o.data for o in cap.outputs])
        assert "I saw" in shown and "refused:" in shown
        assert _leaks(shown) == []
        sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
    finally:
        sh.close()
    assert _file_leaks(tmp_path) == []
