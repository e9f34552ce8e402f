"""Anthropic Messages API, streaming.

Stream parse: ``message_start`` (id, model, input usage) -> ``content_block_start`` /
``content_block_delta`` (``text_delta`` -> :class:`TextDelta`, ``thinking_delta`` ->
:class:`ReasoningTextDelta`, ``input_json_delta`` fragments of a ``tool_use`` block) /
``content_block_stop`` -> ``message_delta`` (stop_reason; usage values are cumulative, so the
last one wins, never summed) -> ``message_stop``. An ``error`` event raises a classified
failure. Terminal evidence: ``message_stop`` after ``message_start``; without it the stream
is a retryable stream error.

Extended thinking: a ``thinking`` block (its text and the ``signature_delta`` that closes it)
and a ``redacted_thinking`` block (opaque ``data``) are kept whole in the reasoning part's
``replay``. When thinking is on (``thinking_budget=``), they are sent back, first in their
assistant message, to the model that wrote them (ADR 0030); a block whose text held the
provider's key is not kept for replay (scrubbing it would break its signature).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from lash_nb._core.attachments import AttachmentRef
from lash_nb._core.graph import GraphView
from lash_nb._core.llm import (
    LlmPart,
    LlmRequest,
    LlmResponse,
    LlmStreamEvent,
    ReasoningTextDelta,
    TerminalReason,
    TextDelta,
    UsageReported,
)
from lash_nb._core.records import Message, PartKind, Role
from lash_nb._core.usage import TokenUsage

from . import media, replay
from .exchange import ATTEMPT_TIMEOUT_S, HttpProvider, shown_url
from .openai_compat import MESSAGES_MARK, MESSAGES_MARK_JSON
from .sse import MAX_EVENT_BYTES, SseEvent

API_VERSION = "2023-06-01"
BETA = "fine-grained-tool-streaming-2025-05-14"
STOP_REASONS = {
    "end_turn": TerminalReason.STOP,
    "stop_sequence": TerminalReason.STOP,
    "tool_use": TerminalReason.TOOL_USE,
    "max_tokens": TerminalReason.OUTPUT_LIMIT,
    "refusal": TerminalReason.CONTENT_FILTER,
    "model_context_window_exceeded": TerminalReason.CONTEXT_OVERFLOW,
}
REPLAY_API = "anthropic"
_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
               "cache_read_input_tokens")


def anthropic_messages(request: LlmRequest, thinking_model: str | None = None
                       ) -> tuple[str | None, list[dict[str, Any]]]:
    """Session messages -> (system, Messages API ``messages``); same-role neighbours merge.
    With ``thinking_model``, kept thinking blocks of that model lead their assistant message."""
    system = [request.system_prompt] if request.system_prompt else []
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role is Role.SYSTEM:
            system.extend(p.content for p in message.parts if p.content)
            continue
        for role, blocks in _blocks(message, thinking_model, request.attachments):
            if out and out[-1]["role"] == role:
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": role, "content": blocks})
    for entry in out:  # tool results must lead a user message
        _tool_results_first(entry)
    return ("\n\n".join(system) or None), out


def _media_blocks(message: Message, blobs: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """Text, ``image`` and ``document`` blocks (base64 sources) of a user message with
    attachments, in order (``_providers/media.py``)."""
    def source(ref: AttachmentRef, data: bytes) -> dict[str, Any]:
        return {"type": "base64", "media_type": ref.media_type, "data": media.b64(data)}

    return media.content_blocks(
        message, blobs, provider="the Anthropic Messages API",
        text=lambda t: {"type": "text", "text": t},
        image=lambda ref, data: {"type": "image", "source": source(ref, data)},
        pdf=lambda ref, data: {"type": "document", "source": source(ref, data),
                               "title": media.file_name(ref)})


def _tool_results_first(entry: dict[str, Any]) -> dict[str, Any]:
    if entry["role"] == "user":
        entry["content"].sort(key=lambda b: b["type"] != "tool_result")
    return entry


class AnthropicMessagesCache:
    """The JSON of a history's Messages API ``messages``, kept between model calls (as
    ``openai_compat.ChatMessagesCache``: a GraphView's list only grows in place). Same-role
    neighbours merge into one entry, so the last entry stays open (it may still grow) and is
    encoded on each call; the entries before it are encoded once. ``system`` messages of the
    history are kept as parts. Keyed by the list and the thinking model (it changes blocks)."""

    KEEP = 8

    def __init__(self) -> None:
        self._by_key: dict[tuple[int, str | None], _Encoded] = {}

    def encoded(self, messages: Any, thinking_model: str | None,
                blobs: Mapping[str, bytes] | None = None,
                ) -> tuple[list[str], tuple[bytes | bytearray, ...]] | None:
        """(system parts of the history, chunks whose join is the ``", "``-joined JSON of the
        entries); None: not a GraphView. The chunks are not copied: join them once."""
        if not isinstance(messages, GraphView):
            return None
        msgs, m = messages.backing()
        key = (id(msgs), thinking_model)
        got = self._by_key.pop(key, None)
        if got is None or got.msgs is not msgs or got.done > m:
            got = _Encoded(msgs)
        for message in msgs[got.done:m]:
            if message.role is Role.SYSTEM:
                got.system.extend(p.content for p in message.parts if p.content)
                continue
            for role, blocks in _blocks(message, thinking_model, blobs):
                if got.open is not None and got.open["role"] == role:
                    got.open["content"].extend(blocks)
                    continue
                if got.open is not None:  # a new role: the entry before is final
                    got.close(got.open)
                got.open = {"role": role, "content": blocks}
        got.done = m
        self._by_key[key] = got  # re-inserted: the newest last
        while len(self._by_key) > self.KEEP:
            del self._by_key[next(iter(self._by_key))]
        if got.open is None:
            return list(got.system), (got.closed,)
        last = {"role": got.open["role"], "content": list(got.open["content"])}
        tail = json.dumps(_tool_results_first(last)).encode()
        return list(got.system), (got.closed, b", " if got.closed else b"", tail)


@dataclass
class _Encoded:
    msgs: list[Message]
    done: int = 0
    closed: bytearray = field(default_factory=bytearray)
    open: dict[str, Any] | None = None
    system: list[str] = field(default_factory=list)

    def close(self, entry: dict[str, Any]) -> None:
        if self.closed:
            self.closed += b", "
        self.closed += json.dumps(_tool_results_first(entry)).encode()


def _blocks(message: Message, thinking_model: str | None = None,
            blobs: Mapping[str, bytes] | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    if message.role is Role.USER and media.has_attachments(message):
        texts = _media_blocks(message, blobs or {})
    else:
        texts = [{"type": "text", "text": p.content} for p in message.parts
                 if p.kind in (PartKind.TEXT, PartKind.PROSE) and p.content]
    results = [
        {"type": "tool_result", "tool_use_id": p.tool_call_id or "", "content": p.content,
         **({"is_error": True} if p.is_error else {})}
        for p in message.tool_results()
    ]
    if message.role is Role.USER:
        blocks = results + texts
        return [("user", blocks)] if blocks else []
    if message.role is Role.ASSISTANT:
        uses = [{"type": "tool_use", "id": p.tool_call_id or "", "name": p.tool_name or "",
                 "input": _json_object(p.content)} for p in message.tool_calls()]
        thinking = [block for p in message.parts if p.kind is PartKind.REASONING and thinking_model
                    if (block := thinking_block(p.replay, thinking_model)) is not None]
        out = [("assistant", thinking + texts + uses)] if texts or uses else []
        return out + ([("user", results)] if results else [])
    return []


def thinking_block(raw: str | None, model: str) -> dict[str, Any] | None:
    """The thinking / redacted_thinking block kept in a part's ``replay``, if it is
    Anthropic's, for ``model``, and whole (a thinking block needs its signature)."""
    data = replay.kept(raw, REPLAY_API, model)
    block = data.get("block") if data is not None else None
    if not isinstance(block, dict):
        return None
    if block.get("type") == "thinking" and isinstance(block.get("thinking"), str) and block.get("signature"):
        return {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}
    if block.get("type") == "redacted_thinking" and block.get("data"):
        return {"type": "redacted_thinking", "data": block["data"]}
    return None


