"""A real HTTP/1.1 server on 127.0.0.1 that serves wire scripts over real sockets.

Theory of operation. ``start()`` runs a private event loop on a daemon thread and binds an
ephemeral port; ``stop()`` cancels the open connections, closes the server and joins the
thread (the context manager does both). Each request pops the next script (FIFO across
connections), is matched like :class:`.wire.ReplayTransport` does, and is recorded in
``requests`` (credential header values ``[redacted]``). The timeline then plays at real time
(``at`` ms x ``time_scale``): ``response_start`` writes the status line and headers with
``Transfer-Encoding: chunked``; each ``sse`` / ``chunk`` / ``body`` event is one HTTP chunk;
``end`` writes the last chunk; ``http_error`` is a whole ``Content-Length`` response;
``disconnect`` / ``transport_error`` close the socket mid-response; ``timeout`` stops sending
and holds the connection until the client gives up. So the client's own socket reads, chunked
decoding and timeouts are what get tested.

A request that matches no script gets a 418 whose body says why, and the reason is appended
to ``errors`` so a test can assert ``server.errors == []``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from .wire import (
    RecordedRequest,
    WireEvent,
    WireScript,
    load_wire_script,
    mismatch_error,
    parse_body,
    record_request,
    request_problems,
)

_SKIP_HEADERS = {"content-length", "transfer-encoding", "connection"}
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            418: "I'm a teapot", 429: "Too Many Requests", 500: "Internal Server Error",
            529: "Overloaded"}


class LoopbackServer:
    """Serve wire scripts on ``base_url``; use as ``with LoopbackServer(scripts) as srv:``."""

    def __init__(self, scripts: Iterable[WireScript | str | Path | Mapping[str, Any]], *,
                 time_scale: float = 1.0, base_path: str = "") -> None:
        self._queue = deque(s if isinstance(s, WireScript) else load_wire_script(s) for s in scripts)
        self.time_scale = time_scale
        self.base_path = base_path.rstrip("/")
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self.connections = 0  # TCP connections accepted (a reused client keeps one)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def __repr__(self) -> str:
        return f"LoopbackServer(base_url={self.base_url!r}, remaining={self.remaining})"

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="lash-loopback", daemon=True)
        self._thread.start()
        opened = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), loop)
        self._server = opened.result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # handlers see EOF / reset and return
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ one connection

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        pairs = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
        headers = httpx.Headers(pairs)
        body = await _read_body(reader, headers)
        path = target.split("?", 1)[0]
        with self._lock:
            script = self._queue.popleft() if self._queue else None
        if script is None:
            return await self._refuse(writer, f"no wire script left for {method} {path}")
        problems = request_problems(script, method, path, headers, parse_body(body))
        if problems:
            return await self._refuse(writer, str(mismatch_error(script, problems)))
        self.requests.append(record_request(script.name, method, path, pairs, parse_body(body)))
        return await self._play(script.timeline, reader, writer)

    async def _refuse(self, writer: asyncio.StreamWriter, reason: str) -> bool:
        self.errors.append(reason)
        await _whole_response(writer, 418, [("content-type", "text/plain")], reason.encode())
        return True

    async def _play(self, timeline: tuple[WireEvent, ...], reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        started = False
        for event in timeline:
            delay = t0 + event.at * self.time_scale / 1000.0 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = event.event
            if kind == "http_error":
                await _whole_response(writer, int(event.get("status", 500)), _script_headers(event),
                                      str(event.get("body", "")).encode())
                return True
            if kind == "body" and not started:
                await _whole_response(writer, 200, [("content-type", "application/json")],
                                      event.payload_bytes())
                return True
            if kind == "response_start" or (kind in ("sse", "chunk", "body") and not started):
                status = int(event.get("status", 200)) if kind == "response_start" else 200
                headers = _script_headers(event) or [("content-type", "text/event-stream")]
                writer.write(_status_head(status, [*headers, ("transfer-encoding", "chunked")]))
                started = True
            if kind in ("sse", "chunk", "body"):
                data = event.payload_bytes()
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            elif kind == "end":
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return True
            elif kind == "timeout":
                await writer.drain()
                while await reader.read(65536):  # hold until the client gives up
                    pass
                return False
            elif kind in ("disconnect", "transport_error"):
                await writer.drain()
                return False
            await writer.drain()
        if started:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return True


async def _read_body(reader: asyncio.StreamReader, headers: httpx.Headers) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
            if size == 0:
                return bytes(out)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


def _script_headers(event: WireEvent) -> list[tuple[str, str]]:
    return [(str(h["name"]), str(h["value"])) for h in event.get("headers") or ()
            if str(h["name"]).lower() not in _SKIP_HEADERS]


def _status_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _whole_response(writer: asyncio.StreamWriter, status: int,
                          headers: list[tuple[str, str]], body: bytes) -> None:
    writer.write(_status_head(status, [*headers, ("content-length", str(len(body)))]) + body)
    await writer.drain()
