"""One turn, from lease to final commit: the driver of the pure turn machine.

Theory of operation
1. Wait for the session's writer lock (the cancel token is already registered, so a sweep
   reaches turns waiting here), acquire the session execution lease (busy ->
   ``SessionExecutionBusy``; a queued drain brings its own lease and claim).
2. The rules of the turn live in :mod:`lash_nb._core.turn_machine`; this driver asks it for
   effects and performs them: the progress commit (append the user message and make it
   durable: CAS on the head revision, on conflict reload from the store and retry once),
   model calls (``model_call.call_model``), tool batches (``tool_batch``), checkpoints
   (claim ``earliest_safe_boundary`` queued input under the turn's own lease and show it to
   the model as a user message), the seal, and the record effects (events, messages,
   issues).
3. Cancellation (``cancel.py``): only between the progress commit and the seal (the
   bridge's window) does a token cancel cancel this task; the effect in flight is abandoned,
   the machine told ``Cancelled`` decides how to settle (partial prose kept as interrupted,
   every tool call given a result). The final commit is never cancelled.
4. Final commit (atomic): new nodes, terminal turn record, usage, call rows, events, completed
   queue claims, lease release. Then the observation ``committed`` is published. A store
   that cannot take it now (full disk, read-only or moved file) makes it wait; a Stop or an
   interrupt asked after the wait began ends it (``watch_wait_stop``). Refused, it wrote
   nothing: the turn raises ``TurnNotSaved`` carrying the answer, and its unsaved nodes leave
   the session's view (docs/adr/0175, 0181).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._core import events as ev
from .._core import turn_machine as tm
from .._core.cancel import CancellationToken
from .._core.code_mode import (
    AppendProtocolNote,
    CellDone,
    CodeTurnMachine,
    CodeUnavailable,
    ExecCell,
    SettleCell,
)
from .._core.context_window import Window, learn_window
from .._core.context_window import plan as plan_window
from .._core.events import TurnActivity
from .._core.graph import SessionNode
from .._core.llm import LlmPart, LlmRequest, LlmResponse, LlmToolSpec, Provider, ProviderFailureKind
from .._core.prompt import PromptLayer
from .._core.queue import ClaimBoundary, QueueClaim
from .._core.records import (
    Message,
    Part,
    PartKind,
    Role,
    ToolCallRecord,
    TurnInput,
    TurnIssue,
    TurnOutcome,
    TurnResult,
    TurnStop,
    fresh_id,
)
from .._core.usage import ZERO_USAGE, LlmCallRecord, TokenLedgerEntry, TokenUsage
from .._errors import (
    CodeExecutionUnavailable,
    PluginError,
    SessionExecutionLeaseLost,
    StoreError,
    StoreFullError,
    StorePathError,
)
from .._store.base import Lease, hints_empty_queue, watches_turn_cancel
from .._store.waits import observe_store_waits, stop_observing
from .abandon import abandon_quietly
from .attachments import input_message
from .cancel import TaskBridge
from .children import ChildScope, child_scope
from .code_mode.cells import CodeCells
from .model_call import ModelCallFailed, call_model, provider_scrub, provider_scrub_value
from .parts import SessionParts
from .prompt_layers import TurnPhase, render_for
from .tool_batch import ToolBatch
from .tracing import record_turn, tracing_enabled
from .turn_commit import commit_progress, commit_terminal, not_saved, waits_end_on_stop
from .turn_plugins import checkpoint_texts, turn_input_hooks
from .turn_records import (
    assemble_result,
    assistant_message,
    has_reasoning,
    input_id,
    joined_text,
    now_ms,
    unique_call_ids,
)
from .writer import LeaseKeeper

# a turn whose model and tools never await lets the event loop run (a Stop, widgets, the
# lease keeper) before a model call once it has kept the loop this long (ADR 0100)
LOOP_TURN_EVERY_S = 0.005

_REQUESTS = frozenset({tm.ProgressCommit, tm.LlmCall, tm.ToolCalls, tm.Checkpoint, tm.Seal})
_RECORDS = frozenset({tm.Emit, tm.AppendToolCallMessage, tm.AppendProse})


def _noop() -> None:
    return None


def _no_phase(name: str, begin: bool) -> None:
    return None


def _overflowed(response: LlmResponse | ModelCallFailed) -> bool:
    return (isinstance(response, ModelCallFailed)
            and response.error.kind is ProviderFailureKind.CONTEXT_OVERFLOW)


class TurnRun:
    def __init__(
        self,
        parts: SessionParts,
        turn_input: TurnInput,
        turn_id: str,
        token: CancellationToken,
        *,
        provider: Provider | None = None,
        model: str | None = None,
        lease: Lease | None = None,
        claim: QueueClaim | None = None,
        sink: Callable[[TurnActivity], None] | None = None,
        hold_lock: bool = False,
        attempt_prefix: str | None = None,
        prompt: PromptLayer | None = None,
        plugin_inputs: Mapping[str, Any] | None = None,
    ) -> None:
        self.parts = parts
        self.input = turn_input
        self.turn_id = turn_id
        self.token = token
        self.provider: Provider = provider or parts.provider
        self.model = model or parts.state.policy.model
        self.retry_policy = parts.retry_policy
        self.lease = lease
        self.claims: list[QueueClaim] = [claim] if claim else []
        self._own_claims = len(self.claims)  # the claims after these joined at a checkpoint
        self.sink = sink
        self.hold_lock = hold_lock  # the caller (a queued drain) already holds the writer lock
        self.attempt_prefix = attempt_prefix  # turn ids of earlier attempts of the same work
        self.handed_back: list[str] = []  # batches returned to the queue uncounted (_hand_back)
        self.activities: list[TurnActivity] = []
        self.llm_calls: list[LlmCallRecord] = []
        self.tool_calls: list[ToolCallRecord] = []
        self.partial_prose: list[str] = []
        self.new_nodes: list[SessionNode] = []
        self.persisted_nodes = 0
        self.errors: list[TurnIssue] = []
        self.cumulative = ZERO_USAGE
        self.estimated_usage = ZERO_USAGE  # the part of ``cumulative`` that is estimated
        self.children_usage: list[TokenLedgerEntry] = []  # child sessions its tools ran
        self.bridge = TaskBridge(token)  # token -> this task, in the cancellable window
        blank = turn_input.is_blank() and not self.claims
        # code mode (lash's RLM protocol): its machine and the cells' driver (code_mode/)
        self.code = CodeCells(self, parts.code_mode) if parts.code_mode is not None else None
        self.machine: tm.TurnMachine = (
            CodeTurnMachine(parts.state.policy.max_turns, blank) if self.code is not None
            else tm.TurnMachine(max_turns=parts.state.policy.max_turns, input_blank=blank))
        self._keeper: LeaseKeeper | None = None
        self._response: LlmResponse | None = None
        self._batch: ToolBatch | None = None
        self.outcome_emitted = False
        self._tools: tuple[LlmToolSpec, ...] | None = None  # the catalog, read at the 1st call
        self._system: str | None = None  # the rendered prompt layers, at the 1st call
        self.prompt = prompt  # the turn's prompt layer (prompt_layers.py)
        self.plugin_inputs: Mapping[str, Any] = plugin_inputs or {}
        self._plugin_injections = 0
        self.finish_reasons: dict[str, str] = {}  # call id -> terminal reason (tracing)
        self._loop_ran_at = 0.0  # perf_counter when this turn last let the event loop run
        self._children_scope: ChildScope | None = None

    # ------------------------------------------------------------------ events
    def emit(self, event: ev.TurnEvent, correlation_id: str) -> None:
        activity = TurnActivity(fresh_id("a"), correlation_id, event, self.turn_id)
        self.activities.append(activity)
        self.parts.feed.activity(activity)
        if self.sink is not None:
            self.sink(activity)

    def emit_independent(self, event: ev.TurnEvent) -> None:
        self.emit(event, fresh_id("c"))

    # ------------------------------------------------------------------ entry
    async def execute(self) -> TurnResult:
        loop = asyncio.get_running_loop()

        def on_store_wait(event: ev.StoreWait, correlation_id: str) -> None:
            with contextlib.suppress(RuntimeError):  # the store waits on its own thread
                loop.call_soon_threadsafe(self.emit, event, correlation_id)

        self.bridge.attach()
        watching = observe_store_waits(on_store_wait)
        try:
            if self.hold_lock:
                return await self._execute_locked()
            async with self.parts.writer.lock():
                return await self._execute_locked()
        finally:
            stop_observing(watching)
            self.bridge.detach()

    async def _execute_locked(self) -> TurnResult:
        w = self.parts.writer
        started_ms, t0 = now_ms(), time.perf_counter()
        self._loop_ran_at = t0  # the loop ran this task just now
        lease = self.lease or await w.acquire_lease()
        keeper = self._keeper = w.keep_lease(lease, self.token)
        unwatch: Callable[[], None] = _noop
        unsaved: TurnResult | None = None  # the answer while its final commit runs
        try:
            # memory, DuckDB: no cross-process cancel; in the try: a failure here must not leave
            # the keeper renewing the lease of a turn that never ran (ADR 0170)
            if watches_turn_cancel(self.parts.store):
                unwatch = await w.watch_remote_cancel(self.turn_id, self.token)
            if self.parts.state.stale:
                await w.reload()
            surface = self.parts.surface
            # the common case: nobody times phases (no probe: no phase calls at all)
            phase = surface.phase if surface.probe is not None else _no_phase
            phase(TurnPhase.BEFORE_TURN_HOOKS, True)
            await self._turn_input_hooks()  # a plugin may replace the input; nothing written yet
            phase(TurnPhase.BEFORE_TURN_HOOKS, False)
            phase(TurnPhase.EFFECT_LOOP, True)
            outcome = await self._drive()
            phase(TurnPhase.EFFECT_LOOP, False)
            if self.claims and outcome.stop is TurnStop.CANCELLED:  # a worker's stop: all back
                await self._hand_back(keep=0 if self.token.hand_back() else self._own_claims)
            result = assemble_result(self, outcome, started_ms, t0)
            phase(TurnPhase.FINAL_COMMIT, True)
            unsaved = result
            with waits_end_on_stop(self.token):
                result = await commit_terminal(
                    self, keeper, result,
                    lambda: assemble_result(self, TurnOutcome.stopped(TurnStop.RUNTIME_ERROR),
                                            started_ms, t0))
            unsaved = None
            phase(TurnPhase.FINAL_COMMIT, False)
        except BaseException as e:
            keeper.stop()
            self.parts.state.stale = True
            await w.release_quietly(keeper.lease)
            if isinstance(e, StoreError):  # a commit the store refused wrote nothing
                self._forget_unsaved()
                if unsaved is not None:  # the answer was paid for: the caller keeps it
                    raise not_saved(self, e, unsaved) from e
            raise
        finally:
            unwatch()
        keeper.stop()
        if tracing_enabled():
            record_turn(result, provider_kind=self.provider.kind, model=self.model,
                        prompt="\n".join(i.text for i in self.input.items),
                        finish_reasons=self.finish_reasons)
        return result

    def _forget_unsaved(self) -> None:
        """Take this turn's nodes that no commit wrote off the session's view, which then
        shows what the store holds (ADR 175); the handle is stale: the next turn reloads."""
        unsaved = self.new_nodes[self.persisted_nodes:]
        if unsaved:
            graph = self.parts.state.graph
            graph.branch_to(unsaved[0].parent_node_id)
            graph.tombstone([n.node_id for n in unsaved])

    # ------------------------------------------------------------------ the driver
    async def _drive(self) -> TurnOutcome:
        """Perform the machine's effects until it is done."""
        m = self.machine
        surface = self.parts.surface
        try:
            while True:
                effect = m.poll_effect()
                kind = type(effect)
                if kind is tm.Done:
                    return effect.outcome  # type: ignore[union-attr]
                if kind in _RECORDS:  # the common records first (effects are final classes)
                    self._record(effect)  # type: ignore[arg-type]
                elif kind in _REQUESTS or isinstance(effect, ExecCell):
                    timed = surface.probe is not None  # the common case: nobody times phases
                    if timed:
                        waiting = m.state.value  # the machine's phase, for a turn phase probe
                        surface.phase(waiting, True)
                    # the request, dispatched by type here (not in a helper coroutine: one
                    # coroutine fewer per request and in the chain every suspension resumes)
                    response: tm.Response | CellDone | CodeUnavailable
                    if kind is tm.LlmCall:
                        response = await self._llm_call(effect.iteration)  # type: ignore[union-attr]
                    elif kind is tm.ToolCalls:
                        response = await self._run_tools()
                    elif kind is tm.Checkpoint:
                        response = tm.CheckpointDone(await self._checkpoint(
                            effect.kind, effect.pending_text))  # type: ignore[union-attr]
                    elif kind is tm.Seal:
                        self.bridge.open = False
                        response = tm.Sealed(self.token.seal())
                    elif kind is tm.ProgressCommit:
                        response = await self._progress()
                    else:
                        response = await self._exec_cell(effect)  # type: ignore[arg-type]
                    if timed:
                        surface.phase(waiting, False)
                    m.handle_response(response)
                elif effect is None:
                    raise tm.TurnMachineError(f"the turn machine waits in {m.state.value}")
                else:
                    self._record(effect)
        except asyncio.CancelledError:
            if not self.bridge.open:
                raise  # not a token cancel: the task itself is being torn down
            self.bridge.absorb()
            # the keeper cancels with origin lease_lost when another owner took the session
            lost = self.token.origin == "lease_lost"
            m.handle_response(tm.LeaseLost() if lost else tm.Cancelled())
            return self._finish_records()
        except SessionExecutionLeaseLost:  # a checkpoint claim found the session taken over
            if not self.bridge.open:
                raise
            self.bridge.open = False
            m.handle_response(tm.LeaseLost())
            return self._finish_records()
        finally:
            self.bridge.open = False

    async def _hand_back(self, keep: int = 0) -> None:
        """Batches back to the queue uncounted: a worker's stop all (ADR 158), a person's
        those that joined at a checkpoint, not the turn's own ``keep`` (ADR 212)."""
        claims, self.claims = self.claims[keep:], self.claims[:keep]
        for c in claims:  # one the store refuses dies with the lease generation (counted)
            if await abandon_quietly(self.parts, c, None, count_attempt=False):
                self.handed_back.extend(c.batch_ids)

    def _finish_records(self) -> TurnOutcome:
        """Carry out the record effects the machine asks for after a cancel."""
        while True:
            effect = self.machine.poll_effect()
            if isinstance(effect, tm.Done):
                return effect.outcome
            assert effect is not None
            self._record(effect)

    def _record(self, effect: tm.Effect) -> None:
        kind = type(effect)  # the common records first, by type (effects are final classes)
        if kind is tm.Emit:
            self.emit_independent(effect.event)  # type: ignore[union-attr]
        elif kind is tm.AppendToolCallMessage:
            assert self._response is not None
            self._append(assistant_message(self._response))
        elif isinstance(effect, tm.AppendProse):
            self._append(Message.build(Role.ASSISTANT, [(PartKind.PROSE, effect.text)]))
        elif isinstance(effect, tm.AppendNote):
            self._append(Message.build(Role.SYSTEM, [(PartKind.ERROR, effect.text)]))
        elif isinstance(effect, tm.RecordIssue):
            self.errors.append(effect.issue)
        elif isinstance(effect, tm.KeepPartialProse):
            self._keep_partial_prose()
        elif isinstance(effect, tm.SettleTools):
            self._settle_tools()
        elif isinstance(effect, SettleCell):
            assert self.code is not None
            self.code.settle()
        elif isinstance(effect, AppendProtocolNote):
            self._append(Message.build(Role.USER, [(PartKind.TEXT, effect.text)],
                                       origin="code_protocol"))
        else:
            raise tm.TurnMachineError(f"unexpected effect {effect!r}")

    # ------------------------------------------------------------------ request effects
    async def _progress(self) -> tm.Response:
        assert self._keeper is not None
        await commit_progress(self, self._keeper)
        if self.claims:
            self.emit_independent(ev.QueuedWorkStarted("idle", list(self.claims[0].batch_ids)))
        cancelled = self.token.cancelled
        self.bridge.open = not cancelled and not self.machine.input_blank
        return tm.ProgressCommitted(cancelled=cancelled)

    async def _llm_call(self, iteration: int) -> tm.Response:
        if iteration and time.perf_counter() - self._loop_ran_at >= LOOP_TURN_EVERY_S:
            # a local model and tools that never await would keep the loop (Stop, widgets,
            # the lease keeper) from running for the whole turn: let it run before a call
            # once the loop has waited LOOP_TURN_EVERY_S (each call, for a slow local model)
            await asyncio.sleep(0)
            self._loop_ran_at = time.perf_counter()
        if self.token.cancelled:
            raise asyncio.CancelledError
        st = self.parts.state
        if self.code is not None:
            try:
                await self.code.prepare()
            except CodeExecutionUnavailable as unavailable:
                return CodeUnavailable(str(unavailable))
        self.emit_independent(ev.ModelRequestStarted(iteration))
        if self._tools is None:
            surface = self.parts.surface
            timed = surface.probe is not None
            if timed:
                surface.phase(TurnPhase.PROMPT_BUILD, True)
            try:
                self._tools = self.parts.catalog.specs()
                self._system = render_for(surface, st, turn_id=self.turn_id,
                                          turn_layer=self.prompt,
                                          plugin_inputs=self.plugin_inputs)
            except PluginError as plugin_err:  # the turn still ends with an outcome (ADR 14)
                self._tools = None
                return tm.LlmFailed(str(plugin_err), "plugin_error", False)
            if timed:
                surface.phase(TurnPhase.PROMPT_BUILD, False)
            if self.code is not None:  # host tools are functions in the sandbox, not model tools
                self._tools, self._system = (), self.code.system_prompt(self._system)
        view = st.graph.view()
        tokens = st.policy.context_window or st.learned_context_window
        window = self._window(view, "window", tokens) if tokens else None  # None: no window known
        messages = view if window is None else view[window.start:]
        request = LlmRequest(
            model=self.model, messages=messages, tools=self._tools,
            attachments=await self.parts.blobs.for_messages(self.parts.store, messages),
            system_prompt=self._system, session_id=st.session_id,
            turn_id=self.turn_id, protocol_iteration=iteration,
        )
        response = await call_model(self, self.provider, request)
        if type(response) is LlmResponse:  # the common case: a reply (no overflow to handle)
            pass
        elif _overflowed(response) and st.policy.on_context_overflow == "window":
            # the provider refused the prompt as too long: it is the largest size known not to
            # fit; a call that sent the whole path is sent once more as a window (ADR 60)
            st.learned_context_window = learn_window(request.messages, self._system)
            resend = None if window is not None else self._window(
                view, "overflow", st.learned_context_window)
            if resend is not None:
                request = dataclasses.replace(request, messages=view[resend.start:])
                response = await call_model(self, self.provider, request,
                                            call_id=f"{self.turn_id}:{iteration}:windowed")
                if _overflowed(response):  # still too long: the next call windows tighter
                    st.learned_context_window = learn_window(request.messages, self._system)
        if isinstance(response, ModelCallFailed):
            err = response.error
            return tm.LlmFailed(err.message, err.kind.value, err.retryable)
        self.cumulative = self.cumulative + response.usage
        if self.llm_calls:
            self.finish_reasons[self.llm_calls[-1].call_id] = response.terminal_reason.value
        self.emit_independent(ev.Usage(iteration, response.usage, self.cumulative))
        self.partial_prose = []
        self._response = response = unique_call_ids(response)
        return tm.LlmReplied(joined_text(response), len(response.tool_calls()),
                             has_reasoning(response), response.terminal_reason)

    async def _exec_cell(self, effect: ExecCell) -> CellDone | CodeUnavailable:
        assert self.code is not None
        if self.token.cancelled:
            raise asyncio.CancelledError
        try:
            return await self.code.exec_cell(effect)
        except CodeExecutionUnavailable as err:  # a restart failed
            return CodeUnavailable(str(err))

    def tool_batch(self, calls: list[LlmPart], *, keep_whole: bool = False) -> ToolBatch:
        """A batch of this turn's tool calls: the model's, or a code-mode cell's host calls
        (one dispatch: membership, validation, approval, records; ``keep_whole``: the cell is
        given each whole output, the records hold it bounded)."""
        return ToolBatch(
            calls, registry=self.parts.state.registry, session_id=self.parts.session_id,
            turn_id=self.turn_id, emit=self.emit, records=self.tool_calls, token=self.token,
            approvals=self.parts.approvals, scrub=provider_scrub(self.provider),
            scrub_output=provider_scrub_value(self.provider),
            max_output=self.parts.state.policy.max_tool_output, keep_whole=keep_whole)

    def tool_scope(self) -> contextlib.AbstractContextManager[None]:
        """While tools run: ``run_child()`` inside a tool opens a child of this turn."""
        return child_scope(self.children_scope())

    def children_scope(self) -> ChildScope:
        """What a child session of this turn reports to (``run_child``, ``llm_query``): one
        per turn, built at its first tool batch."""
        scope = self._children_scope
        if scope is None:
            scope = self._children_scope = ChildScope(
                self.parts.core, self.parts.session_id, self.turn_id, self.emit, self.token,
                self.children_usage)
        return scope

    def _window(self, view: Sequence[Message], reason: str, tokens: int | None) -> Window | None:
        """The context window this call uses (None: send the whole path); shown to the user."""
        window = plan_window(view, tokens, system_prompt=self._system)
        if window is not None:
            self.emit_independent(ev.ContextWindowed(
                reason, len(view) - window.start, window.left_out, window.estimated_tokens,
                window.sent_tokens, window.window_tokens))
        return window

    async def _run_tools(self) -> tm.Response:
        assert self._response is not None
        calls: list[LlmPart] = self._response.tool_calls()
        self._batch = batch = self.tool_batch(calls)
        with self.tool_scope():
            await batch.run()
        if batch.images:  # a tool returned a picture: its bytes before the commit naming it
            await self.parts.blobs.put(self.parts.store,
                                       [i for images in batch.images.values() for i in images])
        self._append(batch.result_message(with_images=bool(batch.images)))
        self._batch = None
        return tm.ToolsDone()

    async def _checkpoint(self, kind: str, pending_text: str) -> bool:
        keeper = self._keeper
        assert keeper is not None
        store, bound = self.parts.store, self.parts.max_batch_attempts
        if hints_empty_queue(store) and store.surely_nothing_queued(keeper.lease):
            # nothing to claim (no claim, no store call: the common case)
            if not self.parts.surface.plugins.plugins:
                return False
            return await self._plugin_checkpoint(kind, pending_text)
        try:
            claim = await store.claim_queued_work(
                keeper.lease, boundary=ClaimBoundary.ACTIVE_TURN_CHECKPOINT, max_attempts=bound)
        except SessionExecutionLeaseLost:
            if not await keeper.recover():
                raise
            claim = await store.claim_queued_work(
                keeper.lease, boundary=ClaimBoundary.ACTIVE_TURN_CHECKPOINT, max_attempts=bound)
        except (StoreFullError, StorePathError):  # a store that cannot take a claim now: none;
            claim = None  # the work stays queued, the final commit waits for it (ADR 181)
        if claim is None:
            return await self._plugin_checkpoint(kind, pending_text)
        self.claims.append(claim)
        if pending_text:
            self._append(Message.build(Role.ASSISTANT, [(PartKind.PROSE, pending_text)]))
        turn_input = claim.turn_input()
        self._append(input_message(turn_input.items, origin="queued_input"))
        inputs = [{"id": input_id(b.source_key, b.batch_id), "message": b.text}
                  for b in claim.batches]
        self.emit_independent(ev.QueuedInputAccepted(kind, inputs))
        self.parts.feed.queue_changed("claimed", claim.batch_ids)
        return True

    async def _turn_input_hooks(self) -> None:
        self.input = await turn_input_hooks(self.parts, self.turn_id, self.input,
                                            self.plugin_inputs)

    async def _plugin_checkpoint(self, kind: str, pending_text: str) -> bool:
        """Plugin checkpoint hooks; injected text continues the turn (turn_plugins.py)."""
        texts = await checkpoint_texts(self.parts, self.turn_id, kind, self.plugin_inputs,
                                       self._plugin_injections, self.errors)
        if not texts:
            return False
        self._plugin_injections += 1
        if pending_text:
            self._append(Message.build(Role.ASSISTANT, [(PartKind.PROSE, pending_text)]))
        self._append(Message.build(Role.USER, [(PartKind.TEXT, t) for t in texts],
                                   origin="plugin"))
        return True

    # ------------------------------------------------------------------ usage (model_call)
    def count_cut_usage(self, usage: TokenUsage, iteration: int, *, estimated: bool) -> None:
        """Usage of a model attempt cut by a cancel (see ``model_call``)."""
        if usage.is_zero():
            return
        self.cumulative = self.cumulative + usage
        if estimated:
            self.estimated_usage = self.estimated_usage + usage
        self.emit_independent(ev.Usage(iteration, usage, self.cumulative, estimated or None))

    # ------------------------------------------------------------------ graph
    def append_message(self, message: Message) -> None:
        self._append(message)

    def _append(self, message: Message) -> None:
        graph = self.parts.state.graph
        node = SessionNode(message.id, graph.leaf_node_id, "message", message, None, now_ms(),
                           self.turn_id)
        graph.append(node)
        self.new_nodes.append(node)

    def _settle_tools(self) -> None:
        batch = self._batch
        if batch is not None:
            batch.settle()
            self._append(batch.result_message())
            self._batch = None

    def _keep_partial_prose(self) -> None:
        text = "".join(self.partial_prose)
        if text:
            mid = fresh_id("m")
            self._append(Message(mid, Role.ASSISTANT, (Part(f"{mid}.p0", PartKind.PROSE, text,
                                                            interrupted=True),)))
        self.partial_prose = []


__all__ = ["TurnRun"]