def _json_object(raw: str) -> Any:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tool_choice(choice: str) -> dict[str, Any]:
    if choice in ("auto", "none", "any"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


@dataclass
class _Block:
    type: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    initial_input: Any = None
    signature: str = ""
    data: str = ""  # a redacted_thinking block's opaque payload


@dataclass
class MessagesAccumulator:
    """Folds Messages API stream events into deltas and one final response.
    ``request_model`` and ``scrub_exact`` are for the thinking blocks kept for replay."""

    request_model: str = ""
    scrub_exact: Callable[[str], str] = str
    blocks: dict[int, _Block] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    response_id: str | None = None
    model: str | None = None
    saw_start: bool = False
    saw_stop: bool = False
    started: bool = False

    def apply(self, event: Mapping[str, Any]) -> list[LlmStreamEvent]:
        kind = event.get("type")
        out: list[LlmStreamEvent] = []
        if kind == "message_start":
            message = event.get("message") or {}
            self.saw_start = True
            self.response_id = message.get("id")
            self.model = message.get("model")
            self._take_usage(message.get("usage"))
            if self.usage:  # billed from here on, even if the stream is cut
                out.append(UsageReported(self._token_usage()))
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            self.blocks[int(event.get("index", len(self.blocks)))] = _Block(
                type=str(block.get("type")), call_id=str(block.get("id") or ""),
                name=str(block.get("name") or ""), initial_input=block.get("input"),
                signature=str(block.get("signature") or ""), data=str(block.get("data") or ""),
                text=[t] if (t := block.get("text") or block.get("thinking")) else [],
            )
        elif kind == "content_block_delta":
            out.extend(self._delta(int(event.get("index", 0)), event.get("delta") or {}))
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            self.stop_reason = reason or self.stop_reason
            self._take_usage(event.get("usage"))
        elif kind == "message_stop":
            self.saw_stop = self.saw_start
        self.started = self.started or any(type(e) is not UsageReported for e in out)
        return out

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[LlmStreamEvent]:
        block = self.blocks.setdefault(index, _Block(type="text"))
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            block.text.append(delta["text"])
            return [TextDelta(delta["text"])]
        if kind == "thinking_delta" and delta.get("thinking"):
            block.text.append(delta["thinking"])
            return [ReasoningTextDelta(delta["thinking"])]
        if kind == "input_json_delta":
            block.text.append(str(delta.get("partial_json") or ""))
        if kind == "signature_delta" and delta.get("signature"):
            block.signature += str(delta["signature"])
        return []  # signature_delta and unknown deltas carry no visible output

    def _take_usage(self, usage: Mapping[str, Any] | None) -> None:
        for key in _USAGE_KEYS:
            if usage and usage.get(key) is not None:
                self.usage[key] = int(usage[key])

    def _token_usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.usage.get("input_tokens", 0),
            output_tokens=self.usage.get("output_tokens", 0),
            cache_read_input_tokens=self.usage.get("cache_read_input_tokens", 0),
            cache_write_input_tokens=self.usage.get("cache_creation_input_tokens", 0),
        )

    def _replay(self, block: _Block, joined: str) -> str | None:
        if block.type == "redacted_thinking":
            kept: dict[str, Any] = {"type": "redacted_thinking", "data": block.data}
        elif block.signature and self.scrub_exact(joined) == joined:
            kept = {"type": "thinking", "thinking": joined, "signature": block.signature}
        else:
            return None
        return replay.keep(REPLAY_API, self.request_model, "block", kept)

    def response(self, request_id: str | None) -> LlmResponse:
        parts: list[LlmPart] = []
        for _, block in sorted(self.blocks.items()):
            joined = "".join(block.text)
            if block.type == "text" and joined:
                parts.append(LlmPart.text_part(joined))
            elif block.type in ("thinking", "redacted_thinking") and (joined or block.data):
                parts.append(LlmPart.reasoning(joined, self._replay(block, joined)))
            elif block.type == "tool_use":
                raw = joined or json.dumps(block.initial_input or {})
                parts.append(LlmPart.tool_call(block.call_id, block.name, raw))
        return LlmResponse(
            parts=tuple(parts), usage=self._token_usage(),
            terminal_reason=STOP_REASONS.get(self.stop_reason or "", TerminalReason.UNKNOWN),
            request_id=request_id, response_id=self.response_id, served_model=self.model,
            finish_reason=self.stop_reason,
        )


