"""One classification of provider failures, shared by every HTTP provider.

``retryable`` is True only when the failure class proves a retry is safe: a rate limit (429
that is not an exhausted quota), 5xx, 529 / ``overloaded_error``, a dropped stream and
timeouts. Quota, validation (400/422), auth (401/403) and other 4xx are terminal. A prompt
longer than the model's context window is its own kind, ``context_overflow`` (terminal; the
runtime answers it with a window of the active path, ADR 60). Google's
dialect: a 429 with a ``google.rpc.RetryInfo`` delay is a rate limit whatever its wording, and
a 400 ``API_KEY_INVALID`` is an auth failure.
Messages are one line, say what happened and what to do, and pass through ``scrub`` (by
default :func:`lash_nb._core.secrets.scrub`, credential shapes only; a provider passes one that
also knows its own key) so nothing a server echoed back carries a secret. Header values the
runtime keeps (the request id) are scrubbed too. A ``Retry-After`` that is neither seconds nor
an HTTP date is ignored: the runtime falls back to its own backoff.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from lash_nb._core.llm import LlmTransportError, ProviderFailureKind, TerminalReason
from lash_nb._core.secrets import scrub as _scrub_shapes

Scrub = Callable[[str], str]

_QUOTA_MARKERS = (
    "insufficient_quota",
    "exceeded your current quota",
    "billing",
    "credit balance",
    "insufficient credits",
    "quota exceeded",
)
# "the prompt does not fit": the wordings lash's classifier knows (provider/traits.rs), which
# cover OpenAI chat and Responses, Anthropic, Gemini, OpenRouter and local servers; a text that
# also speaks of a rate, a quota or throttling is a limit per minute, never an overflow
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "context_length",
    "context length",
    "maximum context",
    "max context",
    "context window",
    "prompt is too long",
    "prompt too long",
    "request_too_large",
    "maximum prompt length is",
    "reduce the length of the messages",
    "exceeds the available context size",
    "exceeded model token limit",
    "too large for model with",
    "model_context_window_exceeded",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "exceeds maximum number of tokens",
    "request too large",
    "input is too long",
)
_NOT_CONTEXT_MARKERS = ("rate limit", "rate_limit", "ratelimit", "throttl", "too many requests",
                        "tokens per minute", "tpm", "quota")
_RETRY_HINT = re.compile(
    r"(?:try again in|retry after|retry in)\s+(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?)?",
    re.IGNORECASE,
)
_MESSAGE_LIMIT = 240
_REQUEST_ID_LIMIT = 200

DEFAULT_SCRUB: Scrub = _scrub_shapes  # credential shapes, no known values


def request_id_from(headers: httpx.Headers, scrub: Scrub = DEFAULT_SCRUB) -> str | None:
    """``x-request-id`` or ``request-id``; when a header repeats, the first value. Scrubbed
    and bounded: it is stored with every attempt."""
    for name in ("x-request-id", "request-id"):
        values = headers.get_list(name)
        if values:
            value = values[0].split(",")[0].strip()
            return scrub(value)[:_REQUEST_ID_LIMIT] or None
    return None


def retry_after_from(headers: httpx.Headers, message: str = "") -> float | None:
    """Seconds to wait: ``retry-after-ms``, ``retry-after`` (seconds or HTTP date), or a
    "try again in N s" / "Please retry after N seconds" hint in the error message."""
    ms = headers.get_list("retry-after-ms")
    if ms:
        try:
            return max(float(ms[0]) / 1000.0, 0.0)
        except ValueError:
            pass
    values = headers.get_list("retry-after")
    if values:
        seconds = _retry_after_value(values[0].strip())
        if seconds is not None:
            return seconds
    match = _RETRY_HINT.search(message)
    if match:
        value = float(match.group(1))
        unit = (match.group(2) or "s").lower()
        return value / 1000.0 if unit.startswith("m") else value
    return None


def _retry_after_value(raw: str) -> float | None:
    """Seconds from a ``Retry-After`` value (delay-seconds or an HTTP date); None for anything
    else (``soon``, garbage), so the caller's default backoff applies."""
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the date is in GMT (RFC 9110)
        when = when.replace(tzinfo=datetime.UTC)
    return max(when.timestamp() - time.time(), 0.0)


