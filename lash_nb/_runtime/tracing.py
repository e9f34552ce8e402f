"""OpenTelemetry spans of turns, model calls and tool calls (OpenTelemetry GenAI conventions).

Off by default; ``lash_nb.enable_tracing()`` turns it on for the process (the extra ``otel``
installs opentelemetry-api and -sdk; lash_nb needs only the API, the application owns the SDK,
its exporters and its ``TracerProvider``). ``disable_tracing()`` turns it off again.

Theory of operation
- Spans are written when a turn has committed its terminal record, from the records the
  commit holds (the turn's start and duration, each model call's attempts, each tool call's
  start and duration), with their recorded start and end times. So a turn has exactly one
  span tree, whatever ended it (finished, stopped, cancelled), tracing adds no await to a
  running turn, and a failure to export can never fail a turn (it is logged on
  ``lash_nb.tracing`` and dropped).
- One span per turn (``invoke_agent lash_nb``), a child per model call (``chat <model>``,
  from its first attempt's start to its last attempt's end; a call retried after a failed
  attempt is one span, its attempts are span events) and a child per tool call
  (``execute_tool <tool>``). Every span carries ``gen_ai.conversation.id`` (the session id)
  and ``lash_nb.turn.id``.
- Content is not recorded: no prompt, answer, tool arguments or tool output, unless
  ``enable_tracing(capture_content=True)``; then it is scrubbed of credential shapes first.
  Keys are never attributes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from .._core.records import ToolCallRecord, TurnResult
from .._core.secrets import scrub
from .._core.usage import LlmCallRecord
from .._errors import ConfigurationError
from .._version import __version__

log = logging.getLogger("lash_nb.tracing")

# a provider id (ADR 28) -> the GenAI conventions' gen_ai.provider.name, where one fits
PROVIDER_NAMES = {"openai-compatible": "openai", "openai-responses": "openai",
                  "anthropic": "anthropic", "google": "gcp.gemini"}
_CONTENT_LIMIT = 8192


class _Tracing:
    tracer: Any = None
    capture_content = False


_STATE = _Tracing()


def enable_tracing(tracer_provider: Any = None, *, capture_content: bool = False) -> None:
    """Write an OpenTelemetry span per turn, model call and tool call from now on.

    ``tracer_provider``: an ``opentelemetry.sdk.trace.TracerProvider`` (default: the global
    one). ``capture_content``: also record prompts, answers and tool arguments/results
    (scrubbed of credential shapes); off by default."""
    try:
        from opentelemetry import trace
    except ImportError as err:
        raise ConfigurationError(
            "enable_tracing needs OpenTelemetry; pip install 'lash-nb-core[otel]' (or "
            "opentelemetry-api and opentelemetry-sdk)") from err
    _STATE.tracer = trace.get_tracer("lash_nb", __version__, tracer_provider=tracer_provider)
    _STATE.capture_content = capture_content


def disable_tracing() -> None:
    """Stop writing spans (the spans written so far stay with the exporter)."""
    _STATE.tracer = None
    _STATE.capture_content = False


def tracing_enabled() -> bool:
    return _STATE.tracer is not None


def record_turn(result: TurnResult, *, provider_kind: str, model: str, prompt: str = "",
                finish_reasons: Mapping[str, str] | None = None) -> None:
    """The spans of one committed turn (nothing when tracing is off). Never raises."""
    tracer = _STATE.tracer
    if tracer is None:
        return
    try:
        _turn_spans(tracer, result, provider_kind=provider_kind, model=model, prompt=prompt,
                    finish_reasons=finish_reasons or {})
    except Exception:  # an exporter's or SDK's failure is not the turn's
        log.warning("tracing: the spans of turn %s were not written", result.turn_id,
                    exc_info=True)


def _ns(ms: float) -> int:
    return int(ms * 1_000_000)


def _content(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return scrub(text)[:_CONTENT_LIMIT]


def _turn_spans(tracer: Any, result: TurnResult, *, provider_kind: str, model: str,
                prompt: str, finish_reasons: Mapping[str, str]) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    common = {"gen_ai.conversation.id": result.session_id, "lash_nb.turn.id": result.turn_id}
    provider = PROVIDER_NAMES.get(provider_kind, provider_kind)
    start = result.execution.started_at_ms
    end = start + result.execution.duration_ms
    turn_attrs: dict[str, Any] = {
        **common, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "lash_nb",
        "gen_ai.provider.name": provider, "gen_ai.request.model": model,
        "lash_nb.turn.outcome": str(result.outcome), **_usage_attrs(result.usage),
    }
    if _STATE.capture_content:
        if prompt:
            turn_attrs["gen_ai.input.messages"] = _content(
                [{"role": "user", "parts": [{"type": "text", "content": prompt}]}])
        text = result.assistant_output.safe_text
        if text:
            turn_attrs["gen_ai.output.messages"] = _content(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}]}])
    span = tracer.start_span("invoke_agent lash_nb", kind=trace.SpanKind.INTERNAL,
                             attributes=turn_attrs, start_time=_ns(start))
    if result.outcome.is_stopped and result.outcome.stop is not None:
        span.set_attribute("error.type", result.outcome.stop.value)
        if result.outcome.stop.value != "cancelled":
            span.set_status(Status(StatusCode.ERROR, str(result.outcome)))
    context = trace.set_span_in_context(span)
    ends = [_call_span(tracer, context, call, common, provider, finish_reasons.get(call.call_id))
            for call in result.llm_calls]
    ends += [_tool_span(tracer, context, tool, common, start) for tool in result.tool_calls]
    # starts are wall-clock milliseconds, durations a finer clock: a child may end a few
    # microseconds past the turn's recorded end, and a parent never ends before its children
    span.end(end_time=max([_ns(end), *ends]))


def _usage_attrs(usage: Any) -> dict[str, int]:
    return {"gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cache_read_input_tokens,
            "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_input_tokens,
            "gen_ai.usage.reasoning.output_tokens": usage.reasoning_output_tokens}


def _call_span(tracer: Any, context: Any, call: LlmCallRecord, common: Mapping[str, Any],
               provider: str, finish_reason: str | None) -> int:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    if not call.attempts:
        return 0
    first, last = call.attempts[0], call.attempts[-1]
    attrs: dict[str, Any] = {
        **common, "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
        "gen_ai.request.model": call.model, "lash_nb.call.id": call.call_id,
        "lash_nb.call.attempts": len(call.attempts), **_usage_attrs(call.usage),
    }
    if last.served_model:
        attrs["gen_ai.response.model"] = last.served_model
    if last.request_id:
        attrs["lash_nb.request_id"] = last.request_id
    if finish_reason:
        attrs["gen_ai.response.finish_reasons"] = (finish_reason,)
    span = tracer.start_span(f"chat {call.model}", context=context, kind=trace.SpanKind.CLIENT,
                             attributes=attrs, start_time=_ns(first.started_at_ms))
    for a in call.attempts:
        span.add_event("attempt", {"lash_nb.attempt": a.ordinal, "lash_nb.outcome": a.outcome,
                                   **({"error.type": a.error_kind} if a.error_kind else {})},
                       timestamp=_ns(a.started_at_ms + a.duration_ms))
    if last.outcome != "completed":
        span.set_attribute("error.type", last.error_kind or last.outcome)
        if last.outcome == "failed":
            span.set_status(Status(StatusCode.ERROR, last.error_kind or "failed"))
    end = _ns(last.started_at_ms + last.duration_ms)
    span.end(end_time=end)
    return end


def _tool_span(tracer: Any, context: Any, tool: ToolCallRecord, common: Mapping[str, Any],
               turn_start_ms: int) -> int:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    attrs: dict[str, Any] = {**common, "gen_ai.operation.name": "execute_tool",
                             "gen_ai.tool.name": tool.tool, "gen_ai.tool.call.id": tool.call_id,
                             "gen_ai.tool.type": "function", "lash_nb.tool.status": tool.status}
    if _STATE.capture_content:
        attrs["gen_ai.tool.call.arguments"] = _content(tool.args)
        attrs["gen_ai.tool.call.result"] = _content(tool.output)
    started = tool.started_at_ms or turn_start_ms  # 0: a record that did not keep its start
    span = tracer.start_span(f"execute_tool {tool.tool}", context=context,
                             kind=trace.SpanKind.INTERNAL, attributes=attrs,
                             start_time=_ns(started))
    if tool.status != "success":
        span.set_attribute("error.type", tool.status)
        if tool.status == "failure":
            span.set_status(Status(StatusCode.ERROR, "the tool failed"))
    end = _ns(started + tool.duration_ms)
    span.end(end_time=end)
    return end
