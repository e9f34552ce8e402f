"""Provider Wire Script v1: loading, request matching, and in-process replay.

A script is one recorded HTTP exchange (``schema: "lash.provider-wire-script.v1"``): the
endpoint, structural request matchers, and a timeline of response events with ``at``
milliseconds. :class:`ReplayTransport` is an ``httpx.AsyncBaseTransport`` that pops scripts
FIFO, one per request, checks the request against the script and synthesises the response:

- before ``response_start``: ``timeout`` raises ``httpx.ReadTimeout``, ``transport_error``
  ``httpx.ConnectError``, ``http_error`` returns that whole response, ``body`` a 200 body;
- after it, the body stream yields ``sse`` (framed ``data: ...\\n\\n``), ``chunk`` and ``body``
  bytes, stops at ``end``, and raises ``httpx.ReadError`` at ``disconnect`` and
  ``httpx.ReadTimeout`` at ``timeout``.

``time_scale`` multiplies the ``at`` gaps (0 = instant, the default). A mismatch, a malformed
script or running out of scripts raises :class:`WireScriptError`. Recorded requests keep
credential header values as ``[redacted]``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lash_nb._errors import WireScriptError

SCHEMA = "lash.provider-wire-script.v1"
_TOP_KEYS = {"schema", "name", "provider_kind", "endpoint", "request_match", "timeline",
             "expected_provider", "provenance"}
_EVENTS = {"response_start", "sse", "chunk", "body", "end", "http_error", "disconnect",
           "timeout", "transport_error"}
_BODY_MATCHERS = {"equals", "present", "contains", "contains_role", "min_len"}
_HEADER_MATCHERS = {"equals", "present", "contains"}
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie",
                                "proxy-authorization", "x-goog-api-key"})
_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True)
class WireEvent:
    at: int
    event: str
    fields: Mapping[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def payload_bytes(self) -> bytes:
        """Bytes on the wire for ``sse``, ``chunk`` and ``body`` events."""
        if self.event == "sse":
            return f"data: {self.fields['data']}\n\n".encode()
        if "bytes" in self.fields:
            return bytes(self.fields["bytes"])
        return str(self.fields.get("data", "")).encode()


@dataclass(frozen=True)
class WireScript:
    name: str
    provider_kind: str
    method: str
    path: str
    request_match: Mapping[str, Any]
    timeline: tuple[WireEvent, ...]
    expected_provider: Mapping[str, Any] = field(default_factory=dict)


def load_wire_script(source: str | Path | Mapping[str, Any]) -> WireScript:
    """Load and validate one script from a path or an already parsed JSON object."""
    if isinstance(source, Mapping):
        data, where = dict(source), "<mapping>"
    else:
        where = str(source)
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WireScriptError(f"cannot read wire script {where}: {exc}; pass a JSON file path") from None
    if data.get("schema") != SCHEMA:
        raise WireScriptError(f"{where}: schema must be {SCHEMA!r}, got {data.get('schema')!r}")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise WireScriptError(f"{where}: unknown fields {sorted(unknown)}; remove them")
    endpoint = data.get("endpoint") or {}
    match = data.get("request_match") or {}
    for path, matcher in (match.get("body") or {}).items():
        _check_matcher(where, path, matcher, _BODY_MATCHERS)
    for name, matcher in (match.get("headers") or {}).items():
        _check_matcher(where, name, matcher, _HEADER_MATCHERS)
    timeline = tuple(_event(where, i, e) for i, e in enumerate(data.get("timeline") or ()))
    if not timeline:
        raise WireScriptError(f"{where}: the timeline is empty; add at least one event")
    if any(b.at < a.at for a, b in itertools.pairwise(timeline)):
        raise WireScriptError(f"{where}: timeline 'at' values must not decrease")
    return WireScript(
        name=str(data.get("name") or where), provider_kind=str(data.get("provider_kind") or ""),
        method=str(endpoint.get("method") or "POST").upper(), path=str(endpoint.get("path") or "/"),
        request_match=match, timeline=timeline,
        expected_provider=dict(data.get("expected_provider") or {}),
    )


def load_wire_scripts(directory: str | Path, pattern: str = "*.json") -> list[WireScript]:
    """Every script in ``directory`` matching ``pattern``, sorted by file name."""
    return [load_wire_script(p) for p in sorted(Path(directory).glob(pattern))]


def _check_matcher(where: str, key: str, matcher: Any, allowed: set[str]) -> None:
    if not isinstance(matcher, Mapping) or not matcher or set(matcher) - allowed:
        raise WireScriptError(f"{where}: matcher for {key!r} must use {sorted(allowed)}, got {matcher!r}")


def _event(where: str, index: int, raw: Mapping[str, Any]) -> WireEvent:
    kind = raw.get("event")
    if kind not in _EVENTS:
        raise WireScriptError(f"{where}: timeline[{index}] has unknown event {kind!r}")
    fields = {k: v for k, v in raw.items() if k not in ("at", "event")}
    return WireEvent(at=int(raw.get("at", 0)), event=str(kind), fields=fields)


# --------------------------------------------------------------------------- matching


def json_path(value: Any, path: str) -> Any:
    """``messages[0].role`` style lookup; ``_MISSING`` when any step is absent."""
    for name, index in _PATH_TOKEN.findall(path):
        if name:
            if not isinstance(value, Mapping) or name not in value:
                return _MISSING
            value = value[name]
        else:
            i = int(index)
            if not isinstance(value, list) or i >= len(value):
                return _MISSING
            value = value[i]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _body_problem(path: str, matcher: Mapping[str, Any], value: Any) -> str | None:
    found = value is not _MISSING
    if "present" in matcher and bool(matcher["present"]) != found:
        return f"body {path}: expected present={matcher['present']}"
    if not found:
        return None if set(matcher) == {"present"} else f"body {path}: missing"
    if "equals" in matcher and not _same(value, matcher["equals"]):
        return f"body {path}: expected {matcher['equals']!r}, got {value!r}"
    if "contains" in matcher:
        needle = matcher["contains"]
        ok = (needle in value) if isinstance(value, (str, list, dict)) else False
        if not ok:
            return f"body {path}: does not contain {needle!r}"
    if "contains_role" in matcher:
        roles = [m.get("role") for m in value if isinstance(m, Mapping)] if isinstance(value, list) else []
        if matcher["contains_role"] not in roles:
            return f"body {path}: no item with role {matcher['contains_role']!r} (roles {roles})"
    if "min_len" in matcher and (not hasattr(value, "__len__") or len(value) < int(matcher["min_len"])):
        return f"body {path}: shorter than {matcher['min_len']}"
    return None


def _header_problem(name: str, matcher: Mapping[str, Any], headers: httpx.Headers) -> str | None:
    values = headers.get_list(name)
    if "present" in matcher and bool(matcher["present"]) != bool(values):
        return f"header {name}: expected present={matcher['present']}"
    shown = "[redacted]" if name.lower() in CREDENTIAL_HEADERS else repr(values)
    if "equals" in matcher and str(matcher["equals"]) not in values:
        return f"header {name}: expected {matcher['equals']!r}, got {shown}"
    if "contains" in matcher and not any(str(matcher["contains"]) in v for v in values):
        return f"header {name}: does not contain {matcher['contains']!r}, got {shown}"
    return None


def request_problems(
    script: WireScript, method: str, path: str, headers: httpx.Headers, body: Any
) -> list[str]:
    """Everything about a request that the script's endpoint and matchers reject."""
    problems: list[str] = []
    if method.upper() != script.method:
        problems.append(f"method {method} != {script.method}")
    if path != script.path and not path.endswith(script.path):
        problems.append(f"path {path} does not end with {script.path}")
    for name, matcher in (script.request_match.get("headers") or {}).items():
        if (problem := _header_problem(name, matcher, headers)) is not None:
            problems.append(problem)
    for jpath, matcher in (script.request_match.get("body") or {}).items():
        if (problem := _body_problem(jpath, matcher, json_path(body, jpath))) is not None:
            problems.append(problem)
    return problems