def error_fields(body: str) -> tuple[str, str | None]:
    """(message, code) from an OpenAI / Anthropic / OpenRouter style JSON error body."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return " ".join(body.split())[:_MESSAGE_LIMIT], None
    err = data.get("error", data) if isinstance(data, dict) else data
    if not isinstance(err, dict):
        return str(err)[:_MESSAGE_LIMIT], None
    message = str(err.get("message") or err.get("detail") or "")
    code = err.get("code") or err.get("type")
    if isinstance(code, int) and isinstance(err.get("status"), str):  # Google: 429 + "RESOURCE_EXHAUSTED"
        code = err["status"]
    return " ".join(message.split())[:_MESSAGE_LIMIT], (str(code) if code is not None else None)


_BAD_KEY = re.compile(r"API_KEY_INVALID|API key not valid", re.IGNORECASE)  # Google answers 400
_GOOGLE_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _google_retry_delay(body: str) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (``"retryDelay": "34s"``), else None."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    for detail in (err.get("details") if isinstance(err, dict) else None) or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _GOOGLE_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def is_context_overflow(text: str) -> bool:
    """True when a provider's error text says the prompt exceeds the model's context window."""
    low = text.lower()
    if any(marker in low for marker in _NOT_CONTEXT_MARKERS):
        return False
    return any(marker in low for marker in _CONTEXT_MARKERS) or (
        "input token count" in low and "exceeds the maximum" in low)


_OVERFLOW_ADVICE = ("the conversation is longer than the model's context window; lash_nb "
                    "sends only the newest messages instead (context_window, ADR 60), or open "
                    "the session --fresh or pick a model with a larger window")


def _is_quota(status: int, text: str) -> bool:
    if status == 402:
        return True
    if status not in (400, 403, 429):
        return False
    low = text.lower()
    return any(marker in low for marker in _QUOTA_MARKERS)


def classify_http_error(
    status: int,
    headers: httpx.Headers,
    body: str,
    *,
    provider: str,
    key_hint: str = "the API key",
    scrub: Scrub = DEFAULT_SCRUB,
) -> LlmTransportError:
    """Classify a non-2xx response. ``key_hint`` names where the key comes from."""
    body = scrub(body)
    message, code = error_fields(body)
    request_id = request_id_from(headers, scrub)
    detail = f": {message}" if message else ""
    combined = f"{code or ''} {message} {body[:2000]}"

    def err(kind: ProviderFailureKind, retryable: bool, advice: str, **kw: Any) -> LlmTransportError:
        return LlmTransportError(
            scrub(f"{provider} returned HTTP {status} ({kind.value}){detail}; {advice}"),
            kind=kind, retryable=retryable, status=status, code=code,
            request_id=request_id, **kw,
        )

    google_wait = _google_retry_delay(body) if status == 429 else None
    if google_wait is not None:  # a typed RetryInfo: a per-minute limit, whatever the wording
        return err(ProviderFailureKind.RATE_LIMIT, True, "the runtime retries after the "
                   "provider's wait", retry_after=google_wait)
    if _is_quota(status, combined):
        return err(ProviderFailureKind.QUOTA, False, "add credits or raise the plan's quota, "
                   "then run the turn again")
    if status == 429:
        wait = retry_after_from(headers, message)
        return err(ProviderFailureKind.RATE_LIMIT, True, "the runtime retries after the "
                   "provider's wait", retry_after=wait)
    if status in (401, 403) or (status == 400 and _BAD_KEY.search(combined)):
        return err(ProviderFailureKind.AUTH, False, f"check {key_hint}")
    if status in (400, 413, 422):
        if is_context_overflow(combined):
            return err(ProviderFailureKind.CONTEXT_OVERFLOW, False, _OVERFLOW_ADVICE,
                       terminal_reason=TerminalReason.CONTEXT_OVERFLOW)
        return err(ProviderFailureKind.VALIDATION, False, "fix the request (model name, "
                   "tools, parameters); retrying will not help")
    if status == 529 or code == "overloaded_error":
        return err(ProviderFailureKind.OVERLOADED, True, "the provider is overloaded; the "
                   "runtime retries", retry_after=retry_after_from(headers, message))
    if status == 408:
        return err(ProviderFailureKind.TIMEOUT, True, "the runtime retries",
                   retry_after=retry_after_from(headers, message))
    if status >= 500:
        return err(ProviderFailureKind.HTTP, True, "a server error; the runtime retries",
                   retry_after=retry_after_from(headers, message))
    return err(ProviderFailureKind.HTTP, False, "check the base_url and model name")


def classify_stream_error(
    payload: Mapping[str, Any],
    *,
    provider: str,
    request_id: str | None,
    output_started: bool,
    scrub: Scrub = DEFAULT_SCRUB,
) -> LlmTransportError:
    """An error reported inside a 200 stream (Anthropic ``error`` event, OpenRouter chunk,
    Responses ``error`` / ``response.failed``). A context-length error is terminal."""
    raw = payload.get("error", payload)
    err: Mapping[str, Any] = raw if isinstance(raw, dict) else {"message": str(raw)}
    kind_name = scrub(str(err.get("type") or ""))[:80]
    code = err.get("code")
    if code is not None and not isinstance(code, int):
        code = scrub(str(code))[:80]
    message = " ".join(scrub(str(err.get("message") or kind_name or "stream error")).split())
    status = code if isinstance(code, int) else None
    low = f"{kind_name} {code} {message}".lower()
    overflow: TerminalReason | None = None
    if "overloaded" in low or status == 529:
        kind, retryable = ProviderFailureKind.OVERLOADED, True
    elif any(marker in low for marker in _QUOTA_MARKERS):
        kind, retryable = ProviderFailureKind.QUOTA, False
    elif "rate_limit" in low or status == 429:
        kind, retryable = ProviderFailureKind.RATE_LIMIT, True
    elif is_context_overflow(low):
        kind, retryable = ProviderFailureKind.CONTEXT_OVERFLOW, False
        overflow = TerminalReason.CONTEXT_OVERFLOW
    elif "invalid_request" in low or "invalid_prompt" in low or status in (400, 422):
        kind, retryable = ProviderFailureKind.VALIDATION, False
    elif "authentication" in low or "permission" in low or status in (401, 403):
        kind, retryable = ProviderFailureKind.AUTH, False
    else:  # api_error, server errors and unknown in-stream failures
        kind, retryable = ProviderFailureKind.STREAM, True
    advice = ("the runtime retries" if retryable else _OVERFLOW_ADVICE if overflow
              else "retrying will not help")
    return LlmTransportError(
        f"{provider} stream reported {kind_name or kind.value}: {message[:_MESSAGE_LIMIT]}; {advice}",
        kind=kind, retryable=retryable, status=status,
        code=kind_name or (str(code) if code is not None else None),
        request_id=request_id, output_started=output_started,
        retry_after=retry_after_from(httpx.Headers(), message), terminal_reason=overflow,
    )


def timeout_error(
    provider: str, phase: str, seconds: float | None, *, request_id: str | None = None,
    output_started: bool = False,
) -> LlmTransportError:
    limit = f" (limit {seconds:g} s)" if seconds is not None else ""
    return LlmTransportError(
        f"{provider} {phase} timed out{limit}; the runtime retries (raise timeout= or "
        "chunk_timeout= for slow models)",
        kind=ProviderFailureKind.TIMEOUT, retryable=True, code="timeout",
        request_id=request_id, output_started=output_started,
    )


def dropped_stream_error(
    provider: str, exc: BaseException, *, request_id: str | None, output_started: bool,
    scrub: Scrub = DEFAULT_SCRUB,
) -> LlmTransportError:
    said = " ".join(str(exc).split())  # one line: some SDKs put the cause on the next
    return LlmTransportError(
        scrub(f"{provider} stream dropped ({type(exc).__name__}: {said}); the runtime retries"),
        kind=ProviderFailureKind.STREAM, retryable=True, request_id=request_id,
        output_started=output_started,
    )


def connect_error(provider: str, exc: BaseException, url: str, *, scrub: Scrub = DEFAULT_SCRUB) -> LlmTransportError:
    return LlmTransportError(
        scrub(f"{provider} could not reach {url} ({type(exc).__name__}: {exc}); check "
              "base_url and the network; the runtime retries"),
        kind=ProviderFailureKind.TRANSPORT, retryable=True,
    )


def missing_terminal_error(
    provider: str, what: str, *, request_id: str | None, output_started: bool
) -> LlmTransportError:
    return LlmTransportError(
        f"{provider} stream ended without {what}; the response is incomplete and the runtime retries",
        kind=ProviderFailureKind.STREAM, retryable=True, code="missing_terminal",
        request_id=request_id, output_started=output_started,
    )


def attempt_deadline_error(
    provider: str, seconds: float, *, request_id: str | None, output_started: bool
) -> LlmTransportError:
    """The whole attempt outlived ``attempt_timeout`` (keepalive comments do not extend it).
    Not retryable: the budget is the user's, and a server that pinged through it once will
    most likely do so again (ADR 0016)."""
    return LlmTransportError(
        f"{provider} response did not finish within attempt_timeout={seconds:g} s (a server "
        "that only sends keepalive comments never finishes); not retried: raise "
        "attempt_timeout= on the provider for very long answers",
        kind=ProviderFailureKind.TIMEOUT, retryable=False, code="attempt_timeout",
        request_id=request_id, output_started=output_started,
    )


def not_event_stream_error(
    provider: str, content_type: str, head: str, *, request_id: str | None, scrub: Scrub = DEFAULT_SCRUB
) -> LlmTransportError:
    """A 2xx answer that is a web page, not an event stream (a proxy or captive login page)."""
    shown = " ".join(scrub(head).split())[:80]
    kind = content_type or "no content-type"
    return LlmTransportError(
        f"{provider} answered with a {kind} page instead of an event stream ({shown!r}); a "
        "proxy, firewall or login page is in the way: check base_url and the network",
        kind=ProviderFailureKind.STREAM, retryable=False, code="not_event_stream",
        request_id=request_id,
    )


def event_too_large_error(
    provider: str, limit: int, *, request_id: str | None, output_started: bool
) -> LlmTransportError:
    return LlmTransportError(
        f"{provider} sent one stream event larger than max_event_bytes={limit} "
        f"({limit / 2**20:g} MiB); the server is not framing its events: check base_url, or "
        "raise max_event_bytes= if such answers are expected",
        kind=ProviderFailureKind.STREAM, retryable=False, code="event_too_large",
        request_id=request_id, output_started=output_started,
    )
