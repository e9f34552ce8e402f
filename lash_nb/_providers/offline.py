"""The offline provider: a deterministic model that needs no key and no network.

Rules (documented for users; tests rely on them):
- **Tool calls.** When the latest user message names an available tool (its name as a whole
  word, case-insensitive) and that tool has not been called since that message, the model
  calls it, at most one call per tool, all named tools in one response. Arguments: for each
  parameter, ``name=value`` or ``name: value`` in the prompt wins; otherwise a string
  parameter takes the first quoted string in the prompt (else the word after the tool name),
  a number parameter the first number, a boolean ``true``; a parameter with a default is
  left out.
- **Answers.** After tool results, it answers ``"<tool> returned <output>."`` for each call.
  Otherwise it answers ``"You said: <prompt>"`` followed by a sentence that says it is the
  offline model. With ``reasoning=True`` it first streams a short reasoning text.
- **Code mode** (a session opened with ``mode("code")``): it first writes a cell that prints
  each shared DataFrame's name, shape and columns, then a cell that answers in pandas: the
  first aggregate the question names (mean / average, sum / total, max, min, count, median)
  over the first numeric column it names, per the column after ``by`` / ``per`` when there
  is one, submitted as a number or a dict per group; otherwise the row count and columns.
  A failed answer cell is answered by submitting its error's last line
  (``offline_code.py``).
- **Attachments.** It takes every kind and says what it received: ``"It received: "`` and
  one ``[kind label: media/type, N bytes, WxH]`` per attachment of the latest user message
  (and of tool results since); its bytes must have reached the request (else ``(missing)``).
  When earlier messages hold attachments too: ``"The conversation holds N attachment(s); M
  came with their bytes."`` (a reopened session is sent them again from the store).
- **Streaming.** The answer streams word by word, one delta every ``delay_s`` seconds
  (default 0.03: visibly streaming in a notebook; pass 0 for tests and benchmarks). Past
  the first 200 words the rest comes in one delta: echoing a tool that returned a long log
  word by word took hours (80,000 lines: 480,000 words at 0.03 s).
- **Tokens.** ``ceil(chars / 4)`` per message text plus 4 per message for input; the same rule
  over the answer and tool-call arguments for output.
- Its model id is ``lash-offline`` (any model id containing ``offline`` is accepted).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Mapping
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
from .._core.records import Message, PartKind, Role, fresh_id
from .._core.usage import TokenUsage
from .offline_code import code_reply, is_code_request

OFFLINE_MODEL = "lash-offline"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"\"([^\"]*)\"|'([^']*)'")


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class OfflineProvider:
    kind = "offline"
    default_model = OFFLINE_MODEL

    def __init__(self, *, delay_s: float = 0.03, reasoning: bool = False) -> None:
        self.delay_s = delay_s
        self.reasoning = reasoning

    def __repr__(self) -> str:
        return f"OfflineProvider(delay_s={self.delay_s}, reasoning={self.reasoning})"

    async def stream(self, request: LlmRequest) -> AsyncIterator[LlmStreamEvent]:
        messages = request.messages
        last_user_index = _last_user_index(messages)
        prompt = messages[last_user_index].text() if last_user_index is not None else ""
        called = _called_since(messages, last_user_index)
        results = _results_since(messages, last_user_index)
        parts: list[LlmPart] = []
        reasoning_text = ""
        if self.reasoning:
            reasoning_text = f"The user wrote {len(prompt.split())} words; answer plainly."
            for word in _words(reasoning_text):
                yield ReasoningTextDelta(word)
                await self._pause()
            parts.append(LlmPart.reasoning(reasoning_text))
        to_call = [
            t for t in request.tools
            if t.name not in called and re.search(rf"\b{re.escape(t.name)}\b", prompt, re.I)
        ]
        if is_code_request(request):
            answer = code_reply(messages)
            for piece in _paced(answer):
                yield TextDelta(piece)
                await self._pause()
            parts.append(LlmPart.text_part(answer))
            reason = TerminalReason.STOP
        elif to_call and not results:
            for spec in to_call:
                args = _arguments(spec.name, spec.input_schema, prompt)
                parts.append(LlmPart.tool_call(fresh_id("call_"), spec.name, json.dumps(args)))
            reason = TerminalReason.TOOL_USE
            answer = ""
        else:
            if results:
                answer = " ".join(f"{name} returned {out}." for name, out in results)
            else:
                answer = f"You said: {prompt} (This is the offline model; it echoes prompts and calls tools you name.)"
            received = _received(request, last_user_index)
            if received:
                answer += f" It received: {received}."
            answer += _history_note(request, last_user_index)
            for piece in _paced(answer):
                yield TextDelta(piece)
                await self._pause()
            parts.append(LlmPart.text_part(answer))
            reason = TerminalReason.STOP
        input_tokens = sum(count_tokens(m.text()) + 4 for m in messages)
        input_tokens += count_tokens(request.system_prompt or "")
        output_tokens = count_tokens(answer) + count_tokens(reasoning_text) + sum(
            count_tokens(p.input_json or "") for p in parts if p.kind == "tool_call"
        )
        usage = TokenUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_output_tokens=count_tokens(reasoning_text),
        )
        yield Completed(LlmResponse(
            parts=tuple(parts), usage=usage, terminal_reason=reason,
            request_id=fresh_id("offline-"), served_model=request.model,
        ))

    async def _pause(self) -> None:
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


PACED_WORDS = 200  # words streamed one by one; the rest of an answer is one delta


def _paced(text: str) -> list[str]:
    """The deltas of an answer: its first ``PACED_WORDS`` words, then the rest whole."""
    pieces = []
    for i, m in enumerate(re.finditer(r"\S+\s*|\s+", text)):
        if i == PACED_WORDS:
            pieces.append(text[m.start():])
            break
        pieces.append(m.group(0))
    return pieces


def _last_user_index(messages: Any) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        m: Message = messages[i]
        kinds = {p.kind for p in m.parts}
        if m.role is Role.USER and PartKind.TOOL_RESULT not in kinds and (
                PartKind.TEXT in kinds or PartKind.ATTACHMENT in kinds):
            return i
    return None


def _history_note(request: LlmRequest, start: int | None) -> str:
    refs = [p.attachment for m in request.messages for p in m.parts if p.attachment is not None]
    earlier = [p.attachment for m in request.messages[:start or 0] for p in m.parts
               if p.attachment is not None]
    if not earlier:
        return ""
    present = sum(ref.id in request.attachments for ref in refs)
    return (f" The conversation holds {len(refs)} attachment{'' if len(refs) == 1 else 's'};"
            f" {present} came with their bytes.")


def _received(request: LlmRequest, start: int | None) -> str:
    if start is None:
        return ""
    refs = [p.attachment for m in request.messages[start:] for p in m.parts
            if p.attachment is not None]
    return "; ".join(ref.describe() + ("" if ref.id in request.attachments else " (missing)")
                     for ref in refs)


def _called_since(messages: Any, start: int | None) -> set[str]:
    if start is None:
        return set()
    return {
        p.tool_name or ""
        for m in messages[start:]
        for p in m.parts
        if p.kind is PartKind.TOOL_CALL
    }


def _results_since(messages: Any, start: int | None) -> list[tuple[str, str]]:
    if start is None:
        return []
    return [
        (p.tool_name or "tool", p.content)
        for m in messages[start + 1:]
        for p in m.parts
        if p.kind is PartKind.TOOL_RESULT
    ]


def _arguments(name: str, schema: Mapping[str, Any], prompt: str) -> dict[str, Any]:
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    args: dict[str, Any] = {}
    for pname, pschema in props.items():
        explicit = re.search(rf"\b{re.escape(pname)}\s*[=:]\s*(\"[^\"]*\"|'[^']*'|\S+)", prompt)
        kind = _schema_type(pschema)
        if explicit:
            args[pname] = _coerce(explicit.group(1).strip("\"'"), kind)
        elif pname not in required:
            continue
        elif kind in ("integer", "number"):
            m = _NUMBER.search(prompt)
            args[pname] = _coerce(m.group(0) if m else "0", kind)
        elif kind == "boolean":
            args[pname] = True
        else:
            q = _QUOTED.search(prompt)
            if q:
                args[pname] = q.group(1) if q.group(1) is not None else q.group(2)
            else:
                after = re.search(rf"\b{re.escape(name)}\b\W*(?:for|of|in|on)?\s*(\w+)", prompt, re.I)
                args[pname] = after.group(1) if after else ""
    return args


def _schema_type(schema: Mapping[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    for alt in schema.get("anyOf", ()):
        if alt.get("type") not in (None, "null"):
            return str(alt["type"])
    return "string"


def _coerce(raw: str, kind: str) -> Any:
    try:
        if kind == "integer":
            return int(float(raw))
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean":
        return raw.lower() in ("1", "true", "yes", "on")
    return raw
