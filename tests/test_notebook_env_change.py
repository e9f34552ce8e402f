"""A user whose turn failed with "check $OPENAI_API_KEY" fixes the variable in the notebook
(``os.environ[...] = ...``) and runs ``%lash open`` again, as the message says: the next turn
uses the new key and base URL (it kept the first ones until a kernel restart). A base URL
without ``http://`` is refused at open in one line instead of retried as a network error."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell

GOOD = "sk-test-the-right-key-0002"


class _Gate(http.server.BaseHTTPRequestHandler):
    """Answers only requests carrying the right key; tells each answer's path apart."""

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != f"Bearer {GOOD}":
            out = json.dumps({"error": {"message": "invalid api key"}}).encode()
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
        for chunk in ({**base, "choices": [{"index": 0, "delta": {"content": f"ok via {self.path}"}}]},
                      {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 3}}):
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    yield shell
    shell.close()


def test_a_key_fixed_in_the_notebook_is_used_after_open_again(sh, port, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-a-wrong-key-0001")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    sh.run_cell("%lash open s1 --store t.duckdb --provider openai --model gpt-test")
    first = sh.run_cell("r1 = %lash turn hello\nr1")
    assert str(first.outcome) == "stopped: provider_error"
    sh.run_cell(f"import os\nos.environ['OPENAI_API_KEY'] = {GOOD!r}\n"
                f"os.environ['OPENAI_BASE_URL'] = 'http://127.0.0.1:{port}/gateway/v1'")
    sh.run_cell("%lash open s1 --store t.duckdb --provider openai --model gpt-test")
    second = sh.run_cell("r2 = %lash turn hello again\nr2")
    assert str(second.outcome) == "finished: assistant_message"
    assert second.assistant_output.safe_text == "ok via /gateway/v1/chat/completions"
    # the session kept its first turn: one session, both turns in the store
    n = sh.run_cell("%lash sql SELECT count(*) AS n FROM turns WHERE session_id = 's1'")
    assert n["n"].tolist() == [2]


def test_a_base_url_without_a_scheme_is_refused_at_open(sh, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", GOOD)
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000/v1")
    with pytest.raises(UsageError) as info:
        sh.run_cell("%lash open s1 --store t.duckdb --provider openai --model gpt-test")
    assert str(info.value) == (
        "openai-compatible: base_url 'localhost:8000/v1' does not start with http:// or "
        "https://; write it in full (e.g. http://localhost:8000/v1), in OPENAI_BASE_URL "
        "if it comes from there")
    assert list(tmp_path.iterdir()) == []  # refused before the store was opened
