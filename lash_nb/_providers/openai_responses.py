"""OpenAI Responses API (``POST /responses``, streamed), stateless (``store: false``).

Stream parse: ``response.output_text.delta`` -> :class:`TextDelta`;
``response.reasoning_summary_text.delta`` / ``response.reasoning_text.delta`` ->
:class:`ReasoningTextDelta`; ``response.function_call_arguments.delta`` fragments are
assembled per output item; ``response.output_item.done`` carries the finished item (a
reasoning item's ``encrypted_content`` arrives only there). The terminal events are
``response.completed`` and ``response.incomplete`` (their usage is taken once);
``response.failed`` and an ``error`` event raise a classified failure; a stream that ends
without a terminal event is a retryable stream error.

Reasoning across turns: with ``store: false`` the server keeps nothing, so the request asks
for ``reasoning.encrypted_content`` and each reasoning item is kept, as received, in the
reasoning part's ``replay`` (stored in the session graph). The next request sends it back
before the assistant's message and calls, but only to the same model (ADR 0030).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from lash_nb._core.llm import LlmRequest, LlmStreamEvent

from .exchange import ATTEMPT_TIMEOUT_S, BEARER, HttpProvider, shown_url
from .responses_parse import ResponsesAccumulator, responses_input
from .sse import MAX_EVENT_BYTES, SseEvent

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "codex")


def is_reasoning_model(model: str) -> bool:
    """Models that take the ``reasoning`` parameter (a plain ``gpt-4.1`` refuses it)."""
    name = model.rsplit("/", 1)[-1].lower()
    return name.startswith(_REASONING_PREFIXES) or "-codex" in name


def _tool_choice(choice: str) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "name": choice}


class OpenAIResponses(HttpProvider[ResponsesAccumulator]):
    """The OpenAI Responses API. ``api_key`` falls back to ``$OPENAI_API_KEY``, ``base_url``
    to ``$OPENAI_BASE_URL`` (else ``https://api.openai.com/v1``), and the organization and
    project headers to ``$OPENAI_ORG_ID`` / ``$OPENAI_PROJECT_ID``, as the official SDK does.

    ``reasoning_effort`` (``minimal`` ... ``high``) and ``reasoning_summary`` (``auto``,
    ``concise``, ``detailed``, or None for no summaries) are sent to reasoning models only
    (``o*``, ``gpt-5*``, ``*codex*``), or to any model when ``reasoning=True``."""

    terminal_evidence = "response.completed"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        reasoning_effort: str | None = None,
        reasoning_summary: str | None = "auto",
        reasoning: bool | None = None,
        headers: Mapping[str, str] | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 300.0,
        chunk_timeout: float = 120.0,
        attempt_timeout: float | None = ATTEMPT_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
        kind: str = "openai-responses",
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        base = base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or "https://api.openai.com/v1"
        self.reasoning_effort = reasoning_effort
        self.reasoning_summary = reasoning_summary
        self.reasoning = reasoning
        sdk_headers: dict[str, str] = {}
        org = organization if organization is not None else os.environ.get("OPENAI_ORG_ID", "").strip()
        proj = project if project is not None else os.environ.get("OPENAI_PROJECT_ID", "").strip()
        if org:
            sdk_headers["OpenAI-Organization"] = org
        if proj:
            sdk_headers["OpenAI-Project"] = proj
        self._setup_http(kind=kind, base_url=base, model=model, api_key=api_key,
                         api_key_env=api_key_env,
                         headers={**sdk_headers, **dict(headers or {})}, transport=transport,
                         timeout=timeout, chunk_timeout=chunk_timeout,
                         attempt_timeout=attempt_timeout, max_event_bytes=max_event_bytes)
        self._extra_body = dict(extra_body or {})

    def __repr__(self) -> str:
        return (f"OpenAIResponses(kind={self.kind!r}, base_url={shown_url(self.base_url)!r}, "
                f"model={self.model!r}, api_key={self._key_state})")

    def payload(self, request: LlmRequest) -> dict[str, Any]:
        model = self._model(request)
        body: dict[str, Any] = {"model": model, "input": responses_input(request, model),
                                "stream": True, "store": False}
        if request.system_prompt:
            body["instructions"] = request.system_prompt
        if self.reasoning if self.reasoning is not None else is_reasoning_model(model):
            reasoning: dict[str, Any] = {}
            if self.reasoning_effort:
                reasoning["effort"] = self.reasoning_effort
            if self.reasoning_summary:
                reasoning["summary"] = self.reasoning_summary
            if reasoning:
                body["reasoning"] = reasoning
            body["include"] = ["reasoning.encrypted_content"]
        if request.tools:
            body["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                              "parameters": dict(t.input_schema)} for t in request.tools]
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.max_output_tokens:
            body["max_output_tokens"] = request.max_output_tokens
        body.update(self._extra_body)
        return body

    def build_http_request(self, request: LlmRequest) -> httpx.Request:
        """The exact HTTP request :meth:`stream` sends (for inspection and tests)."""
        return self._post(f"{self._base}/responses", json.dumps(self.payload(request)).encode(),
                          auth=BEARER)

    def _accumulator(self, request: LlmRequest) -> ResponsesAccumulator:
        return ResponsesAccumulator(model=request.model or self.model or "",
                                    scrub_exact=self._exchange.scrubber.scrub_exact)

    def _skips(self, event: SseEvent, acc: ResponsesAccumulator, meta: dict[str, Any]) -> bool:
        if acc.terminal or event.data.strip() == "[DONE]":
            meta["draining"] = True
            return True
        return False

    def _fold(self, acc: ResponsesAccumulator, data: Mapping[str, Any], event: SseEvent | None,
              meta: dict[str, Any]) -> list[LlmStreamEvent]:
        failure = acc.failure(data)
        if failure is not None:
            raise self._stream_error(failure, acc, meta)
        return acc.apply(data)

    def _finished(self, acc: ResponsesAccumulator) -> bool:
        return acc.terminal
