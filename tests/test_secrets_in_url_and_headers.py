"""Credentials that are not the api key: a gateway's user and password in the base URL
(``OPENAI_BASE_URL=https://user:pass@gateway/v1``, sent by httpx as HTTP basic auth) and a
gateway key in a header the user adds (``headers={"X-Gateway-Key": ...}``). A server that
echoes its request headers back, in an error body and in the model's text, must not put them
in the turn's result, the store file, the notebook's record or the provider's repr.

The server is a small ``http.server`` speaking OpenAI's streamed chat completions.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.utils.capture import capture_output
from notebook_harness import ReraisingShell

from lash_nb import LashCore, run_sync
from lash_nb.providers import OpenAICompatible
from lash_nb.stores import DuckDBStore

PASSWORD = "Hunter2GatewayPw"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
GATEWAY_KEY = "gw-live-4f9a1c77e2b8d0"


class _Echo(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen = f"{self.headers.get('Authorization')} {self.headers.get('X-Gateway-Key')}"
        if "fail" in body["messages"][-1]["content"]:
            out = json.dumps({"error": {"message": f"refused: {seen}"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"]}
        for chunk in ({**base, "choices": [{"index": 0, "delta": {"content": f"I saw {seen}."}}]},
                      {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 9}}):
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _leaks(text: str) -> list[str]:
    return [s for s in (PASSWORD, BASIC, BASIC.rstrip("="), GATEWAY_KEY) if s in text]


def _file_leaks(folder: Path) -> list[str]:
    data = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
    return _leaks(data.decode("utf-8", "replace"))


def test_a_gateway_password_in_the_base_url_and_a_key_header_are_kept_out(port, tmp_path):
    provider = OpenAICompatible(base_url=f"http://alice:{PASSWORD}@127.0.0.1:{port}/v1",
                                model="gpt-test", api_key="sk-test-gatewaykey-0001",
                                headers={"X-Gateway-Key": GATEWAY_KEY})

    async def body():
        core = LashCore.builder().provider(provider).store(
            DuckDBStore(tmp_path / "gw.duckdb", idle_release_s=None)).build()
        s = await core.session("gw").open()
        ok = await s.turn("hello").run()
        refused = await s.turn("please fail").run()
        texts = [repr(provider), repr(core), json.dumps(ok.result.to_json(), default=str),
                 json.dumps(refused.result.to_json(), default=str)]
        await core.close()
        return ok, refused, texts

    ok, refused, texts = run_sync(body())
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
