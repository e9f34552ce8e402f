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
  only (once per response, never summed per chunk).
- A failure raises :class:`LlmTransportError` with a ``kind`` and a ``retryable`` flag that is
  True only when a typed signal proves a retry is safe. The runtime owns the retry ladder.
- Cancellation: the runtime cancels the task iterating the stream; a provider must not shield
  its own awaits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Protocol, Sequence, runtime_checkable

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


@dataclass(frozen=True, slots=True)
class LlmPart:
    kind: str  # text | reasoning | tool_call
    text: str = ""
    call_id: str | None = None
    tool_name: str | None = None
    input_json: str | None = None  # raw JSON arguments of a tool call

    def __post_init__(self) -> None:  # model output enters a session here (core/text.py)
        _clean_fields(self, ("text", "call_id", "tool_name", "input_json"))

    @classmethod
    def text_part(cls, text: str) -> LlmPart:
        return cls("text", text)

    @classmethod
    def reasoning(cls, text: str) -> LlmPart:
        return cls("reasoning", text)

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


LlmStreamEvent = TextDelta | ReasoningTextDelta | Completed


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
    """The runtime's retry ladder for retryable provider failures."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 10.0
    retry_after_cap_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(min(max(retry_after, 0.0), self.retry_after_cap_s))
        return float(min(self.base_delay_s * (2 ** (attempt - 1)), self.max_delay_s))


@runtime_checkable
class Provider(Protocol):
    """What the runtime needs from a model provider (see the module docstring)."""

    kind: str

    def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]: ...


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider selection helper chose and why (shown to the user)."""

    provider: Any
    model: str
    reason: str
    extra: Mapping[str, Any] = field(default_factory=dict)
