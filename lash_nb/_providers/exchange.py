"""The HTTP exchange under every provider: client lifecycle, the API key, timeouts, SSE.

Theory of operation. A provider owns one lazily created ``httpx.AsyncClient`` per event loop
(recreated when the running loop changes, e.g. a new ``asyncio.run``). One exchange:

1. response start: connect, send, wait for the status line, bounded by ``timeout`` seconds;
2. non-2xx: the body is read and classified (:mod:`.classify`), the response closed;
3. body: each network read is bounded by ``chunk_timeout`` seconds; bytes go through
   :class:`.sse.SseDecoder`; a read error is a dropped stream.

Every failure leaves as an :class:`LlmTransportError`. ``asyncio.CancelledError`` is never
caught: ``async with client.stream`` style cleanup closes the response on the way out.
The API key lives in a :class:`Secret`; it is sent only in the auth header and scrubbed from
every message built from server text.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, AsyncGenerator, AsyncIterator, Mapping

import httpx

from lash_nb._core.llm import LlmTransportError, ProviderFailureKind

from . import classify
from .sse import SseDecoder, SseEvent


DRAIN_S = 1.0  # seconds to wait for the end of a body whose terminal event arrived


class Secret:
    """An API key that never shows in ``repr``/``str``; ``reveal()`` is the one way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('[redacted]')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


class HttpExchange:
    """Client lifecycle and one streamed / buffered POST for a provider."""

    def __init__(
        self,
        *,
        provider: str,
        secret: Secret | None,
        transport: httpx.AsyncBaseTransport | None,
        timeout: float | httpx.Timeout,
        chunk_timeout: float | None,
    ) -> None:
        self.provider = provider
        self._secret = secret
        self._transport = transport
        if isinstance(timeout, httpx.Timeout):
            self._client_timeout = timeout
            self._start_timeout: float | None = None
        else:
            read = max(timeout, chunk_timeout or 0.0)
            self._client_timeout = httpx.Timeout(timeout, read=read)
            self._start_timeout = timeout
        self._chunk_timeout = chunk_timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def scrub(self, text: str) -> str:
        if self._secret:
            key = self._secret.reveal()
            if len(key) >= 4:
                text = text.replace(key, "[redacted]")
        return text

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=self._client_timeout)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    async def _start(self, request: httpx.Request) -> httpx.Response:
        client = self.client()
        request.extensions.setdefault("timeout", self._client_timeout.as_dict())
        try:
            if self._start_timeout is None:
                return await client.send(request, stream=True)
            async with asyncio.timeout(self._start_timeout):
                return await client.send(request, stream=True)
        except (TimeoutError, httpx.TimeoutException):
            raise classify.timeout_error(self.provider, "response start", self._start_timeout) from None
        except httpx.TransportError as exc:
            raise classify.connect_error(self.provider, exc, str(request.url.copy_with(query=None)),
                                         scrub=self.scrub) from None

    async def _fail_on_status(self, response: httpx.Response, key_hint: str) -> None:
        if response.status_code < 400:
            return
        try:
            async with asyncio.timeout(self._chunk_timeout):
                raw = await response.aread()
        except (TimeoutError, httpx.HTTPError):
            raw = b""
        raise classify.classify_http_error(
            response.status_code, response.headers, raw.decode("utf-8", "replace"),
            provider=self.provider, key_hint=key_hint, scrub=self.scrub,
        )

    async def _read(self, chunks: AsyncIterator[bytes], meta: dict[str, Any]) -> bytes | None:
        """The next body chunk, or None at the end. While ``meta["draining"]`` (the response
        is already complete) the wait is short and a timeout or drop just ends the body."""
        draining = bool(meta.get("draining"))
        limit = min(self._chunk_timeout or DRAIN_S, DRAIN_S) if draining else self._chunk_timeout
        try:
            async with asyncio.timeout(limit):
                return await chunks.__anext__()
        except StopAsyncIteration:
            return None
        except (TimeoutError, httpx.TimeoutException):
            if draining:
                return None
            raise classify.timeout_error(
                self.provider, "stream chunk", self._chunk_timeout, request_id=meta.get("request_id")
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            if draining:
                return None
            raise classify.dropped_stream_error(
                self.provider, exc, request_id=meta.get("request_id"), output_started=False,
                scrub=self.scrub,
            ) from None

    async def sse(
        self, request: httpx.Request, *, key_hint: str, meta: dict[str, Any]
    ) -> AsyncGenerator[SseEvent, None]:
        """Stream the SSE events of ``request``. ``meta`` receives ``request_id`` as soon as
        the response starts, so the caller can stamp it on its own errors. After its terminal
        event the caller sets ``meta["draining"] = True`` and keeps iterating: the rest of
        the body is read with a short bound so the connection can be reused."""
        response = await self._start(request)
        try:
            meta["request_id"] = classify.request_id_from(response.headers)
            await self._fail_on_status(response, key_hint)
            decoder = SseDecoder()
            chunks = response.aiter_bytes()
            while (chunk := await self._read(chunks, meta)) is not None:
                for event in decoder.feed(chunk):
                    yield event
            for event in decoder.flush():
                yield event
        finally:
            await response.aclose()

    async def json(
        self, request: httpx.Request, *, key_hint: str, meta: dict[str, Any]
    ) -> Mapping[str, Any]:
        """A buffered (non-streaming) POST: the parsed JSON body."""
        response = await self._start(request)
        try:
            meta["request_id"] = classify.request_id_from(response.headers)
            await self._fail_on_status(response, key_hint)
            body = bytearray()
            chunks = response.aiter_bytes()
            while (chunk := await self._read(chunks, meta)) is not None:
                body += chunk
        finally:
            await response.aclose()
        try:
            data = json.loads(bytes(body))
        except ValueError:
            raise bad_payload(self.provider, "a non-JSON body", meta["request_id"]) from None
        if not isinstance(data, dict):
            raise bad_payload(self.provider, "a JSON body that is not an object", meta["request_id"])
        return data


class HttpProvider:
    """What the HTTP providers share: the API key (from the argument or the environment,
    kept in a :class:`Secret`), extra headers, and one :class:`HttpExchange`."""

    _secret: Secret | None
    _key_hint: str
    _headers: dict[str, str]
    _exchange: HttpExchange

    def _setup_http(
        self, *, kind: str, api_key: str | None, api_key_env: str | None,
        headers: Mapping[str, str] | None, transport: httpx.AsyncBaseTransport | None,
        timeout: float | httpx.Timeout, chunk_timeout: float,
    ) -> None:
        key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        self._secret = Secret(key) if key else None
        self._key_hint = "the api_key= argument" + (f" or ${api_key_env}" if api_key_env else "")
        self._headers = dict(headers or {})
        self._exchange = HttpExchange(provider=kind, secret=self._secret, transport=transport,
                                      timeout=timeout, chunk_timeout=chunk_timeout)

    @property
    def _key_state(self) -> str:
        return "set" if self._secret else "none"

    async def aclose(self) -> None:
        await self._exchange.aclose()


def bad_payload(provider: str, what: str, request_id: str | None, *, started: bool = False) -> LlmTransportError:
    return LlmTransportError(
        f"{provider} sent {what}; check that base_url points at a compatible API",
        kind=ProviderFailureKind.STREAM, retryable=False, code="bad_payload",
        request_id=request_id, output_started=started,
    )


def parse_json_event(provider: str, event: SseEvent, request_id: str | None, started: bool) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise bad_payload(provider, f"an SSE event that is not JSON ({event.data[:60]!r})",
                          request_id, started=started) from None
