"""Provider-facing shapes: the request a provider receives, the events it streams, the
response it ends with, and the classified failure it raises.

A provider implements :class:`Provider`::

    class MyProvider:
        kind = "my-provider"                  # recorded in the session as its provider id
        def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]:
            yield TextDelta("Hel"); yield TextDelta("lo")
            yield Completed(LlmResponse(parts=(LlmPart.text("Hello"),), usage=...,
                                        terminal_reason="stop"))

Rules:
- The stream ends with exactly one :class:`Completed`; usage is taken from that response
  only (once per response, never summed per chunk). :class:`UsageReported` before it is
  used only when the stream is cut (cancelled) before :class:`Completed`.
- A failure raises :class:`LlmTransportError` with a ``kind`` and a ``retryable`` flag that is
  True only when a typed signal proves a retry is safe. The runtime owns the retry ladder.
- Cancellation: the runtime cancels the task iterating the stream; a provider must not shield
  its own awaits.
"""

from __future__ import annotations

import enum
import random as _random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .records import Message
from .text import clean_text
from .usage import ZERO_USAGE, TokenUsage


class TerminalReason(str, enum.Enum):
    STOP = "stop"
    TOOL_USE = "tool_use"
    OUTPUT_LIMIT = "output_limit"
    CONTEXT_OVERFLOW = "context_overflow"
    CONTENT_FILTER = "content_filter"
    PROVIDER_ERROR = "provider_error"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


class ProviderFailureKind(str, enum.Enum):
    TRANSPORT = "transport"
    TIMEOUT = "timeout"
    HTTP = "http"
    STREAM = "stream"
    AUTH = "auth"
    VALIDATION = "validation"
    QUOTA = "quota"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    CONTEXT_OVERFLOW = "context_overflow"  # the prompt does not fit the model's window (ADR 60)
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LlmToolSpec:
    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class LlmRequest:
    """One model call. ``messages`` is a read-only view of the active history (do not copy it
    unless the wire format needs it; the runtime passes a view, not a copy)."""

    model: str
    messages: Sequence[Message]
    tools: tuple[LlmToolSpec, ...] = ()
    system_prompt: str | None = None
    session_id: str = ""
    turn_id: str = ""
    protocol_iteration: int = 0
    max_output_tokens: int | None = None
    tool_choice: str = "auto"
    # attachment id -> bytes of every attachment part in ``messages`` (read by the runtime
    # from the store before the call; ``lash_nb._providers.media`` puts them on the wire)
    attachments: Mapping[str, bytes] = field(default_factory=dict)

    def size_chars(self) -> int:
        """Characters the request carries (system prompt, every message part, tool specs):
        the base of the input estimate for a cut stream (``usage.estimate_usage``)."""
        import json

        n = len(self.system_prompt or "")
        for m in self.messages:
            n += sum(len(p.content or "") + len(p.tool_name or "") for p in m.parts)
        for t in self.tools:
            n += len(t.name) + len(t.description) + len(json.dumps(dict(t.input_schema)))
        return n


@dataclass(frozen=True, slots=True)
class LlmPart:
    kind: str  # text | reasoning | tool_call
    text: str = ""
    call_id: str | None = None
    tool_name: str | None = None
    input_json: str | None = None  # raw JSON arguments of a tool call
    # provider-native data the same provider needs back on the next call (an encrypted
    # reasoning item, a thinking block's signature): a JSON object with an "api" key, opaque
    # to the runtime and stored with the part; other providers ignore it (ADR 0030)
    replay: str | None = None

    def __post_init__(self) -> None:  # model output enters a session here (core/text.py)
        _clean_fields(self, ("text", "call_id", "tool_name", "input_json"))

    @classmethod
    def text_part(cls, text: str) -> LlmPart:
        return cls("text", text)

    @classmethod
    def reasoning(cls, text: str, replay: str | None = None) -> LlmPart:
        return cls("reasoning", text, replay=replay)

    @classmethod
    def tool_call(cls, call_id: str, tool_name: str, input_json: str) -> LlmPart:
        return cls("tool_call", call_id=call_id, tool_name=tool_name, input_json=input_json)


