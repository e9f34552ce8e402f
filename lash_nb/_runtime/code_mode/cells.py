"""``CodeCells``: the code-mode part of a turn's driver (``TurnRun``).

It performs the code machine's :class:`ExecCell` (run the cell in the session's sandbox,
emit ``code_cell_started`` / ``code_cell_completed``, append the observation the model reads
next) and :class:`SettleCell` (after a Stop: record the cut cell), and answers the cell's
calls to the host:
- ``tool``: one call through the turn's :class:`ToolBatch`, so membership, validation (and
  whatever gate the batch applies) are the ones model tool calls get; the call is a
  ``tool_call_started`` / ``tool_call_completed`` pair and a tool call record of the turn.
- ``llm_query``: one turn of a child session ``<session>.<turn>.q<n>`` (parent: this
  session) with the turn's provider and model, no tools and no history (ADR 72). Its
  activities nest under the cell's row (``ChildActivity`` with the cell's correlation id);
  its usage rolls up as ``ChildUsage`` / ``children_usage`` / ``child:<id>`` usage rows like
  a tool's ``run_child``; a Stop of the turn stops it and its usage is still rolled up.
- ``submit``: the cell's final value.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Protocol

from ..._core import events as ev
from ..._core.cancel import CancellationToken
from ..._core.code_mode import (
    CellDone,
    ExecCell,
    ToolSignature,
    code_system_prompt,
    observation_text,
)
from ..._core.llm import LlmPart, Provider
from ..._core.records import Message, PartKind, Role, ToolCallRecord, fresh_id
from ..._core.secrets import scrub
from ..._core.text import check_id, clean_json, clean_text
from ..._core.usage import LlmCallRecord, TokenUsage
from ..children import ChildScope, run_child_turn
from ..parts import SessionParts
from ..tool_batch import ToolBatch
from .mode import FRESH_NOTE, CodeMode
from .sandbox import CellOutput


class CellRun(Protocol):
    """What the cells need of their turn (``TurnRun`` is one)."""

    parts: SessionParts
    turn_id: str
    token: CancellationToken
    provider: Provider
    model: str
    tool_calls: list[ToolCallRecord]
    llm_calls: list[LlmCallRecord]
    cumulative: TokenUsage

    def emit(self, event: ev.TurnEvent, correlation_id: str) -> None: ...

    def tool_batch(self, calls: list[LlmPart], *, keep_whole: bool = False) -> ToolBatch: ...

    def tool_scope(self) -> contextlib.AbstractContextManager[None]: ...

    def children_scope(self) -> ChildScope: ...

    def emit_independent(self, event: ev.TurnEvent) -> None: ...

    def append_message(self, message: Message) -> None: ...


class CodeCells:
    def __init__(self, run: CellRun, mode: CodeMode) -> None:
        self.run = run
        self.mode = mode
        self.fresh = False  # the sandbox was started for this session in this turn
        self._cell: ExecCell | None = None
        self._submitted: tuple[Any] | None = None
        self._children = 0
        self._prepared = False  # the sandbox and the tools' functions are ready this turn
        self._tools: list[ToolSignature] = []
        self._iteration = 0

    async def prepare(self) -> None:
        """Before the turn's first model call: the sandbox runs, the tools are callable."""
        if self._prepared:
            return
        started = await self.mode.ensure_started()
        self.fresh = started and self.run.parts.state.turn_index > 0
        if started:  # the committed record of what the sandbox holds (ADR 71)
            self.run.emit_independent(ev.CodeSandboxStarted(
                self.mode.sandbox.isolation,
                [{"name": s.name, "kind": s.kind, "what": s.describe()} for s in self.mode.shares],
                FRESH_NOTE if self.fresh else None))
        specs = self.run.parts.catalog.specs()
        await self.mode.sandbox.set_tools([s.name for s in specs])
        self._tools = [ToolSignature(s.name, s.description,
                                     tuple(s.input_schema.get("properties", {})),
                                     tuple(s.input_schema.get("required", ()))) for s in specs]
        self._prepared = True

    def system_prompt(self, layers: str | None) -> str:
        """The code-mode contract, the sandbox's tools and data, then the session's own
        prompt layers (rendered by the standard path) as its instructions."""
        return code_system_prompt(tools=self._tools, shared=self.mode.shared(),
                                  user_prompt=layers, sandbox_note=self.mode.note())

    # ------------------------------------------------------------------ cells
    async def exec_cell(self, effect: ExecCell) -> CellDone:
        self._cell, self._submitted, self._iteration = effect, None, effect.iteration
        cid = self._cid(effect.cell)
        self.run.emit(ev.CodeCellStarted(effect.cell, effect.code), cid)
        out = await self.mode.sandbox.run_cell(
            effect.code, self._on_request,
            lambda text: self.run.emit(ev.CodeCellOutput(effect.cell, scrub(clean_text(text))),
                                       cid))
        if self.fresh:
            out.note = "; ".join(n for n in (FRESH_NOTE, out.note) if n)
            self.fresh = False
        self._record(effect, out)
        self._cell = None
        submitted = self._take_submitted()
        if submitted is not None:
            return CellDone(submitted=True, value=submitted[0])
        return CellDone()

    def _take_submitted(self) -> tuple[Any] | None:
        submitted, self._submitted = self._submitted, None  # set by a host call of the cell
        return submitted

    def settle(self) -> None:
        """After a cancel: the running cell, with what it printed so far, as cancelled."""
        cell = self._cell
        self._cell = None
        out = self.mode.sandbox.current
        if cell is None or out is None:
            return
        out.status = "cancelled"
        out.error = out.error or "stopped: the cell was interrupted"
        self._record(cell, out)

    def _record(self, effect: ExecCell, out: CellOutput) -> None:
        # what a cell printed is outside text: cleaned and scrubbed of credential shapes
        text = scrub(clean_text(out.text))
        error = scrub(clean_text(out.error)) if out.error else None
        value = self._submitted[0] if self._submitted is not None else None
        self.run.emit(ev.CodeCellCompleted(
            effect.cell, effect.code, out.status, text, out.duration_ms, error=error,
            displays=out.displays or None, final_value=value, truncated=out.truncated or None,
            note=out.note), self._cid(effect.cell))
        observation = observation_text(
            effect.cell, output=text, error=error, truncated=out.truncated, note=out.note,
            status=out.status, images=sum(1 for d in out.displays if "image/png" in d))
        self.run.append_message(Message.build(Role.USER, [(PartKind.TEXT, observation)],
                                              origin="code_observation"))

    def _cid(self, cell: int) -> str:
        return f"cell:{self.run.turn_id}:{cell}"

    # ------------------------------------------------------------------ host calls
    async def _on_request(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        if op == "submit":
            # JSON text from the sandbox can spell NaN and lone surrogates (ADR 12, 139)
            self._submitted = (clean_json(request.get("value")),)
            return None
        if op == "tool":
            return await self._tool(str(request.get("name", "")), request.get("args") or {})
        if op == "llm_query":
            return await self._llm_query(str(request.get("prompt", "")))
        raise ValueError(f"unknown host call {op!r}")

    async def _tool(self, name: str, args: Any) -> Any:
        run = self.run
        call = LlmPart.tool_call(fresh_id("call_"), name, json.dumps(args, default=str))
        batch = run.tool_batch([call], keep_whole=True)  # the dispatch model tool calls get
        try:
            with run.tool_scope():
                await batch.run()
        except BaseException:
            batch.settle()
            raise
        record = run.tool_calls[-1]
        if not record.success:
            raise RuntimeError(f"tool {name!r} failed: {record.output}")
        assert batch.whole is not None
        return batch.whole.get(record.call_id, record.output)  # the record's is bounded

    async def _llm_query(self, prompt: str) -> str:
        """One turn of a child session ``<session>.<turn>.q<n>`` with the turn's provider and
        model, no tools and no history; its usage rolls up like a tool's ``run_child``."""
        run = self.run
        self._children += 1
        cell = self._cell.cell if self._cell is not None else 0
        child_id = check_id(f"{run.parts.session_id}.{run.turn_id}.q{self._children}",
                            "child session id")
        scope = run.children_scope()
        child = await (run.parts.core.session(child_id).parent(run.parts.session_id)
                       .provider(run.provider).model(run.model).open())
        try:
            tools = child.tools()
            tools.set_membership_many({t["name"]: False for t in tools.all_tools()
                                       if t["member"]})
        except BaseException:
            await child.close()
            raise
        result = await run_child_turn(scope, child, clean_text(prompt),
                                      call_id=f"q{self._children}",
                                      correlation_id=self._cid(cell))
        if not result.outcome.is_finished:
            raise RuntimeError(f"llm_query failed: the child turn {child_id} ended "
                               f"{scrub(str(result.outcome))}")
        return result.assistant_output.safe_text


__all__ = ["CellRun", "CodeCells"]
