"""OpenAI-compatible Chat Completions (OpenAI, OpenRouter, Ollama, vLLM, DeepSeek, ...).

Streaming parse: prose ``delta.content`` -> :class:`TextDelta`; ``delta.reasoning_content`` /
``delta.reasoning`` -> :class:`ReasoningTextDelta`; ``delta.tool_calls`` fragments are
assembled by ``index`` (a new ``id`` on a used index starts a new call); ``usage`` is taken
from the last chunk that carries it (overwritten, never summed). Terminal evidence is
required: a stream that ends without a non-empty ``finish_reason`` is a retryable stream
error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from lash_nb._core.graph import GraphView
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

from . import media
from .exchange import ATTEMPT_TIMEOUT_S, BEARER, HttpProvider, shown_url
from .sse import MAX_EVENT_BYTES, SseEvent

FINISH_REASONS = {
    "stop": TerminalReason.STOP,
    "tool_calls": TerminalReason.TOOL_USE,
    "function_call": TerminalReason.TOOL_USE,
    "length": TerminalReason.OUTPUT_LIMIT,
    "content_filter": TerminalReason.CONTENT_FILTER,
    "error": TerminalReason.PROVIDER_ERROR,
}


def usage_from_chat(usage: Mapping[str, Any]) -> TokenUsage:
    """Chat Completions usage -> five buckets; ``input_tokens`` is the uncached input."""
    prompt = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0)
    out_details = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        input_tokens=max(prompt - cached - written, 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_input_tokens=cached,
        cache_write_input_tokens=written,
        reasoning_output_tokens=int(out_details.get("reasoning_tokens") or 0),
    )


_NO_BLOBS: Mapping[str, bytes] = {}


def chat_messages(request: LlmRequest) -> list[dict[str, Any]]:
    """Session messages -> Chat Completions ``messages`` (system prompt first)."""
    out: list[dict[str, Any]] = []
    if request.system_prompt:
        out.append({"role": "system", "content": request.system_prompt})
    for message in request.messages:
        out.extend(_chat_message(message, request.attachments))
    return out


def _chat_user_content(message: Message, blobs: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """A user message with attachments: text, ``image_url`` (a data URL) and ``file``
    (``file_data`` a data URL) content parts, in order (``_providers/media.py``)."""
    return media.content_blocks(
        message, blobs, provider="the OpenAI-compatible chat API",
        text=lambda t: {"type": "text", "text": t},
        image=lambda ref, data: {"type": "image_url", "image_url": {"url": media.data_url(ref, data)}},
        pdf=lambda ref, data: {"type": "file", "file": {"filename": media.file_name(ref),
                                                        "file_data": media.data_url(ref, data)}})


def _chat_message(message: Message, blobs: Mapping[str, bytes] = _NO_BLOBS) -> list[dict[str, Any]]:
    texts = [p.content for p in message.parts if p.kind in (PartKind.TEXT, PartKind.PROSE) and p.content]
    results = [
        {"role": "tool", "tool_call_id": p.tool_call_id or "", "content": p.content}
        for p in message.tool_results()
    ]
    if message.role is Role.SYSTEM:
        return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []
    if message.role is Role.USER:
        if media.has_attachments(message):
            return [*results, {"role": "user", "content": _chat_user_content(message, blobs)}]
        return results + ([{"role": "user", "content": "\n\n".join(texts)}] if texts else [])
    if message.role is Role.ASSISTANT:
        calls = [
            {"id": p.tool_call_id or "", "type": "function",
             "function": {"name": p.tool_name or "", "arguments": p.content or "{}"}}
            for p in message.tool_calls()
        ]
        if not texts and not calls:
            return results
        entry: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
        if calls:
            entry["tool_calls"] = calls
        return [entry, *results]
    return []  # event messages are session bookkeeping, not model input


# stands in for the messages while a body is encoded (here and in anthropic.py)
MESSAGES_MARK = f"lash-messages-{uuid.uuid4().hex}"
MESSAGES_MARK_JSON = json.dumps([MESSAGES_MARK])


class ChatMessagesCache:
    """The JSON of a history's Chat Completions ``messages``, kept between model calls.

    A turn's requests carry the active path as a :class:`GraphView`, whose list only grows
    in place; so the encoded entries of ``list[:n]`` stay valid and a later call encodes only
    the messages added since (the whole history was re-encoded on every call: 31 ms per call
    at 1,000 turns, 201 ms at 10,000). A few histories are kept (one provider may serve
    several sessions); any other sequence is encoded in full each time."""

    KEEP = 8

    def __init__(self) -> None:
        self._by_list: dict[int, tuple[list[Message], int, bytearray]] = {}

    def encoded(self, messages: Any, blobs: Mapping[str, bytes] = _NO_BLOBS) -> bytearray | None:
        """``", "``-joined JSON of the entries of ``messages`` (None: not a GraphView)."""
        if not isinstance(messages, GraphView):
            return None
        msgs, m = messages.backing()
        got = self._by_list.pop(id(msgs), None)
        if got is None or got[0] is not msgs or got[1] > m:
            got = (msgs, 0, bytearray())
        _, done, text = got
        for message in msgs[done:m]:
            entries = (_chat_message(message, blobs) if media.has_attachments(message)
                       else _chat_message(message))
            for entry in entries:
                if text:
                    text += b", "
                text += json.dumps(entry).encode()
        self._by_list[id(msgs)] = (msgs, m, text)  # re-inserted: the newest last
        while len(self._by_list) > self.KEEP:
            del self._by_list[next(iter(self._by_list))]
        return text


def _tool_choice(choice: str) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "function": {"name": choice}}


def chat_tools(request: LlmRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of a Chat Completions body (also LiteLLM's arguments)."""
    return {"tools": [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                        "parameters": dict(t.input_schema)}}
                      for t in request.tools],
            "tool_choice": _tool_choice(request.tool_choice)}


