"""The Responses API wire shapes: session messages -> ``input`` items, and the stream's events
folded into deltas and one final response (see :mod:`.openai_responses`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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

REPLAY_API = "openai-responses"
_REASONING_KEYS = ("id", "summary", "content", "encrypted_content")
_INCOMPLETE = {"max_output_tokens": TerminalReason.OUTPUT_LIMIT,
               "content_filter": TerminalReason.CONTENT_FILTER}


# --------------------------------------------------------------------------- request


def responses_input(request: LlmRequest, model: str) -> list[dict[str, Any]]:
    """Session messages -> Responses ``input`` items. A kept reasoning item goes back
    before the message and calls it preceded, and only to the model that made it."""
    out: list[dict[str, Any]] = []
    for message in request.messages:
        out.extend(_items(message, model, request.attachments))
    return out


def _user_content(message: Message, blobs: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """``input_text``, ``input_image`` (a data URL) and ``input_file`` (``file_data`` a data
    URL) items of a user message with attachments, in order (``_providers/media.py``)."""
    return media.content_blocks(
        message, blobs, provider="the OpenAI Responses API",
        text=lambda t: {"type": "input_text", "text": t},
        image=lambda ref, data: {"type": "input_image", "image_url": media.data_url(ref, data)},
        pdf=lambda ref, data: {"type": "input_file", "filename": media.file_name(ref),
                               "file_data": media.data_url(ref, data)})


def _items(message: Message, model: str, blobs: Mapping[str, bytes]) -> list[dict[str, Any]]:
    texts = [p.content for p in message.parts if p.kind in (PartKind.TEXT, PartKind.PROSE) and p.content]
    results = [{"type": "function_call_output", "call_id": p.tool_call_id or "",
                "output": p.content} for p in message.tool_results()]
    if message.role is Role.SYSTEM:
        return [{"role": "system", "content": "\n\n".join(texts)}] if texts else []
    if message.role is Role.USER:
        if media.has_attachments(message):
            return [*results, {"role": "user", "content": _user_content(message, blobs)}]
        user = [{"role": "user", "content": [{"type": "input_text", "text": "\n\n".join(texts)}]}]
        return results + (user if texts else [])
    if message.role is not Role.ASSISTANT:
        return []  # event messages are session bookkeeping, not model input
    out = [item for p in message.parts if p.kind is PartKind.REASONING
           if (item := replay_item(p.replay, model)) is not None]
    if texts:
        out.append({"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": "\n\n".join(texts)}]})
    out.extend({"type": "function_call", "call_id": p.tool_call_id or "", "name": p.tool_name or "",
                "arguments": p.content or "{}"} for p in message.tool_calls())
    return out + results


def replay_item(raw: str | None, model: str) -> dict[str, Any] | None:
    """The reasoning item kept in a part's ``replay``, if it is ours, for ``model`` and
    carries its encrypted content (without it a stateless server cannot resolve the id)."""
    data = replay.kept(raw, REPLAY_API, model)
    item = data.get("item") if data is not None else None
    if not isinstance(item, dict) or not item.get("encrypted_content"):
        return None
    return {"type": "reasoning", **{k: item[k] for k in _REASONING_KEYS if k in item}}


# --------------------------------------------------------------------------- stream


def usage_from_responses(usage: Mapping[str, Any]) -> TokenUsage:
    """Responses usage -> five buckets; ``input_tokens`` is the uncached input and
    ``output_tokens`` includes the reasoning tokens (as Chat Completions counts them)."""
    total_in = int(usage.get("input_tokens") or 0)
    cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)
    return TokenUsage(input_tokens=max(total_in - cached, 0),
                      output_tokens=int(usage.get("output_tokens") or 0),
                      cache_read_input_tokens=cached, cache_write_input_tokens=0,
                      reasoning_output_tokens=reasoning)


@dataclass
class _Item:
    type: str
    item_id: str = ""
    call_id: str = ""
    name: str = ""
    text: list[str] = field(default_factory=list)
    summary: dict[int, list[str]] = field(default_factory=dict)
    done: Mapping[str, Any] | None = None


@dataclass
class ResponsesAccumulator:
    """Folds Responses stream events into deltas and one final response. ``scrub_exact``
    removes the provider's key from text kept in a replay item (it is stored)."""

    model: str
    scrub_exact: Callable[[str], str] = str
    items: dict[int, _Item] = field(default_factory=dict)
    by_id: dict[str, _Item] = field(default_factory=dict)
    usage: TokenUsage = ZERO_USAGE
    status: str | None = None
    incomplete_reason: str | None = None
    response_id: str | None = None
    served_model: str | None = None
    refused: bool = False
    terminal: bool = False
    started: bool = False

    def failure(self, event: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The error payload of an ``error`` / ``response.failed`` event, else None."""
        kind = event.get("type")
        if kind == "error":
            inner = event.get("error")
            return {"error": inner if isinstance(inner, dict) else
                    {"code": event.get("code"), "message": event.get("message")}}
        if kind == "response.failed":
            response = event.get("response") or {}
            error = response.get("error") or {"message": "the response failed"}
            return {"error": error}
        return None

    def _item(self, event: Mapping[str, Any], kind: str = "message") -> _Item:
        item_id = str(event.get("item_id") or "")
        if item_id and item_id in self.by_id:
            return self.by_id[item_id]
        index = int(event.get("output_index", len(self.items)))
        slot = self.items.get(index)
        if slot is None:
            slot = self.items[index] = _Item(type=kind, item_id=item_id)
            if item_id:
                self.by_id[item_id] = slot
        return slot

    def apply(self, event: Mapping[str, Any]) -> list[LlmStreamEvent]:
        kind = str(event.get("type") or "")
        out: list[LlmStreamEvent] = []
        if kind in ("response.created", "response.in_progress"):
            self._take_response(event.get("response") or {})
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._take_item(event, done=kind.endswith(".done"))
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                self._item(event).text.append(delta)
                self.refused = self.refused or kind == "response.refusal.delta"
                out.append(TextDelta(delta, event.get("item_id")))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                slot = self._item(event, "reasoning")
                index = int(event.get("summary_index", event.get("content_index", 0)) or 0)
                prefix = "\n\n" if slot.summary and index not in slot.summary else ""
                slot.summary.setdefault(index, []).append(delta)
                out.append(ReasoningTextDelta(prefix + delta, event.get("item_id")))
        elif kind == "response.function_call_arguments.delta":
            delta = event.get("delta")
            if isinstance(delta, str):
                self._item(event, "function_call").text.append(delta)
        elif kind == "response.function_call_arguments.done":
            if isinstance(event.get("arguments"), str):
                self._item(event, "function_call").text[:] = [event["arguments"]]
        elif kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            self._take_response(response)
            self.terminal = True
            self.status = str(response.get("status") or kind.rsplit(".", 1)[-1])
            details = response.get("incomplete_details") or {}
            self.incomplete_reason = details.get("reason") if isinstance(details, dict) else None
            if isinstance(response.get("usage"), dict):
                self.usage = usage_from_responses(response["usage"])  # once, at the end
            if not self.items:  # a server that sends only the final document
                for i, item in enumerate(response.get("output") or ()):
                    self._take_item({"output_index": i, "item": item}, done=True)
        self.started = self.started or bool(out)
        return out

    def _take_response(self, response: Mapping[str, Any]) -> None:
        self.response_id = response.get("id") or self.response_id
        self.served_model = response.get("model") or self.served_model

    def _take_item(self, event: Mapping[str, Any], *, done: bool) -> None:
        item = event.get("item") or {}
        if not isinstance(item, dict):
            return
        index = int(event.get("output_index", len(self.items)))
        slot = self.items.get(index)
        if slot is None:
            slot = self.items[index] = _Item(type=str(item.get("type") or "message"))
        slot.type = str(item.get("type") or slot.type)
        slot.item_id = str(item.get("id") or slot.item_id)
        slot.call_id = str(item.get("call_id") or slot.call_id)
        slot.name = str(item.get("name") or slot.name)
        if slot.item_id:
            self.by_id[slot.item_id] = slot
        if done:
            slot.done = item
            if slot.type == "function_call" and isinstance(item.get("arguments"), str):
                slot.text[:] = [item["arguments"]]

    def response(self, request_id: str | None) -> LlmResponse:
        parts: list[LlmPart] = []
        for _, slot in sorted(self.items.items()):
            if slot.type == "message":
                text = "".join(slot.text) or _done_text(slot.done)
                if text:
                    parts.append(LlmPart.text_part(text))
            elif slot.type == "reasoning":
                parts.append(self._reasoning_part(slot))
            elif slot.type == "function_call":
                parts.append(LlmPart.tool_call(slot.call_id or slot.item_id, slot.name,
                                               "".join(slot.text) or "{}"))
        parts = [p for p in parts if p.text or p.replay or p.kind == "tool_call"]
        return LlmResponse(parts=tuple(parts), usage=self.usage, terminal_reason=self._reason(parts),
                           request_id=request_id, response_id=self.response_id,
                           served_model=self.served_model,
                           finish_reason=self.incomplete_reason or self.status)

    def _reasoning_part(self, slot: _Item) -> LlmPart:
        text = "\n\n".join("".join(chunks) for _, chunks in sorted(slot.summary.items()))
        done = dict(slot.done or {})
        if not text:
            text = "\n\n".join(s.get("text", "") for s in done.get("summary") or ()
                               if isinstance(s, dict) and s.get("text"))
        if not done.get("encrypted_content"):
            return LlmPart.reasoning(text)
        item = {k: done[k] for k in _REASONING_KEYS if k in done}
        for entry in item.get("summary") or ():
            if isinstance(entry, dict) and isinstance(entry.get("text"), str):
                entry["text"] = self.scrub_exact(entry["text"])
        return LlmPart.reasoning(text, replay.keep(REPLAY_API, self.model, "item", item))

    def _reason(self, parts: list[LlmPart]) -> TerminalReason:
        if self.status == "incomplete":
            return _INCOMPLETE.get(self.incomplete_reason or "", TerminalReason.UNKNOWN)
        if self.refused:
            return TerminalReason.CONTENT_FILTER
        if any(p.kind == "tool_call" for p in parts):
            return TerminalReason.TOOL_USE
        return TerminalReason.STOP if self.status == "completed" else TerminalReason.UNKNOWN


def _done_text(item: Mapping[str, Any] | None) -> str:
    if not item:
        return ""
    return "".join(c.get("text", "") for c in item.get("content") or ()
                   if isinstance(c, dict) and c.get("type") == "output_text")