@dataclass(frozen=True)
class RecordedRequest:
    """A request a replay double received; credential header values are ``[redacted]``."""

    script: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: Any

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def record_request(script: str, method: str, path: str, headers: Iterable[tuple[str, str]],
                   body: Any) -> RecordedRequest:
    kept = tuple((k.lower(), "[redacted]" if k.lower() in CREDENTIAL_HEADERS else v)
                 for k, v in headers)
    return RecordedRequest(script, method.upper(), path, kept, body)


def parse_body(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def mismatch_error(script: WireScript, problems: Sequence[str]) -> WireScriptError:
    return WireScriptError(
        f"wire script {script.name!r} does not match the request: {'; '.join(problems)}; "
        "fix the provider call or the script's request_match"
    )


# --------------------------------------------------------------------------- replay


class _Clock:
    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.now_ms = 0

    async def until(self, at_ms: int) -> None:
        gap = max(at_ms - self.now_ms, 0)
        self.now_ms = max(at_ms, self.now_ms)
        await asyncio.sleep(gap * self.scale / 1000.0 if self.scale > 0 else 0)


class _ReplayBody(httpx.AsyncByteStream):
    def __init__(self, events: Sequence[WireEvent], clock: _Clock, request: httpx.Request,
                 owner: ReplayTransport) -> None:
        self._events = events
        self._clock = clock
        self._request = request
        self._owner: ReplayTransport | None = owner
        owner.open_streams += 1

    async def aclose(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.open_streams -= 1

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self._events:
            await self._clock.until(event.at)
            if event.event in ("sse", "chunk", "body"):
                yield event.payload_bytes()
            elif event.event == "end":
                return
            elif event.event == "timeout":
                raise httpx.ReadTimeout(str(event.get("message", "scripted timeout")), request=self._request)
            elif event.event in ("disconnect", "transport_error"):
                raise httpx.ReadError(str(event.get("message", "scripted disconnect")), request=self._request)


class ReplayTransport(httpx.AsyncBaseTransport):
    """Serve wire scripts in order, one per request (see the module docstring)."""

    def __init__(self, scripts: Iterable[WireScript | str | Path | Mapping[str, Any]], *,
                 time_scale: float = 0.0) -> None:
        self._queue = deque(s if isinstance(s, WireScript) else load_wire_script(s) for s in scripts)
        self.time_scale = time_scale
        self.requests: list[RecordedRequest] = []
        self.open_streams = 0  # response bodies handed out and not yet closed

    @property
    def remaining(self) -> int:
        return len(self._queue)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._queue:
            raise WireScriptError(
                f"no wire script left for {request.method} {request.url.path} "
                f"({len(self.requests)} served); add one more script to the ReplayTransport"
            )
        script = self._queue.popleft()
        content = await request.aread()
        body = parse_body(content)
        problems = request_problems(script, request.method, request.url.path, request.headers, body)
        if problems:
            raise mismatch_error(script, problems)
        self.requests.append(record_request(script.name, request.method, request.url.path,
                                            request.headers.multi_items(), body))
        return await self._respond(script, request)

    async def _respond(self, script: WireScript, request: httpx.Request) -> httpx.Response:
        clock = _Clock(self.time_scale)
        for i, event in enumerate(script.timeline):
            await clock.until(event.at)
            kind = event.event
            if kind == "response_start":
                return httpx.Response(int(event.get("status", 200)), headers=_headers(event),
                                      stream=_ReplayBody(script.timeline[i + 1:], clock, request, self),
                                      request=request)
            if kind == "http_error":
                return httpx.Response(int(event.get("status", 500)), headers=_headers(event),
                                      content=str(event.get("body", "")).encode(), request=request)
            if kind == "body":
                return httpx.Response(200, headers=[("content-type", "application/json")],
                                      content=event.payload_bytes(), request=request)
            if kind == "timeout":
                raise httpx.ReadTimeout(str(event.get("message", "scripted timeout")), request=request)
            if kind in ("transport_error", "disconnect"):
                raise httpx.ConnectError(str(event.get("message", "scripted transport error")),
                                         request=request)
            if kind in ("sse", "chunk"):  # a stream with no explicit response_start
                return httpx.Response(200, headers=[("content-type", "text/event-stream")],
                                      stream=_ReplayBody(script.timeline[i:], clock, request, self),
                                      request=request)
        return httpx.Response(200, request=request)


def _headers(event: WireEvent) -> list[tuple[str, str]]:
    return [(str(h["name"]), str(h["value"])) for h in event.get("headers") or ()
            if str(h["name"]).lower() not in ("content-length", "transfer-encoding")]