@dataclass
class _ToolSlot:
    call_id: str | None = None
    name: str = ""
    args: list[str] = field(default_factory=list)


@dataclass
class ChatAccumulator:
    """Folds Chat Completions chunks into deltas and one final response."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    slots: list[_ToolSlot] = field(default_factory=list)
    by_index: dict[Any, _ToolSlot] = field(default_factory=dict)
    usage: TokenUsage = ZERO_USAGE
    finish_reason: str | None = None
    response_id: str | None = None
    model: str | None = None
    started: bool = False

    def apply(self, chunk: Mapping[str, Any]) -> list[LlmStreamEvent]:
        self.response_id = self.response_id or chunk.get("id")
        self.model = self.model or chunk.get("model")
        if chunk.get("usage"):
            self.usage = usage_from_chat(chunk["usage"])
        out: list[LlmStreamEvent] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self.reasoning.append(reasoning)
                out.append(ReasoningTextDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                out.append(TextDelta(content))
            for position, call in enumerate(delta.get("tool_calls") or ()):
                self._tool_delta(call, position)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        self.started = self.started or bool(out)
        return out

    def _tool_delta(self, call: Mapping[str, Any], position: int) -> None:
        index = call.get("index", position)
        call_id = call.get("id")
        slot = self.by_index.get(index)
        if slot is None or (call_id and slot.call_id and call_id != slot.call_id):
            slot = _ToolSlot()
            self.slots.append(slot)
            self.by_index[index] = slot
        if call_id:
            slot.call_id = str(call_id)
        function = call.get("function") or {}
        if function.get("name") and not slot.name:
            slot.name = str(function["name"])
        args = function.get("arguments")
        if isinstance(args, str):
            slot.args.append(args)
        elif isinstance(args, dict):
            slot.args.append(json.dumps(args))

    def response(self, request_id: str | None) -> LlmResponse:
        parts: list[LlmPart] = []
        if self.reasoning:
            parts.append(LlmPart.reasoning("".join(self.reasoning)))
        if self.text:
            parts.append(LlmPart.text_part("".join(self.text)))
        # a call sent without an id gets one unique in any session (a provider switched to
        # later refuses a history whose call ids repeat)
        parts.extend(LlmPart.tool_call(slot.call_id or f"call_{uuid.uuid4().hex[:16]}",
                                       slot.name, "".join(slot.args) or "{}") for slot in self.slots)
        reason = FINISH_REASONS.get(self.finish_reason or "", TerminalReason.UNKNOWN)
        return LlmResponse(
            parts=tuple(parts), usage=self.usage, terminal_reason=reason,
            request_id=request_id, response_id=self.response_id, served_model=self.model,
            finish_reason=self.finish_reason,
        )


class OpenAICompatible(HttpProvider[ChatAccumulator]):
    """A Chat Completions provider. ``api_key`` falls back to ``$api_key_env``; a server that
    needs no key (Ollama, a local vLLM) works without one. ``streaming=False`` sends
    ``stream: false`` and parses one JSON body."""

    terminal_evidence = "a finish_reason"

    def __init__(
        self,
        base_url: str = "https://api.openai.com/v1",
        *,
        api_key: str | None = None,
        model: str | None = None,
        headers: Mapping[str, str] | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 300.0,
        chunk_timeout: float = 120.0,
        attempt_timeout: float | None = ATTEMPT_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
        kind: str = "openai-compatible",
        streaming: bool = True,
        max_tokens_field: str = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.streaming = streaming
        self._setup_http(kind=kind, base_url=base_url, model=model, api_key=api_key,
                         api_key_env=api_key_env, headers=headers, transport=transport,
                         timeout=timeout, chunk_timeout=chunk_timeout,
                         attempt_timeout=attempt_timeout, max_event_bytes=max_event_bytes)
        self._max_tokens_field = max_tokens_field
        self._extra_body = dict(extra_body or {})
        self._messages_cache = ChatMessagesCache()

    def __repr__(self) -> str:
        key = self._key_state
        return (f"OpenAICompatible(kind={self.kind!r}, base_url={shown_url(self.base_url)!r}, "
                f"model={self.model!r}, api_key={key}, streaming={self.streaming})")

    def payload(self, request: LlmRequest, *, _messages: Any = None) -> dict[str, Any]:
        model = self._model(request)
        messages = chat_messages(request) if _messages is None else _messages
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": self.streaming}
        if self.streaming:
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body.update(chat_tools(request))
        if request.max_output_tokens:
            body[self._max_tokens_field] = request.max_output_tokens
        body.update(self._extra_body)
        return body

    def build_http_request(self, request: LlmRequest) -> httpx.Request:
        """The exact HTTP request :meth:`stream` sends (for inspection and tests)."""
        return self._post(f"{self._base}/chat/completions", self.body_bytes(request), auth=BEARER)

    def body_bytes(self, request: LlmRequest) -> bytes:
        """``json.dumps(self.payload(request)).encode()``, with the history's messages
        encoded once per message across calls (:class:`ChatMessagesCache`)."""
        cached = self._messages_cache.encoded(request.messages, request.attachments)
        if cached is not None:
            text = json.dumps(self.payload(request, _messages=[MESSAGES_MARK]))
            head, mark, tail = text.partition(MESSAGES_MARK_JSON)
            if mark and MESSAGES_MARK not in tail:  # else extra_body replaced the messages
                system = (json.dumps({"role": "system", "content": request.system_prompt}).encode()
                          if request.system_prompt else b"")
                sep = b", " if system and cached else b""
                return b"".join((head.encode(), b"[", system, sep, cached, b"]", tail.encode()))
        return json.dumps(self.payload(request)).encode()

    def _accumulator(self, request: LlmRequest) -> ChatAccumulator:
        return ChatAccumulator()

    def _skips(self, event: SseEvent, acc: ChatAccumulator, meta: dict[str, Any]) -> bool:
        if event.data.strip() == "[DONE]":
            meta["draining"] = True
            return True
        return bool(meta.get("draining"))

    def _fold(self, acc: ChatAccumulator, data: Mapping[str, Any], event: SseEvent | None,
              meta: dict[str, Any]) -> list[LlmStreamEvent]:
        if data.get("error"):  # in a stream or a buffered body: a gateway's 200 with an error
            raise self._stream_error(data, acc, meta)
        return acc.apply(data)

    def _terminal(self, acc: ChatAccumulator) -> bool:
        return bool(acc.finish_reason) or not self.streaming  # a buffered body is whole
