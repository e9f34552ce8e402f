"""The HTTP exchange under every provider: client lifecycle, the API key, timeouts, SSE.

Theory of operation. A provider owns one lazily created ``httpx.AsyncClient`` per event loop
(recreated when the running loop changes, e.g. a new ``asyncio.run``). One exchange:

1. response start: connect, send, wait for the status line, bounded by ``timeout`` seconds;
2. non-2xx: the body is read and classified (:mod:`.classify`), the response closed;
3. a 2xx stream whose content type is a web page, or whose body starts like HTML or a JSON
   document instead of SSE lines, is a protocol error (classified once, not retried);
4. body: each network read is bounded by ``chunk_timeout`` seconds; bytes go through
   :class:`.sse.SseDecoder` (at most ``max_event_bytes`` per event); a read error is a
   dropped stream.

The whole attempt, steps 1-4, is bounded by ``attempt_timeout`` seconds: bytes that arrive
(keepalive comments included) reset the per-read bound, never this one.
Every failure leaves as an :class:`LlmTransportError`. ``asyncio.CancelledError`` is never
caught: ``async with client.stream`` style cleanup closes the response on the way out.
The API key lives in a :class:`Secret`; it is sent only in the auth header. Every text built
from what the server sent (messages, the request id) passes the exchange's
:class:`~lash_nb._core.secrets.Scrubber`, which knows the key and common credential shapes;
:mod:`.redaction` applies it to model deltas, the final response and httpx's log records.
The scrubber also knows the other credentials a provider sends: a user and password in the
base URL (httpx sends them as basic auth) and the values of the user's headers whose names
say they carry one (``X-Gateway-Key``, ``Authorization``, a token, a cookie; ADR 146).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from contextlib import aclosing
from typing import Any, Generic, Protocol, TypeVar

import httpx

from lash_nb._core.llm import (
    Completed,
    LlmRequest,
    LlmResponse,
    LlmStreamEvent,
    LlmTransportError,
    ProviderFailureKind,
)
from lash_nb._core.secrets import Scrubber, scrub_urls, secret_query_named
from lash_nb._errors import ConfigurationError

from . import classify
from .redaction import LOG_SCRUB, DeltaScrub, scrubbed_response
from .sse import MAX_EVENT_BYTES, SseDecoder, SseEvent, SseEventTooLarge

DRAIN_S = 1.0  # seconds to wait for the end of a body whose terminal event arrived
ERROR_BODY_LIMIT = 256 * 1024  # bytes of a non-2xx body read for classification
ATTEMPT_TIMEOUT_S = 1200.0  # one attempt, start to finish (ADR 0016)
_PAGE_TYPES = ("text/html", "application/xhtml+xml")
# the names of the user's headers whose values are credentials (scrubbed like the key)
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|passw|signature", re.IGNORECASE)
# the variable the registry reads each kind's base URL from (named in the one-line error)
_BASE_URL_VARIABLES = {"openai-compatible": "OPENAI_BASE_URL", "openai-responses": "OPENAI_BASE_URL",
                       "anthropic": "ANTHROPIC_BASE_URL", "ollama": "LASH_OLLAMA_BASE_URL"}


def credentials(base_url: str, headers: Mapping[str, str] | None) -> list[str]:
    """The secrets a provider sends besides its key: the base URL's password (quoted as in
    the URL and unquoted, and ``user:password``, whose base64 is the basic-auth header), the
    values of its query parameters named like a credential (``?api-key=...``, ``?code=...``;
    quoted and unquoted) and the values of credential headers (whole, and the token after a
    scheme word)."""
    from urllib.parse import unquote, unquote_plus, urlsplit

    out: list[str] = []
    parts = urlsplit(base_url)
    if parts.password:
        user, password = unquote(parts.username or ""), unquote(parts.password)
        out += [parts.password, password, f"{user}:{password}"]
    for pair in re.split(r"[&;]", parts.query):
        name, eq, value = pair.partition("=")
        if eq and value and secret_query_named(unquote_plus(name)):
            out += [value, unquote_plus(value)]
    for name, value in (headers or {}).items():
        if _SECRET_HEADER.search(name) and isinstance(value, str):
            out += [value, value.split(" ", 1)[-1]]
    return out


_NOT_IN_A_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\x7f]")


def header_value(kind: str, what: str, value: Any, hint: str) -> Any:
    """A key or header value as it is sent: without surrounding whitespace (a key read from
    a file keeps its newline, which httpx refuses); one still holding a line break, a control
    character or a letter outside ASCII is a one-line error that does not quote it (the
    refusal httpx would give at every request does)."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if _NOT_IN_A_HEADER.search(value):
        raise ConfigurationError(
            f"{kind}: {what} has a character an HTTP header cannot carry (a line break, a "
            f"control character or a letter outside ASCII); set {hint} again, as the one line "
            "the service gave")
    return value


