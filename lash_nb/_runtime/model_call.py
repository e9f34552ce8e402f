"""One model call of a turn: streaming, the retry ladder, attempt records.

Theory of operation
- A cut attempt is billed: an attempt cut by a cancel is counted at the usage the provider
  reported before the cut (``UsageReported``), else at an estimate marked ``estimated``
  (``usage.estimate_usage``: request characters / 4 in, streamed characters / 4 out), never
  as a silent zero.
- Each attempt iterates ``provider.stream(request)``. Prose and reasoning deltas are emitted
  at once; their correlation id is the provider's item id, else one fresh id per attempt and
  kind, so a UI keeps one row per attempt.
- A retryable :class:`LlmTransportError` before ``max_attempts``: if the failed attempt had
  emitted deltas, ``model_attempt_reset`` names exactly their correlation ids (the UI deletes
  those rows); then ``retry_status`` and a cancellable sleep (``Retry-After`` honoured, capped).
- A terminal failure returns :class:`ModelCallFailed`; the turn ends ``stopped:
  provider_error`` and commits. Cancellation (the turn task cancelled) abandons the stream
  without awaiting it (its close runs in the background) and propagates.
- Usage comes from the attempt's final response only: counted once per response.
- Every provider-sent text that leaves here (error messages, request ids, served model) is
  scrubbed of secrets: by the provider's own ``scrub`` when it has one (it knows its key),
  else of credential shapes (:mod:`lash_nb._core.secrets`); HTTP providers scrub already,
  this is the runtime's guarantee for every provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from .._core import events as ev
from .._core import usage as usage_rules
from .._core.events import TurnEvent
from .._core.llm import (
    Completed,
    LlmRequest,
    LlmResponse,
    LlmTransportError,
    Provider,
    ProviderFailureKind,
    ReasoningTextDelta,
    RetryPolicy,
    TextDelta,
    UsageReported,
)
from .._core.records import fresh_id
from .._core.secrets import ScrubsSecrets
from .._core.secrets import scrub as scrub_shapes
from .._core.turn_machine import decide_retry
from .._core.usage import LlmAttempt, LlmCallRecord, TokenUsage


class ModelCallRun(Protocol):
    """What a model call needs of its turn (``TurnRun`` is one)."""

    turn_id: str
    retry_policy: RetryPolicy
    partial_prose: list[str]
    llm_calls: list[LlmCallRecord]

    def emit(self, event: TurnEvent, correlation_id: str) -> None: ...

    def emit_independent(self, event: TurnEvent) -> None: ...

    def count_cut_usage(self, usage: TokenUsage, iteration: int, *, estimated: bool) -> None: ...


@dataclass(frozen=True)
class ModelCallFailed:
    error: LlmTransportError


class _Rows:
    """Correlation ids of one kind of delta (prose or reasoning) within one attempt: the
    provider's item id, else one fresh id reused for the whole attempt."""

    __slots__ = ("fallback", "ids", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.fallback: str | None = None
        self.ids: list[str] = []

    def cid(self, item_id: str | None) -> str:
        cid = item_id or self.fallback
        if cid is None:
            cid = self.fallback = fresh_id(self.prefix)
        if cid not in self.ids:
            self.ids.append(cid)
        return cid


def _close_in_background(agen: Any) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is None:
        return
    task = asyncio.ensure_future(aclose())
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def call_model(run: ModelCallRun, provider: Provider, request: LlmRequest, *,
                     call_id: str | None = None) -> LlmResponse | ModelCallFailed:
    """``call_id``: default ``<turn>:<iteration>``; a second call of one iteration (the
    windowed resend after a context overflow) names its own."""
    policy = run.retry_policy
    scrub = provider_scrub(provider)
    attempts: list[LlmAttempt] = []
    call_id = call_id or f"{run.turn_id}:{request.protocol_iteration}"
    attempt = 0
    try:
        while True:
            attempt += 1
            prose, reasoning = _Rows("prose:"), _Rows("reasoning:")
            run.partial_prose = []
            started_ms = int(time.time() * 1000)
            t0 = time.perf_counter()
            agen = provider.stream(request)
            response: LlmResponse | None = None
            reported: usage_rules.TokenUsage | None = None
            streamed = 0  # characters of prose and reasoning received
            try:
                async for item in agen:
                    if type(item) is Completed:  # a provider that does not stream: only this
                        response = item.response
                    elif isinstance(item, TextDelta):
                        streamed += len(item.text)
                        run.partial_prose.append(item.text)
                        run.emit(ev.AssistantProseDelta(item.text), prose.cid(item.item_id))
                    elif isinstance(item, ReasoningTextDelta):
                        streamed += len(item.text)
                        run.emit(ev.ReasoningDelta(item.text), reasoning.cid(item.item_id))
                    elif isinstance(item, UsageReported):
                        reported = item.usage
                    elif isinstance(item, Completed):
                        response = item.response
                if response is None:
                    raise LlmTransportError(
                        "the provider stream ended without a final response",
                        kind=ProviderFailureKind.STREAM, retryable=True,
                    )
            except asyncio.CancelledError:
                _close_in_background(agen)
                # the provider bills a cut stream: count what it reported, else an estimate
                estimated = reported is None
                usage = (usage_rules.estimate_usage(request.size_chars(), streamed)
                         if reported is None else reported)
                attempts.append(LlmAttempt(attempt, started_ms, _ms(t0), "interrupted",
                                           usage=usage, estimated=estimated))
                run.count_cut_usage(usage, request.protocol_iteration, estimated=estimated)
                raise
            except LlmTransportError as err:
                _scrub_error(err, scrub)
                delay = policy.delay(attempt, err.retry_after) if err.retryable else None
                step = decide_retry(attempt=attempt, max_attempts=policy.max_attempts,
                                    retryable=bool(err.retryable),
                                    showed_deltas=bool(prose.ids or reasoning.ids))
                attempts.append(LlmAttempt(
                    attempt, started_ms, _ms(t0), "failed", error=err.message,
                    error_kind=err.kind.value, request_id=err.request_id,
                    retry_delay_s=delay if step.retry else None,
                ))
                if not step.retry:
                    return ModelCallFailed(err)
                if step.reset:
                    run.emit_independent(ev.ModelAttemptReset(prose.ids, reasoning.ids))
                    run.partial_prose = []
                run.emit_independent(ev.RetryStatus(
                    wait_seconds=delay or 0.0, attempt=attempt,
                    max_attempts=policy.max_attempts, reason=err.message,
                ))
                log.warning("turn %s model call %s attempt %d/%d failed (%s); retrying in %.1f s: %s",
                            run.turn_id, call_id, attempt, policy.max_attempts, err.kind.value,
                            delay or 0.0, err.message)
                if delay:
                    await asyncio.sleep(delay)
                continue
            except Exception as err:  # a provider bug: never retried, never raised
                attempts.append(LlmAttempt(attempt, started_ms, _ms(t0), "failed",
                                           error=scrub(repr(err)), error_kind="unknown"))
                return ModelCallFailed(LlmTransportError(
                    scrub(f"provider raised {type(err).__name__}: {err}"),
                    kind=ProviderFailureKind.UNKNOWN,
                ))
            attempts.append(LlmAttempt(
                attempt, started_ms, _ms(t0), "completed", usage=response.usage,
                request_id=_opt(scrub, response.request_id),
                served_model=_opt(scrub, response.served_model),
            ))
            return response
    finally:
        run.llm_calls.append(
            LlmCallRecord(call_id, request.model, request.protocol_iteration, tuple(attempts))
        )


_SCRUBS: dict[type, bool] = {}


def _scrubs(provider: object) -> TypeGuard[ScrubsSecrets]:
    """Whether the provider offers ``scrub`` (a runtime Protocol check costs ~10 us, so it
    is made once per provider class)."""
    cls = type(provider)
    known = _SCRUBS.get(cls)
    if known is None:
        known = _SCRUBS[cls] = issubclass(cls, ScrubsSecrets)
    return known


def provider_scrub_value(provider: object) -> Callable[[Any], Any] | None:
    """The provider's ``scrub_value`` (its own key out of the user's data, e.g. a tool's
    output), if it has one."""
    scrub = getattr(provider, "scrub_value", None)
    return scrub if callable(scrub) else None


def provider_scrub(provider: object) -> Callable[[str], str]:
    """The scrubber for text that may hold this provider's key: its own ``scrub`` when it
    has one, else credential shapes only."""
    return provider.scrub if _scrubs(provider) else scrub_shapes


def _scrub_error(err: LlmTransportError, scrub: Callable[[str], str]) -> None:
    err.message = scrub(err.message)
    err.args = (err.message,)
    err.request_id = _opt(scrub, err.request_id)
    err.code = _opt(scrub, err.code)


def _opt(scrub: Callable[[str], str], text: str | None) -> str | None:
    return None if text is None else scrub(text)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


log = logging.getLogger("lash_nb.retry")  # one WARNING per retried model attempt (scrubbed text)
