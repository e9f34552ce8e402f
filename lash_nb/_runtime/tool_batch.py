"""``ToolBatch``: one batch of a model reply's tool calls, run concurrently.

Every call gets a result message part in call order: its output, or (when the turn was
stopped before it finished) an ``interrupted`` marker whose record keeps the time it ran.
A tool that raises anything (``SystemExit`` too), an unknown tool or a missing required
argument gives the model an error result; ``KeyboardInterrupt`` in a tool cancels the turn.
A tool that returns an image (a matplotlib figure, a PIL image, an object with
``_repr_png_``) gives a text result describing it and, once its bytes are stored, an
attachment part after the results, so the model sees the picture.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .._core import events as ev
from .._core.attachments import Attachment, attachment_from, is_image_like
from .._core.cancel import CancellationToken
from .._core.llm import LlmPart
from .._core.records import Message, Part, PartKind, Role, ToolCallRecord, fresh_id
from .._core.text import clean_json
from .._core.tools import ToolContext, ToolRegistry
from .turn_records import as_text, error_text, jsonable, parse_args

Emit = Callable[[ev.TurnEvent, str], None]


def now_ms() -> int:
    return int(time.time() * 1000)


class ToolBatch:
    def __init__(self, calls: list[LlmPart], *, registry: ToolRegistry, session_id: str,
                 turn_id: str, emit: Emit, records: list[ToolCallRecord],
                 token: CancellationToken) -> None:
        self.calls = calls
        self.token = token
        self.registry = registry
        self.session_id = session_id
        self.turn_id = turn_id
        self.emit = emit
        self.records = records  # the turn's tool call records (appended to)
        self.results: dict[str, tuple[str, bool]] = {}
        self.images: dict[str, Attachment] = {}  # call id -> the image its tool returned
        self.clock: dict[str, tuple[int, float]] = {}  # running call -> (started_ms, t0)

    async def run(self) -> None:
        if len(self.calls) == 1:
            await self._run_one(self.calls[0])
        else:
            await asyncio.gather(*(self._run_one(c) for c in self.calls))

    async def _run_one(self, call: LlmPart) -> None:
        call_id, name = call.call_id or fresh_id("call_"), call.tool_name or ""
        cid = f"tool:{call_id}"
        args = parse_args(call.input_json)
        self.emit(ev.ToolCallStarted(call_id, name, args), cid)
        started, t0 = now_ms(), time.perf_counter()
        self.clock[call_id] = (started, t0)
        output, success = await self._execute(name, args, call_id)
        duration = round((time.perf_counter() - t0) * 1000, 3)
        if success and is_image_like(output):
            try:
                image = attachment_from(output, name=f"{name} output")
            except Exception as err:  # e.g. past the size limit: the model is told why
                output, success = f"the tool's image could not be attached: {error_text(err)}", False
            else:
                self.images[call_id] = image
                output = f"an image {image.ref.describe()}, attached below"
        try:
            output = clean_json(jsonable(output))  # tool output enters the session (core/text.py)
        except Exception as err:  # an output that cannot be shown as text
            output = (f"the tool returned a {type(output).__name__} that cannot be shown as "
                      f"text: {error_text(err)}")
            success = False
        self.results[call_id] = (as_text(output), success)
        self.records.append(ToolCallRecord(call_id, name, args, output, success, duration, started))
        self.emit(ev.ToolCallCompleted(call_id, name, args, output, duration, success,
                                       "success" if success else "failure"), cid)

    async def _execute(self, name: str, args: dict[str, Any], call_id: str) -> tuple[Any, bool]:
        found = self.registry.provider_for(name)
        if found is None:
            names = ", ".join(m.name for m in self.registry.members()) or "(none)"
            return f"unknown tool {name!r}; available tools: {names}", False
        provider, manifest = found
        missing = [r for r in manifest.input_schema.get("required", ()) if r not in args]
        if missing:
            return f"missing required argument(s) {', '.join(missing)} for tool {name!r}", False
        try:
            output = await provider.execute(name, args, ToolContext(self.session_id, self.turn_id,
                                                                    call_id))
        except asyncio.CancelledError as err:
            if self.token.cancelled or _being_cancelled():
                raise
            return error_text(err), False  # the tool's own, not a cancel of this turn
        except KeyboardInterrupt:
            # Ctrl-C / a kernel interrupt landed inside the tool: the user wants the turn
            # stopped. Cancel it here; letting it escape would stop the loop.
            self.token.cancel("keyboard_interrupt", f"KeyboardInterrupt in tool {name!r}")
            raise asyncio.CancelledError from None
        except BaseException as err:  # Exception, SystemExit, ...: an error result
            return error_text(err), False
        return output, True

    def settle(self) -> None:
        """After a cancel: record every unfinished call as interrupted (the time it ran is
        real, keep it)."""
        for c in self.calls:
            cid = c.call_id or ""
            if cid in self.results:
                continue
            started, t0 = self.clock.get(cid, (now_ms(), time.perf_counter()))
            ran = round((time.perf_counter() - t0) * 1000, 3)
            args = parse_args(c.input_json)
            self.records.append(ToolCallRecord(cid, c.tool_name or "", args, "interrupted",
                                               False, ran, started, True))
            self.emit(ev.ToolCallCompleted(cid, c.tool_name or "", args, "interrupted", ran,
                                           False, "cancelled"), f"tool:{cid}")

    def result_message(self, *, with_images: bool = False) -> Message:
        """The results in call order; ``with_images``: then the returned images (only once
        their bytes are stored)."""
        mid = fresh_id("m")
        parts = []
        for i, c in enumerate(self.calls):
            cid = c.call_id or ""
            text, ok = self.results.get(cid, ("interrupted: the turn was stopped", False))
            parts.append(Part(f"{mid}.p{i}", PartKind.TOOL_RESULT, text, cid, c.tool_name,
                              interrupted=cid not in self.results, is_error=not ok))
        if with_images:
            for image in self.images.values():
                parts.append(Part(f"{mid}.p{len(parts)}", PartKind.ATTACHMENT,
                                  image.ref.describe(), attachment=image.ref))
        return Message(mid, Role.USER, tuple(parts))


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
