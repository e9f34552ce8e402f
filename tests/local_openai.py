"""A local OpenAI-compatible chat server for tests: a request handler base whose subclasses
decide per request (``answer``), replying with a streamed completion or a JSON error, and
``serve`` (the port it listens on, in a thread, for as long as the ``with`` lasts); and
``chat_script``, a recorded Chat Completions stream for ``lash_nb.testing.LoopbackServer``."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any


class ChatHandler(http.server.BaseHTTPRequestHandler):
    """``answer(body)`` returns ``(200, text)`` to stream ``text`` as the model's answer (a
    list of strings: one delta each), or ``(status, message)`` for an OpenAI-style error
    body."""

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, body: dict[str, Any]) -> tuple[int, str | list[str]]:
        raise NotImplementedError

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, text = self.answer(body)
        if status != 200:
            out = json.dumps({"error": {"message": str(text)}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"]}
        pieces = [text] if isinstance(text, str) else text
        for chunk in (*({**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
                        for piece in pieces),
                      {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 3}}):
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


@contextlib.contextmanager
def serve(handler: type[ChatHandler]) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def chat_script(name: str, *events: str) -> dict[str, Any]:
    """A wire script (``lash.provider-wire-script.v1``) of an OpenAI-compatible chat stream
    sending ``events`` (SSE data lines), then ``[DONE]``."""
    timeline: list[dict[str, Any]] = [{"at": 0, "event": "response_start", "status": 200, "headers": [
        {"name": "content-type", "value": "text/event-stream; charset=utf-8"}]}]
    timeline += [{"at": i + 1, "event": "sse", "data": data} for i, data in enumerate(events)]
    timeline += [{"at": 90, "event": "sse", "data": "[DONE]"}, {"at": 91, "event": "end"}]
    return {"schema": "lash.provider-wire-script.v1", "name": name,
            "provider_kind": "openai-compatible",
            "endpoint": {"method": "POST", "path": "/chat/completions"}, "timeline": timeline}
