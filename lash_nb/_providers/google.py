"""Google Gemini API (``models/{model}:streamGenerateContent?alt=sse``).

Stream parse: each event is a whole ``GenerateContentResponse``; the first candidate's parts
are ``text`` -> :class:`TextDelta`, ``text`` with ``thought: true`` -> :class:`ReasoningTextDelta`,
and ``functionCall`` (arguments arrive whole, as an object). ``usageMetadata`` is cumulative in
every event, so the last one wins (never summed). Terminal evidence is a ``finishReason`` (or a
``promptFeedback.blockReason``); a stream that ends without one is a retryable stream error.

A part's ``thoughtSignature`` (Gemini 2.5+/3 sign their reasoning; Gemini 3 refuses a function
call sent back without it) is kept in the part's ``replay`` and sent back to the same model
(ADR 0030). ``code_assist_project=`` speaks the Cloud Code Assist envelope (``v1internal``,
``{"model", "project", "request"}`` in, ``{"response"}`` out) with a bearer token.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from lash_nb._core.attachments import AttachmentRef
from lash_nb._core.llm import (
    LlmPart,
    LlmRequest,
    LlmResponse,
    LlmStreamEvent,
    ReasoningTextDelta,
    TerminalReason,
    TextDelta,
)
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._core.usage import ZERO_USAGE, TokenUsage

from . import media, replay
from .exchange import ATTEMPT_TIMEOUT_S, BEARER, HttpProvider, shown_url
from .sse import MAX_EVENT_BYTES, SseEvent

REPLAY_API = "google"
FINISH_REASONS = {
    "STOP": TerminalReason.STOP,
    "MAX_TOKENS": TerminalReason.OUTPUT_LIMIT,
    "SAFETY": TerminalReason.CONTENT_FILTER,
    "RECITATION": TerminalReason.CONTENT_FILTER,
    "BLOCKLIST": TerminalReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": TerminalReason.CONTENT_FILTER,
    "SPII": TerminalReason.CONTENT_FILTER,
    "IMAGE_SAFETY": TerminalReason.CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": TerminalReason.PROVIDER_ERROR,
}


def usage_from_google(meta: Mapping[str, Any]) -> TokenUsage:
    """``usageMetadata`` -> five buckets. ``promptTokenCount`` includes the cached tokens;
    ``output_tokens`` counts the thoughts too (as the OpenAI providers do)."""
    prompt = int(meta.get("promptTokenCount") or 0)
    cached = int(meta.get("cachedContentTokenCount") or 0)
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return TokenUsage(input_tokens=max(prompt - cached, 0),
                      output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
                      cache_read_input_tokens=cached, cache_write_input_tokens=0,
                      reasoning_output_tokens=thoughts)


# --------------------------------------------------------------------------- request


def google_contents(request: LlmRequest, model: str) -> list[dict[str, Any]]:
    """Session messages -> ``contents`` (roles ``user`` / ``model``; neighbours merge)."""
    names = {p.tool_call_id: p.tool_name for m in request.messages for p in m.tool_calls()}
    out: list[dict[str, Any]] = []
    for message in request.messages:
        for role, parts in _parts(message, model, names, request.attachments):
            if out and out[-1]["role"] == role:
                out[-1]["parts"].extend(parts)
            else:
                out.append({"role": role, "parts": parts})
    return out


def _inline(ref: AttachmentRef, data: bytes) -> dict[str, Any]:
    return {"inline_data": {"mime_type": ref.media_type, "data": media.b64(data)}}


def _parts(
    message: Message, model: str, names: Mapping[str | None, str | None],
    blobs: Mapping[str, bytes] | None = None,
) -> list[tuple[str, list[dict[str, Any]]]]:
    texts: list[dict[str, Any]]
    if message.role is Role.USER and media.has_attachments(message):
        # images and PDFs as inline_data parts, text files as text (``_providers/media.py``)
        texts = media.content_blocks(message, blobs or {}, provider="the Gemini API",
                                     text=lambda t: {"text": t}, image=_inline, pdf=_inline)
    else:
        texts = [{"text": p.content} for p in message.parts
                 if p.kind in (PartKind.TEXT, PartKind.PROSE) and p.content]
    results: list[dict[str, Any]] = [{"functionResponse": {"name": p.tool_name or names.get(p.tool_call_id) or "",
                                     "response": _tool_response(p.content, p.is_error)}}
               for p in message.tool_results()]
    if message.role is Role.USER:
        given = results + texts
        return [("user", given)] if given else []
    if message.role is not Role.ASSISTANT:
        return []  # system text goes to systemInstruction; events are bookkeeping
    parts: list[dict[str, Any]] = []
    for p in message.parts:
        signature = _signature(p.replay, model)
        if p.kind is PartKind.REASONING and signature:
            parts.append({"text": p.content, "thought": True, "thoughtSignature": signature})
        elif p.kind is PartKind.TOOL_CALL:
            call = {"functionCall": {"name": p.tool_name or "", "args": _json_object(p.content)}}
            parts.append({**call, "thoughtSignature": signature} if signature else call)
    out = [("model", texts + parts)] if texts or parts else []
    return out + ([("user", results)] if results else [])


def _tool_response(content: str, is_error: bool) -> dict[str, Any]:
    value = _json_object(content, keep=True)
    body = value if isinstance(value, dict) else {"result": content}
    return {"error": body} if is_error else body


def _json_object(raw: str | None, *, keep: bool = False) -> Any:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return None if keep else {}
    return value if isinstance(value, dict) or keep else {}


def _signature(raw: str | None, model: str) -> str | None:
    data = replay.kept(raw, REPLAY_API, model)
    sig = data.get("thoughtSignature") if data is not None else None
    return sig if isinstance(sig, str) and sig else None


def _tool_config(choice: str) -> dict[str, Any]:
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY", "any": "ANY"}
    if choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


# --------------------------------------------------------------------------- stream


@dataclass
class GeminiAccumulator:
    """Folds ``GenerateContentResponse`` events into deltas and one final response."""

    model: str
    parts: list[LlmPart] = field(default_factory=list)  # in arrival order, runs merged
    usage: TokenUsage = ZERO_USAGE
    finish_reason: str | None = None
    blocked: str | None = None
    response_id: str | None = None
    served_model: str | None = None
    started: bool = False

    @property
    def terminal(self) -> bool:
        return bool(self.finish_reason or self.blocked)

    def apply(self, chunk: Mapping[str, Any]) -> list[LlmStreamEvent]:
        self.response_id = self.response_id or chunk.get("responseId")
        self.served_model = self.served_model or chunk.get("modelVersion")
        if isinstance(chunk.get("usageMetadata"), dict):
            self.usage = usage_from_google(chunk["usageMetadata"])
        feedback = chunk.get("promptFeedback") or {}
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self.blocked = str(feedback["blockReason"])
        out: list[LlmStreamEvent] = []
        for candidate in chunk.get("candidates") or ():
            if not isinstance(candidate, dict) or candidate.get("index", 0) != 0:
                continue
            for part in (candidate.get("content") or {}).get("parts") or ():
                if isinstance(part, dict):
                    out.extend(self._part(part))
            if candidate.get("finishReason"):
                self.finish_reason = str(candidate["finishReason"])
        self.started = self.started or bool(out)
        return out

    def _part(self, part: Mapping[str, Any]) -> list[LlmStreamEvent]:
        signature = part.get("thoughtSignature")
        kept = (replay.keep(REPLAY_API, self.model, "thoughtSignature", signature)
                if isinstance(signature, str) and signature else None)
        call = part.get("functionCall")
        if isinstance(call, dict):
            args = call.get("args") if isinstance(call.get("args"), dict) else {}
            call_id = str(call.get("id") or f"call_{uuid.uuid4().hex[:16]}")
            self.parts.append(LlmPart("tool_call", call_id=call_id, tool_name=str(call.get("name") or ""),
                                      input_json=json.dumps(args), replay=kept))
            return []
        text = part.get("text")
        kind = "reasoning" if part.get("thought") else "text"
        last = self.parts[-1] if self.parts else None
        if last is not None and last.kind == kind:  # one run of text or thought is one part
            self.parts[-1] = LlmPart(kind, last.text + (text or ""), replay=last.replay or kept)
        elif text or kept:
            self.parts.append(LlmPart(kind, text or "", replay=kept))
        if not isinstance(text, str) or not text:
            return []
        return [ReasoningTextDelta(text) if kind == "reasoning" else TextDelta(text)]

    def response(self, request_id: str | None) -> LlmResponse:
        parts = [p for p in self.parts if p.text or p.replay or p.kind == "tool_call"]
        if self.blocked and not self.finish_reason:
            reason = TerminalReason.CONTENT_FILTER
        elif any(p.kind == "tool_call" for p in parts) and self.finish_reason == "STOP":
            reason = TerminalReason.TOOL_USE
        else:
            reason = FINISH_REASONS.get(self.finish_reason or "", TerminalReason.UNKNOWN)
        return LlmResponse(parts=tuple(parts), usage=self.usage, terminal_reason=reason,
                           request_id=request_id, response_id=self.response_id,
                           served_model=self.served_model,
                           finish_reason=self.finish_reason or self.blocked)


class GoogleGemini(HttpProvider[GeminiAccumulator]):
    """The Gemini API. ``api_key`` falls back to ``$GOOGLE_API_KEY``, then ``$GEMINI_API_KEY``
    (the google-genai SDK's order) and is sent as ``x-goog-api-key``, never in the URL.
    ``thinking_budget`` / ``include_thoughts`` set ``generationConfig.thinkingConfig``.
    ``code_assist_project`` switches to the Cloud Code Assist envelope (the key is then a
    bearer token)."""

    terminal_evidence = "a finishReason"

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        base_url: str = "https://generativelanguage.googleapis.com/v1beta",
        *,
        api_key_env: str | None = None,
        include_thoughts: bool | None = None,
        thinking_budget: int | None = None,
        code_assist_project: str | None = None,
        streaming: bool = True,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 300.0,
        chunk_timeout: float = 120.0,
        attempt_timeout: float | None = ATTEMPT_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
        kind: str = "google",
    ) -> None:
        self.streaming = streaming
        self.include_thoughts = include_thoughts
        self.thinking_budget = thinking_budget
        self.code_assist_project = code_assist_project
        if api_key_env is None:
            api_key_env = "GOOGLE_API_KEY" if os.environ.get("GOOGLE_API_KEY") else "GEMINI_API_KEY"
        self._setup_http(kind=kind, base_url=base_url, model=model, api_key=api_key,
                         api_key_env=api_key_env, headers=headers, transport=transport,
                         timeout=timeout, chunk_timeout=chunk_timeout,
                         attempt_timeout=attempt_timeout, max_event_bytes=max_event_bytes)

    def __repr__(self) -> str:
        return (f"GoogleGemini(base_url={shown_url(self.base_url)!r}, model={self.model!r}, "
                f"api_key={self._key_state}, streaming={self.streaming})")

    def payload(self, request: LlmRequest) -> dict[str, Any]:
        model = self._model(request, "GoogleGemini(...)")
        body: dict[str, Any] = {"contents": google_contents(request, model)}
        system = [request.system_prompt] if request.system_prompt else []
        system += [p.content for m in request.messages if m.role is Role.SYSTEM
                   for p in m.parts if p.content]
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)}
                for t in request.tools]}]
            body["toolConfig"] = _tool_config(request.tool_choice)
        config: dict[str, Any] = {}
        if request.max_output_tokens:
            config["maxOutputTokens"] = request.max_output_tokens
        thinking: dict[str, Any] = {}
        if self.include_thoughts is not None:
            thinking["includeThoughts"] = self.include_thoughts
        if self.thinking_budget is not None:
            thinking["thinkingBudget"] = self.thinking_budget
        if thinking:
            config["thinkingConfig"] = thinking
        if config:
            body["generationConfig"] = config
        if self.code_assist_project is not None:
            if request.session_id:
                body["sessionId"] = request.session_id
            return {"model": model, "project": self.code_assist_project, "request": body}
        return body

    def build_http_request(self, request: LlmRequest) -> httpx.Request:
        """The exact HTTP request :meth:`stream` sends (for inspection and tests)."""
        model = request.model or self.model or ""
        method = "streamGenerateContent" if self.streaming else "generateContent"
        query = "?alt=sse" if self.streaming else ""
        content = json.dumps(self.payload(request)).encode()
        if self.code_assist_project is not None:
            return self._post(f"{self._base}/v1internal:{method}{query}", content, auth=BEARER)
        return self._post(f"{self._base}/models/{model}:{method}{query}", content,
                          auth=("x-goog-api-key", ""))

    def _accumulator(self, request: LlmRequest) -> GeminiAccumulator:
        return GeminiAccumulator(model=request.model or self.model or "")

    def _skips(self, event: SseEvent, acc: GeminiAccumulator, meta: dict[str, Any]) -> bool:
        return False  # events after the finishReason may still carry usage

    def _finished(self, acc: GeminiAccumulator) -> bool:
        return acc.terminal

    def _fold(self, acc: GeminiAccumulator, data: Mapping[str, Any], event: SseEvent | None,
              meta: dict[str, Any]) -> list[LlmStreamEvent]:
        if data.get("error"):
            raise self._stream_error(data, acc, meta)
        inner = data.get("response")
        return acc.apply(inner if isinstance(inner, dict) else data)
