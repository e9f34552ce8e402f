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
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import httpx

from lash_nb._core.llm import LlmRequest, LlmStreamEvent, LlmTransportError
from lash_nb._errors import ConfigurationError

from . import classify
from .exchange import ATTEMPT_TIMEOUT_S, HttpProvider, parse_json_event
from .responses_parse import ResponsesAccumulator, responses_input
from .sse import MAX_EVENT_BYTES

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


class OpenAIResponses(HttpProvider):
    """The OpenAI Responses API. ``api_key`` falls back to ``$OPENAI_API_KEY``, ``base_url``
    to ``$OPENAI_BASE_URL`` (else ``https://api.openai.com/v1``), and the organization and
    project headers to ``$OPENAI_ORG_ID`` / ``$OPENAI_PROJECT_ID``, as the official SDK does.

    ``reasoning_effort`` (``minimal`` ... ``high``) and ``reasoning_summary`` (``auto``,
    ``concise``, ``detailed``, or None for no summaries) are sent to reasoning models only
    (``o*``, ``gpt-5*``, ``*codex*``), or to any model when ``reasoning=True``."""

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
        self.kind = kind
        base = base_url or os.environ.get("OPENAI_BASE_URL", "").strip() or "https://api.openai.com/v1"
        self.base_url = base.rstrip("/")
        self.model = model
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
        self._setup_http(kind=kind, api_key=api_key, api_key_env=api_key_env,
                         headers={**sdk_headers, **dict(headers or {})}, transport=transport,
                         timeout=timeout, chunk_timeout=chunk_timeout,
                         attempt_timeout=attempt_timeout, max_event_bytes=max_event_bytes)
        self._extra_body = dict(extra_body or {})

    def __repr__(self) -> str:
        return (f"OpenAIResponses(kind={self.kind!r}, base_url={self.base_url!r}, "
                f"model={self.model!r}, api_key={self._key_state})")

    def payload(self, request: LlmRequest) -> dict[str, Any]:
        model = request.model or self.model
        if not model:
            raise ConfigurationError(f"{self.kind}: no model; pass model= to the provider or the request")
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
        headers = {"content-type": "application/json", "accept": "text/event-stream",
                   **self._headers}
        if self._secret:
            headers["authorization"] = f"Bearer {self._secret.reveal()}"
        return httpx.Request("POST", f"{self.base_url}/responses", headers=headers,
                             content=json.dumps(self.payload(request)).encode())

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]:
        http_request = self.build_http_request(request)
        acc = ResponsesAccumulator(model=request.model or self.model or "",
                                   scrub_exact=self._exchange.scrubber.scrub_exact)
        meta: dict[str, Any] = {"request_id": None}
        guard = self._delta_scrub()
        try:
            async with aclosing(self._exchange.sse(http_request, key_hint=self._key_hint,
                                                   meta=meta)) as events:
                async for sse in events:
                    if acc.terminal or sse.data.strip() == "[DONE]":
                        meta["draining"] = True  # read to the end so the connection is reused
                        continue
                    data = parse_json_event(self.kind, sse, meta["request_id"], acc.started,
                                            self._exchange.scrub)
                    if not isinstance(data, dict):
                        continue
                    failure = acc.failure(data)
                    if failure is not None:
                        raise classify.classify_stream_error(
                            failure, provider=self.kind, request_id=meta["request_id"],
                            output_started=acc.started, scrub=self._exchange.scrub)
                    for event in guard.apply(acc.apply(data)):
                        yield event
                    if _finished(acc):  # the answer is whole: a silent server only ends it
                        meta["draining"] = True
        except LlmTransportError as err:
            for event in self._failed_stream(err, acc, guard, meta):
                yield event
            raise
        for event in self._end_stream(acc, guard, meta, terminal=bool(acc.terminal), what="response.completed"):
            yield event


def _finished(acc: ResponsesAccumulator) -> bool:
    """Read after ``acc.apply`` changed it (a plain ``acc.terminal`` here reads, to a type
    checker, as the ``False`` the loop's first test left)."""
    return acc.terminal