def shown_url(url: str) -> str:
    """``url`` for a repr or a message: its password and the values of its query parameters
    named like a credential read ``[redacted]`` (``scrub_urls``, as MCP servers show theirs)."""
    return scrub_urls(url)


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
        also: Iterable[str] = (),
        timeout: float | httpx.Timeout,
        chunk_timeout: float | None,
        attempt_timeout: float | None = ATTEMPT_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.provider = provider
        self._secret = secret
        self.scrubber = Scrubber([*([secret.reveal()] if secret else ()), *also])
        self.scrub = self.scrubber.scrub
        LOG_SCRUB.watch(self.scrubber)
        self._attempt_timeout = attempt_timeout
        self._max_event_bytes = max_event_bytes
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

    def _deadline(self) -> float | None:
        if self._attempt_timeout is None:
            return None
        return asyncio.get_running_loop().time() + self._attempt_timeout

    def _bound(self, limit: float | None, deadline: float | None) -> tuple[float | None, bool]:
        """(seconds to wait, whether the attempt deadline is what bounds it)."""
        if deadline is None:
            return limit, False
        left = max(deadline - asyncio.get_running_loop().time(), 0.0)
        if limit is None or left < limit:
            return left, True
        return limit, False

    async def _start(self, request: httpx.Request, deadline: float | None = None) -> httpx.Response:
        client = self.client()
        request.extensions.setdefault("timeout", self._client_timeout.as_dict())
        limit, by_deadline = self._bound(self._start_timeout, deadline)
        try:
            if limit is None:
                return await client.send(request, stream=True)
            async with asyncio.timeout(limit):
                return await client.send(request, stream=True)
        except (TimeoutError, httpx.TimeoutException):
            if by_deadline:
                raise self._deadline_error(None) from None
            raise classify.timeout_error(self.provider, "response start", self._start_timeout) from None
        except httpx.TransportError as exc:
            raise classify.connect_error(self.provider, exc, str(request.url.copy_with(query=None)),
                                         scrub=self.scrub) from None

    async def _fail_on_status(self, response: httpx.Response, key_hint: str) -> None:
        if response.status_code < 400:
            return
        raw = bytearray()
        try:
            async with asyncio.timeout(self._chunk_timeout):
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) >= ERROR_BODY_LIMIT:  # enough to classify; never a 1 GB page
                        break
        except (TimeoutError, httpx.HTTPError):
            pass
        raise classify.classify_http_error(
            response.status_code, response.headers,
            bytes(raw[:ERROR_BODY_LIMIT]).decode("utf-8", "replace"),
            provider=self.provider, key_hint=key_hint, scrub=self.scrub,
        )

    def _deadline_error(self, request_id: str | None) -> LlmTransportError:
        assert self._attempt_timeout is not None
        return classify.attempt_deadline_error(self.provider, self._attempt_timeout,
                                               request_id=request_id, output_started=False)

    async def _read(self, chunks: AsyncIterator[bytes], meta: dict[str, Any]) -> bytes | None:
        """The next body chunk, or None at the end. While ``meta["draining"]`` (the response
        is already complete) the wait is short and a timeout or drop just ends the body."""
        draining = bool(meta.get("draining"))
        limit = min(self._chunk_timeout or DRAIN_S, DRAIN_S) if draining else self._chunk_timeout
        limit, by_deadline = self._bound(limit, meta.get("deadline"))
        try:
            async with asyncio.timeout(limit):
                return await chunks.__anext__()
        except StopAsyncIteration:
            return None
        except (TimeoutError, httpx.TimeoutException):
            if draining:
                return None
            if by_deadline:
                raise self._deadline_error(meta.get("request_id")) from None
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
        meta["deadline"] = self._deadline()
        response = await self._start(request, meta["deadline"])
        try:
            meta["request_id"] = classify.request_id_from(response.headers, self.scrub)
            await self._fail_on_status(response, key_hint)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            decoder = SseDecoder(max_event_bytes=self._max_event_bytes)
            chunks = response.aiter_bytes()
            sniffing = True
            while (chunk := await self._read(chunks, meta)) is not None:
                if sniffing and (chunk.strip() or content_type in _PAGE_TYPES):
                    sniffing = False
                    await self._refuse_non_sse(content_type, chunk, chunks, meta)
                try:
                    events = decoder.feed(chunk)
                except SseEventTooLarge:
                    raise classify.event_too_large_error(
                        self.provider, self._max_event_bytes, request_id=meta.get("request_id"),
                        output_started=False) from None
                for event in events:
                    yield event
            for event in decoder.flush():
                yield event
        finally:
            await response.aclose()

    async def _refuse_non_sse(self, content_type: str, first: bytes, chunks: AsyncIterator[bytes],
                              meta: dict[str, Any]) -> None:
        """Raise when a 2xx "stream" is a web page or one JSON document. SSE lines start with
        a field name or ``:``; never with ``<``, ``{`` or ``[``."""
        lead = first.lstrip()[:1]
        if content_type not in _PAGE_TYPES and lead not in (b"<", b"{", b"["):
            return
        head = first[:4096]
        if lead in (b"{", b"["):
            body = bytearray(first)
            while len(body) < 65536 and (more := await self._read_quietly(chunks)) is not None:
                body += more
            try:
                data = json.loads(bytes(body))
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("error"):
                raise classify.classify_stream_error(
                    data, provider=self.provider, request_id=meta.get("request_id"),
                    output_started=False, scrub=self.scrub)
            head = bytes(body[:4096])
        raise classify.not_event_stream_error(
            self.provider, content_type, head.decode("utf-8", "replace"),
            request_id=meta.get("request_id"), scrub=self.scrub)

    async def _read_quietly(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        try:
            async with asyncio.timeout(DRAIN_S):
                return await chunks.__anext__()
        except (StopAsyncIteration, TimeoutError, httpx.HTTPError):
            return None

    async def json(
        self, request: httpx.Request, *, key_hint: str, meta: dict[str, Any]
    ) -> Mapping[str, Any]:
        """A buffered (non-streaming) POST: the parsed JSON body."""
        meta["deadline"] = self._deadline()
        response = await self._start(request, meta["deadline"])
        try:
            meta["request_id"] = classify.request_id_from(response.headers, self.scrub)
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


class Accumulator(Protocol):
    """What a provider's stream parser keeps: whether visible output started, and the final
    response it folds the events into."""

    started: bool

    def response(self, request_id: str | None) -> LlmResponse: ...


A = TypeVar("A", bound=Accumulator)
BEARER = ("authorization", "Bearer ")  # (auth header, prefix of the key)


class HttpProvider(Generic[A]):
    """What the HTTP providers share: the API key (from the argument or the environment,
    kept in a :class:`Secret`), base URL, model, extra headers, one :class:`HttpExchange`,
    and :meth:`stream`, one model call, whose steps a provider fills in with its wire format:
    :meth:`build_http_request`, :meth:`_accumulator` (its parser), :meth:`_skips` (events
    before parsing), :meth:`_fold` (one parsed event or body), :meth:`_finished` (the answer
    is whole: read the rest of the body only to reuse the connection) and :meth:`_terminal`
    (the evidence of a complete answer, named by ``terminal_evidence``)."""

    kind: str
    base_url: str
    _base: str
    _base_query: str
    model: str | None
    streaming: bool = True
    terminal_evidence: str
    _secret: Secret | None
    _key_hint: str
    _headers: dict[str, str]
    _exchange: HttpExchange

    def refuses_media(self, media_type: str, model: str) -> str | None:
        """Images, PDFs and text files go out in this API's native form; anything else, or
        what the model is known not to read, is refused before a turn writes anything
        (``_providers/media.py``)."""
        from .media import check_media

        return check_media(media_type, f"the {self.kind} provider", kind=self.kind, model=model)

    def _setup_http(
        self, *, kind: str, base_url: str, model: str | None, api_key: str | None,
        api_key_env: str | None, headers: Mapping[str, str] | None,
        transport: httpx.AsyncBaseTransport | None, timeout: float | httpx.Timeout,
        chunk_timeout: float, attempt_timeout: float | None = ATTEMPT_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.kind = kind
        # a query (a gateway's ``?api-key=``, Azure's ``?api-version=``) goes after the
        # path each request adds: ``_base`` is the URL without it, ``_base_query`` the query
        root, mark, query = base_url.strip().partition("?")
        self._base = root.partition("#")[0].rstrip("/")
        self._base_query = query.partition("#")[0] if mark else ""
        self.base_url = self._base + (f"?{self._base_query}" if self._base_query else "")
        if not self.base_url.lower().startswith(("http://", "https://")):
            # httpx would refuse every request ("unsupported protocol"), retried as a
            # network error turn after turn; say it once, where it is set
            var = _BASE_URL_VARIABLES.get(kind)
            raise ConfigurationError(
                f"{kind}: base_url {shown_url(base_url)!r} does not start with http:// or "
                "https://; write it in full (e.g. http://localhost:8000/v1)"
                + (f", in {var} if it comes from there" if var else ""))
        self.model = model
        key = api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None)
        self._key_hint = "the api_key argument" + (f" or ${api_key_env}" if api_key_env else "")
        key = header_value(kind, "api_key", key, self._key_hint) if key else key
        self._secret = Secret(key) if key else None
        self._headers = {name: header_value(kind, f"header {name!r}", value, "it")
                         for name, value in (headers or {}).items()}
        self._exchange = HttpExchange(provider=kind, secret=self._secret, transport=transport,
                                      also=credentials(self.base_url, self._headers),
                                      timeout=timeout, chunk_timeout=chunk_timeout,
                                      attempt_timeout=attempt_timeout,
                                      max_event_bytes=max_event_bytes)

    @property
    def _key_state(self) -> str:
        return "set" if self._secret else "none"

    def _model(self, request: LlmRequest, where: str = "the provider") -> str:
        """The request's model, else the provider's; neither is a one-line error."""
        model = request.model or self.model
        if not model:
            raise ConfigurationError(f"{self.kind}: no model; pass model= to {where} or the request")
        return model

    def _post(self, url: str, content: bytes, *, auth: tuple[str, str],
              fixed: Mapping[str, str] | None = None) -> httpx.Request:
        """A JSON POST: content type, accept, the API's ``fixed`` headers, the user's
        headers, then the key in the ``auth`` header (name, prefix)."""
        headers = {"content-type": "application/json",
                   "accept": "text/event-stream" if self.streaming else "application/json",
                   **(fixed or {}), **self._headers}
        if self._secret:
            headers[auth[0]] = auth[1] + self._secret.reveal()
        if self._base_query:  # as written in base_url, after the request's own query
            url += ("&" if "?" in url else "?") + self._base_query
        return httpx.Request("POST", url, headers=headers, content=content)

    def build_http_request(self, request: LlmRequest) -> httpx.Request:
        """The exact HTTP request :meth:`stream` sends (for inspection and tests)."""
        raise NotImplementedError

    def _accumulator(self, request: LlmRequest) -> A:
        raise NotImplementedError

    def _skips(self, event: SseEvent, acc: A, meta: dict[str, Any]) -> bool:
        """Whether to pass over ``event`` unparsed: by default, once the answer is whole."""
        return bool(meta.get("draining"))

    def _fold(self, acc: A, data: Mapping[str, Any], event: SseEvent | None,
              meta: dict[str, Any]) -> list[LlmStreamEvent]:
        """Fold one parsed SSE ``event`` (None: the buffered body) into ``acc``; raise the
        classified failure an error event carries."""
        raise NotImplementedError

    def _finished(self, acc: A) -> bool:
        return False

    def _terminal(self, acc: A) -> bool:
        """Whether the answer came whole; by default, what :meth:`_finished` says."""
        return self._finished(acc)

    def _stream_error(self, data: Mapping[str, Any], acc: A,
                      meta: dict[str, Any]) -> LlmTransportError:
        return classify.classify_stream_error(
            data, provider=self.kind, request_id=meta["request_id"],
            output_started=acc.started, scrub=self._exchange.scrub)

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]:
        http_request = self.build_http_request(request)
        acc = self._accumulator(request)
        meta: dict[str, Any] = {"request_id": None}
        guard = self._delta_scrub()
        try:
            if self.streaming:
                async with aclosing(self._exchange.sse(http_request, key_hint=self._key_hint,
                                                       meta=meta)) as events:
                    async for sse in events:
                        if self._skips(sse, acc, meta):
                            continue  # after the end: read only so the connection is reused
                        data = parse_json_event(self.kind, sse, meta["request_id"],
                                                acc.started, self._exchange.scrub)
                        if not isinstance(data, dict):
                            continue
                        for event in guard.apply(self._fold(acc, data, sse, meta)):
                            yield event
                        if self._finished(acc):  # a silent server only ends it now
                            meta["draining"] = True
            else:
                body = await self._exchange.json(http_request, key_hint=self._key_hint, meta=meta)
                for event in guard.apply(self._fold(acc, body, None, meta)):
                    yield event
        except LlmTransportError as err:
            for event in self._failed_stream(err, acc, guard, meta):
                yield event
            raise
        for event in self._end_stream(acc, guard, meta, terminal=self._terminal(acc),
                                      what=self.terminal_evidence):
            yield event

    def _delta_scrub(self) -> DeltaScrub:
        return DeltaScrub(self._exchange.scrubber)

    def _scrubbed(self, response: LlmResponse) -> LlmResponse:
        return scrubbed_response(self._exchange.scrubber, response)

    @staticmethod
    def _failed_stream(err: LlmTransportError, acc: Accumulator, guard: DeltaScrub,
                       meta: dict[str, Any]) -> list[LlmStreamEvent]:
        """A stream broke: name the request and whether output started on ``err``; the
        deltas the scrubber held back, to yield before re-raising it."""
        err.output_started = err.output_started or acc.started
        err.request_id = err.request_id or meta["request_id"]
        return list(guard.flush(failed=True))

    def _end_stream(self, acc: Accumulator, guard: DeltaScrub, meta: dict[str, Any], *, terminal: bool,
                    what: str) -> Iterator[LlmStreamEvent]:
        """The end of a stream: the held-back deltas and ``Completed``, or (no ``what`` seen)
        the held-back deltas and a missing-terminal error."""
        if not terminal:
            yield from guard.flush(failed=True)
            raise classify.missing_terminal_error(self.kind, what, request_id=meta["request_id"],
                                                  output_started=acc.started)
        yield from guard.flush()
        yield Completed(self._scrubbed(acc.response(meta["request_id"])))

    def scrub(self, text: str) -> str:
        """``text`` without this provider's key (in any encoding) or credential shapes; the
        runtime passes every provider-sent text it stores through this."""
        return self._exchange.scrub(text)

    def scrub_value(self, value: Any) -> Any:
        """``value`` (a tool's output: the user's data) without this provider's key, in any
        encoding; every other value, credential-shaped or not, stays as it is."""
        return self._exchange.scrubber.scrub_value(value)

    async def aclose(self) -> None:
        await self._exchange.aclose()


def bad_payload(provider: str, what: str, request_id: str | None, *, started: bool = False) -> LlmTransportError:
    return LlmTransportError(
        f"{provider} sent {what}; check that base_url points at a compatible API",
        kind=ProviderFailureKind.STREAM, retryable=False, code="bad_payload",
        request_id=request_id, output_started=started,
    )


def parse_json_event(provider: str, event: SseEvent, request_id: str | None, started: bool,
                     scrub: classify.Scrub = classify.DEFAULT_SCRUB) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        shown = scrub(event.data[:400])[:60]
        raise bad_payload(provider, f"an SSE event that is not JSON ({shown!r})",
                          request_id, started=started) from None