class Anthropic(HttpProvider[MessagesAccumulator]):
    """Anthropic Messages API provider; ``api_key`` falls back to ``$ANTHROPIC_API_KEY``."""

    terminal_evidence = "message_stop"

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        base_url: str = "https://api.anthropic.com",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_tokens: int = 4096,
        thinking_budget: int | None = None,
        headers: Mapping[str, str] | None = None,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        timeout: float | httpx.Timeout = 300.0,
        chunk_timeout: float = 120.0,
        attempt_timeout: float | None = ATTEMPT_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
        kind: str = "anthropic",
    ) -> None:
        self.max_tokens = max_tokens
        self.thinking_budget = thinking_budget
        self._setup_http(kind=kind, base_url=base_url, model=model, api_key=api_key,
                         api_key_env=api_key_env, headers=headers, transport=transport,
                         timeout=timeout, chunk_timeout=chunk_timeout,
                         attempt_timeout=attempt_timeout, max_event_bytes=max_event_bytes)
        self._messages_cache = AnthropicMessagesCache()

    def __repr__(self) -> str:
        key = self._key_state
        return (f"Anthropic(base_url={shown_url(self.base_url)!r}, model={self.model!r}, api_key={key}, "
                f"max_tokens={self.max_tokens})")

    def payload(self, request: LlmRequest, *,
                _parts: tuple[str | None, list[Any]] | None = None) -> dict[str, Any]:
        model = self._model(request, "Anthropic(...)")
        system, messages = (anthropic_messages(request, model if self.thinking_budget else None)
                            if _parts is None else _parts)
        body: dict[str, Any] = {"model": model, "max_tokens": request.max_output_tokens or self.max_tokens,
                                "stream": True, "messages": messages}
        if system:
            body["system"] = system
        if request.tools:
            body["tools"] = [{"name": t.name, "description": t.description,
                              "input_schema": dict(t.input_schema)} for t in request.tools]
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if self.thinking_budget:
            body["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
        return body

    def build_http_request(self, request: LlmRequest) -> httpx.Request:
        """The exact HTTP request :meth:`stream` sends (for inspection and tests)."""
        return self._post(f"{self._base}/v1/messages", self.body_bytes(request),
                          auth=("x-api-key", ""),
                          fixed={"anthropic-version": API_VERSION, "anthropic-beta": BETA})

    def body_bytes(self, request: LlmRequest) -> bytes:
        """``json.dumps(self.payload(request)).encode()``, with the history's messages encoded
        once per message across calls (:class:`AnthropicMessagesCache`)."""
        thinking = (request.model or self.model) if self.thinking_budget else None
        got = self._messages_cache.encoded(request.messages, thinking, request.attachments)
        if got is not None:
            parts, chunks = got
            system = "\n\n".join(([request.system_prompt] if request.system_prompt else []) + parts)
            head, mark, tail = json.dumps(
                self.payload(request, _parts=(system or None, [MESSAGES_MARK]))
            ).partition(MESSAGES_MARK_JSON)
            if mark and MESSAGES_MARK not in tail:
                return b"".join((head.encode(), b"[", *chunks, b"]", tail.encode()))
        return json.dumps(self.payload(request)).encode()

    def _accumulator(self, request: LlmRequest) -> MessagesAccumulator:
        return MessagesAccumulator(request_model=request.model or self.model or "",
                                   scrub_exact=self._exchange.scrubber.scrub_exact)

    def _fold(self, acc: MessagesAccumulator, data: Mapping[str, Any], event: SseEvent | None,
              meta: dict[str, Any]) -> list[LlmStreamEvent]:
        if data.get("type") == "error" or (event is not None and event.event == "error"):
            raise self._stream_error(data, acc, meta)
        return acc.apply(data)

    def _finished(self, acc: MessagesAccumulator) -> bool:
        return acc.saw_stop
