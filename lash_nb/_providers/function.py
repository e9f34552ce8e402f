"""``FunctionProvider``: a model written as a Python function, for tests and custom scripts.

The function receives the :class:`LlmRequest` and returns (or, if async, resolves to) one of:
- a ``str``: the answer text, streamed as one delta;
- an :class:`LlmResponse`: its text parts are streamed as one delta each;
- a list of :class:`LlmPart` (text / reasoning / tool calls);
- an async iterator of stream events ending with :class:`Completed` (full control);
or raises :class:`LlmTransportError` to simulate a provider failure.
Usage defaults to zero unless the function returns an ``LlmResponse`` with usage.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .._core.llm import (
    Completed,
    LlmPart,
    LlmRequest,
    LlmResponse,
    LlmStreamEvent,
    ReasoningTextDelta,
    TerminalReason,
    TextDelta,
)


class FunctionProvider:
    default_model = "function-model"

    def __init__(self, fn: Callable[[LlmRequest], Any], *, kind: str = "function") -> None:
        self.fn = fn
        self.kind = kind
        self.calls = 0

    def __repr__(self) -> str:
        return f"FunctionProvider({getattr(self.fn, '__name__', self.fn)!r})"

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]:
        self.calls += 1
        out = self.fn(request)
        if inspect.isawaitable(out):
            out = await out
        if hasattr(out, "__aiter__"):
            async for event in out:
                yield event
            return
        response = _as_response(out)
        for part in response.parts:
            if part.kind == "text" and part.text:
                yield TextDelta(part.text)
            elif part.kind == "reasoning" and part.text:
                yield ReasoningTextDelta(part.text)
        yield Completed(response)


def _as_response(out: Any) -> LlmResponse:
    if isinstance(out, LlmResponse):
        return out
    if isinstance(out, str):
        return LlmResponse(parts=(LlmPart.text_part(out),))
    if isinstance(out, Sequence):
        parts = tuple(out)
        reason = (
            TerminalReason.TOOL_USE
            if any(p.kind == "tool_call" for p in parts)
            else TerminalReason.STOP
        )
        return LlmResponse(parts=parts, terminal_reason=reason)
    raise TypeError(
        f"a FunctionProvider function returned {type(out).__name__}; return a str, an "
        "LlmResponse, a list of LlmPart or an async iterator of stream events"
    )