@dataclass(frozen=True)
class LlmResponse:
    parts: tuple[LlmPart, ...] = ()
    usage: TokenUsage = ZERO_USAGE
    terminal_reason: TerminalReason = TerminalReason.STOP
    request_id: str | None = None
    response_id: str | None = None
    served_model: str | None = None
    finish_reason: str | None = None  # raw provider finish / stop reason

    def __post_init__(self) -> None:
        _clean_fields(self, ("request_id", "response_id", "served_model", "finish_reason"))

    @property
    def full_text(self) -> str:
        return "".join(p.text for p in self.parts if p.kind == "text")

    def tool_calls(self) -> list[LlmPart]:
        return [p for p in self.parts if p.kind == "tool_call"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    item_id: str | None = None

    def __post_init__(self) -> None:
        _clean_fields(self, ("text", "item_id"))


@dataclass(frozen=True, slots=True)
class ReasoningTextDelta:
    text: str
    item_id: str | None = None

    def __post_init__(self) -> None:
        _clean_fields(self, ("text", "item_id"))


def _clean_fields(record: Any, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(record, name)
        if type(v) is str:
            c = clean_text(v)
            if c is not v:
                object.__setattr__(record, name, c)


@dataclass(frozen=True, slots=True)
class Completed:
    response: LlmResponse


@dataclass(frozen=True, slots=True)
class UsageReported:
    """Usage the provider reported before the end of the stream (e.g. Anthropic's
    ``message_start`` input tokens). Optional; if the stream is cut after it, this is what
    the cut attempt is billed at instead of an estimate. The final response's usage wins."""

    usage: TokenUsage


LlmStreamEvent = TextDelta | ReasoningTextDelta | UsageReported | Completed


class LlmTransportError(Exception):
    """A classified provider failure.

    ``retryable`` is True only when the failure class proves a retry is safe (429 with a
    retry hint, 5xx, overload, dropped stream, timeouts). ``retry_after`` is seconds.
    ``output_started`` says whether visible output was already streamed in this attempt.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ProviderFailureKind = ProviderFailureKind.UNKNOWN,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        request_id: str | None = None,
        terminal_reason: TerminalReason | None = None,
        output_started: bool = False,
    ) -> None:
        message = clean_text(message) if type(message) is str else message
        request_id = clean_text(request_id) if type(request_id) is str else request_id
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.code = code
        self.request_id = request_id
        self.terminal_reason = terminal_reason
        self.output_started = output_started

    def __repr__(self) -> str:
        return (
            f"LlmTransportError({self.message!r}, kind={self.kind.value}, "
            f"retryable={self.retryable}, status={self.status})"
        )


@dataclass(frozen=True)
class RetryPolicy:
    """The runtime's retry ladder for retryable provider failures.

    Without a server wait the delay is exponential (``base_delay_s * 2**(attempt-1)``, at most
    ``max_delay_s``) and then jittered down by up to ``jitter`` of itself, so workers that
    failed together do not retry together. A server's ``Retry-After`` is honoured (at most
    ``retry_after_cap_s``) and never shortened; ``jitter * base_delay_s`` at most is added to
    it. ``random`` returns a float in [0, 1); pass a fixed function for deterministic tests.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    retry_after_cap_s: float = 60.0
    jitter: float = 0.5
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        r = min(max(float(self.random()), 0.0), 1.0) if self.jitter else 0.0
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.retry_after_cap_s)
            return float(min(wait + self.jitter * r * self.base_delay_s, self.retry_after_cap_s))
        backoff = min(self.base_delay_s * (2 ** (attempt - 1)), self.max_delay_s)
        return float(backoff * (1.0 - min(self.jitter, 1.0) * r))


@runtime_checkable
class Provider(Protocol):
    """What the runtime needs from a model provider (see the module docstring)."""

    kind: str

    def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]: ...


@runtime_checkable
class MediaCheck(Protocol):
    """Optional: a provider that knows which attachment media types it can send."""

    def refuses_media(self, media_type: str, model: str) -> str | None:
        """Why this provider cannot send ``media_type`` to ``model`` (one line), or None."""
        ...


def refused_media(provider: object, media_type: str, model: str) -> str | None:
    """The provider's reason to refuse ``media_type`` for ``model`` (None: it takes it, or
    cannot tell)."""
    if isinstance(provider, MediaCheck):
        return provider.refuses_media(media_type, model)
    return None


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider selection helper chose and why (shown to the user)."""

    provider: Any
    model: str
    reason: str
    extra: Mapping[str, Any] = field(default_factory=dict)
