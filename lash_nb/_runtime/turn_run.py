"""One turn, from lease to final commit (standard mode: native tool calling).

Theory of operation
1. Wait for the session's writer lock (the cancel token is already registered, so a sweep
   reaches turns waiting here), acquire the session execution lease (busy ->
   ``SessionExecutionBusy``; a queued drain brings its own lease and claim).
2. Append the user message and make it durable with a progress commit (CAS on the head
   revision; on conflict reload the session from the store and retry once).
   A queued re-run of a batch whose earlier attempt stopped after its progress commit first
   branches before that attempt's trailing nodes, so the model sees the input once.
3. Loop: model call (``model_call.call_model``); a response without tool calls passes the
   ``before_completion`` checkpoint and finishes ``assistant_message``; a response with tool
   calls appends one assistant message, runs all calls concurrently, appends one user message
   with the results in call order, passes the ``after_work`` checkpoint and loops, until
   ``max_turns`` model calls (default 50). The loop yields to the event loop once per model
   call. Checkpoints claim ``earliest_safe_boundary`` queued input under the turn's own lease
   and show it to the model as a user message. A tool that raises anything (``SystemExit``
   too) gives the model an error result; ``KeyboardInterrupt`` in a tool cancels the turn.
4. Cancellation: only while the loop runs (``cancellable``) does a token cancel cancel this
   task; the loop's awaits (provider stream, tool calls, retry sleep) are abandoned. Settling
   keeps partial prose (marked interrupted) and gives every tool call a result (completed, or
   an interrupted marker) so the graph stays consistent. The final commit is never cancelled.
5. Final commit (atomic): new nodes, terminal turn record, usage, call rows, events, completed
   queue claims, lease release. Then the observation ``committed`` is published. A lease that
   expired while the loop was blocked is still held and commits; if another owner took the
   session over, the turn commits under a fresh lease when nobody committed meanwhile, else
   it ends ``stopped: runtime_error`` (``lease_lost``) without raising (docs/adr/0014).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, Callable

from .._core import events as ev
from .._core.cancel import CancellationToken
from .._core.cancel import evidence as cancel_evidence
from .._core.events import TurnActivity
from .._core.graph import SessionNode
from .._core.llm import LlmPart, LlmRequest, LlmResponse, TerminalReason
from .._core.queue import ClaimBoundary, QueueClaim
from .._core.records import (
    AssistantOutput,
    ExecutionSummary,
    Message,
    OutputState,
    Part,
    PartKind,
    Role,
    ToolCallRecord,
    TurnInput,
    TurnIssue,
    TurnOutcome,
    TurnResult,
    TurnStop,
    append_assistant_text_part,
    fresh_id,
    sanitize_assistant_output,
)
from .._core.text import clean_json
from .._core.tools import ToolContext
from .._core.usage import BUCKETS, ZERO_USAGE, TokenLedgerEntry, TokenUsage, merge_ledger
from .._errors import (
    ClaimSuperseded,
    HeadRevisionConflict,
    LashError,
    SessionExecutionLeaseLost,
    TurnCommitConflict,
)
from .._store.base import Lease, ReadScope, RuntimeCommit, TurnRecord, TurnStart, UsageDelta
from .._store.waits import observe_store_waits, stop_observing
from .model_call import ModelCallFailed, call_model

if TYPE_CHECKING:
    from .session import LashSession

_TERMINAL_STOPS = {
    TerminalReason.OUTPUT_LIMIT: TurnStop.INCOMPLETE,
    TerminalReason.CONTENT_FILTER: TurnStop.PROVIDER_ERROR,
    TerminalReason.CONTEXT_OVERFLOW: TurnStop.PROVIDER_ERROR,
    TerminalReason.PROVIDER_ERROR: TurnStop.PROVIDER_ERROR,
    TerminalReason.CANCELLED: TurnStop.CANCELLED,
}


_LEASE_LOST = ("another runtime took this session over while the turn ran; its work was not "
               "committed (queued input runs again)")


def now_ms() -> int:
    return int(time.time() * 1000)


class TurnRun:
    def __init__(
        self,
        session: LashSession,
        turn_input: TurnInput,
        turn_id: str,
        token: CancellationToken,
        *,
        provider: Any = None,
        model: str | None = None,
        lease: Lease | None = None,
        claim: QueueClaim | None = None,
        sink: Callable[[TurnActivity], None] | None = None,
        hold_lock: bool = False,
        attempt_prefix: str | None = None,
    ) -> None:
        self.session = session
        self.input = turn_input
        self.turn_id = turn_id
        self.token = token
        self.provider = provider or session.provider
        self.model = model or session.state.policy.model
        self.lease = lease
        self.claims: list[QueueClaim] = [claim] if claim else []
        self.sink = sink
        self.hold_lock = hold_lock  # the caller (a queued drain) already holds the writer lock
        self.attempt_prefix = attempt_prefix  # turn ids of earlier attempts of the same work
        self.activities: list[TurnActivity] = []
        self.llm_calls: list[Any] = []
        self.tool_calls: list[ToolCallRecord] = []
        self.partial_prose: list[str] = []
        self.new_nodes: list[SessionNode] = []
        self.persisted_nodes = 0
        self.errors: list[TurnIssue] = []
        self.cumulative = ZERO_USAGE
        self.estimated_usage = ZERO_USAGE  # the part of ``cumulative`` that is estimated
        self.cancellable = False
        self.task: asyncio.Task[Any] | None = None
        self._keeper: Any = None
        self._pending_calls: list[LlmPart] | None = None
        self._tool_results: dict[str, tuple[str, bool]] = {}
        self._tool_clock: dict[str, tuple[int, float]] = {}  # running call -> (started_ms, t0)
        self._outcome_emitted = False

    # ------------------------------------------------------------------ events
    def emit(self, event: ev.TurnEvent, correlation_id: str) -> None:
        activity = TurnActivity(fresh_id("a"), correlation_id, event, self.turn_id)
        self.activities.append(activity)
        self.session._record_activity(activity)
        if self.sink is not None:
            self.sink(activity)

    def emit_independent(self, event: ev.TurnEvent) -> None:
        self.emit(event, fresh_id("c"))

    def _on_cancel(self) -> None:
        if self.cancellable and self.task is not None and not self.task.done():
            self.task.cancel()

    # ------------------------------------------------------------------ entry
    async def execute(self) -> TurnResult:
        self.task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def on_cancel() -> None:
            try:
                loop.call_soon_threadsafe(self._on_cancel)
            except RuntimeError:
                pass

        def on_store_wait(event: ev.StoreWait, correlation_id: str) -> None:
            try:  # the store waits on its own thread
                loop.call_soon_threadsafe(self.emit, event, correlation_id)
            except RuntimeError:
                pass

        self.token.add_callback(on_cancel)
        watching = observe_store_waits(on_store_wait)
        try:
            if self.hold_lock:
                return await self._execute_locked()
            async with self.session._writer():
                return await self._execute_locked()
        finally:
            stop_observing(watching)
            self.token.remove_callback(on_cancel)

    async def _execute_locked(self) -> TurnResult:
        s = self.session
        started_ms, t0 = now_ms(), time.perf_counter()
        lease = self.lease or await s._acquire_lease()
        keeper = self._keeper = s._keep_lease(lease, self.token)
        unwatch = await s._watch_remote_cancel(self.turn_id, self.token)
        try:
            if s.state.stale:
                await s._reload_from_store()
            invalid = self.input.is_blank() and not self.claims
            await self._progress_commit()
            if self.claims:
                self.emit_independent(ev.QueuedWorkStarted("idle", list(self.claims[0].batch_ids)))
            if invalid:
                outcome = TurnOutcome.stopped(TurnStop.INVALID_INPUT)
                self._issue("input_validation", "the turn input is empty; pass some text",
                            "invalid_turn_input")
            elif self.token.cancelled:
                outcome = TurnOutcome.stopped(TurnStop.CANCELLED)
            else:
                outcome = await self._run_loop()
            result = self._assemble(outcome, started_ms, t0)
            result = await self._commit_terminal(result, started_ms, t0)
        except BaseException:
            keeper.stop()
            s.state.stale = True
            await s._release_lease_quietly(keeper.lease)
            raise
        finally:
            unwatch()
        keeper.stop()
        return result

    async def _run_loop(self) -> TurnOutcome:
        self.cancellable = True
        try:
            outcome = await self._loop()
            self.cancellable = False
            if not self.token.seal():  # a cancel won the race against completion
                return TurnOutcome.stopped(TurnStop.CANCELLED)
            return outcome
        except asyncio.CancelledError:
            task = self.task
            if task is not None:
                task.uncancel()
            self.cancellable = False
            self._settle_interrupted()
            if self.token.origin == "lease_lost":  # the keeper saw another owner take over
                return self._lease_lost_outcome()
            return TurnOutcome.stopped(TurnStop.CANCELLED)
        except SessionExecutionLeaseLost:  # a checkpoint claim found the session taken over
            self.cancellable = False
            self._settle_interrupted()
            return self._lease_lost_outcome()
        finally:
            self.cancellable = False

    def _lease_lost_outcome(self) -> TurnOutcome:
        self._issue("runtime", _LEASE_LOST, "lease_lost", True)
        return TurnOutcome.stopped(TurnStop.RUNTIME_ERROR)

    # ------------------------------------------------------------------ graph
    def _append(self, message: Message) -> None:
        graph = self.session.state.graph
        node = SessionNode(message.id, graph.leaf_node_id, "message", message, None, now_ms(),
                           self.turn_id)
        graph.append(node)
        self.new_nodes.append(node)

    def _user_message(self) -> Message:
        items = self.input.items or ()
        return Message.build(Role.USER, [(PartKind.TEXT, i.text) for i in items] or
                             [(PartKind.TEXT, "")])

    # ------------------------------------------------------------------ loop
    async def _loop(self) -> TurnOutcome:
        s = self.session
        policy = s.state.policy
        tools = s._tool_specs()
        iteration = 0
        while True:
            if iteration:
                # a local model and tools that never await would keep the loop (Stop, widgets,
                # the lease keeper) from running for the whole turn: let it run once per call
                await asyncio.sleep(0)
            if self.token.cancelled:
                raise asyncio.CancelledError
            request = LlmRequest(
                model=self.model, messages=s.state.graph.view(), tools=tools,
                system_prompt=policy.system_prompt, session_id=s.session_id,
                turn_id=self.turn_id, protocol_iteration=iteration,
            )
            self.emit_independent(ev.ModelRequestStarted(iteration))
            response = await call_model(self, self.provider, request)
            if isinstance(response, ModelCallFailed):
                err = response.error
                self.emit_independent(ev.Error(err.message, kind="llm_provider", code=err.kind.value))
                self._issue("llm_provider", err.message, err.kind.value, err.retryable)
                self._keep_partial_prose(interrupted=True)
                return TurnOutcome.stopped(TurnStop.PROVIDER_ERROR)
            self._count_usage(response, iteration)
            self.partial_prose = []
            calls = response.tool_calls()
            text = _joined_text(response)
            stop = _TERMINAL_STOPS.get(response.terminal_reason)
            if stop is not None and not calls:
                if text:
                    self._append(Message.build(Role.ASSISTANT, [(PartKind.PROSE, text)]))
                detail = f"the model stopped with {response.terminal_reason.value}"
                if stop is TurnStop.PROVIDER_ERROR:
                    self.emit_independent(ev.Error(detail, kind="llm_provider",
                                                   code=response.terminal_reason.value))
                self._issue("llm_terminal", detail, response.terminal_reason.value)
                return TurnOutcome.stopped(stop)
            if not calls:
                if not text and not _has_reasoning(response) and not self._after_tool_results():
                    self.emit_independent(ev.Error("the model returned an empty response",
                                                   kind="llm_provider", code="empty_response"))
                    self._issue("llm_provider", "empty response", "empty_response")
                    return TurnOutcome.stopped(TurnStop.PROVIDER_ERROR)
                if await self._checkpoint("before_completion", pending_text=text):
                    iteration += 1
                    continue
                safe = sanitize_assistant_output(text)
                if safe:
                    self._append(Message.build(Role.ASSISTANT, [(PartKind.PROSE, safe)]))
                return TurnOutcome.assistant_message(safe)
            self._append(_assistant_message(response))
            await self._run_tools(calls)
            iteration += 1
            if policy.max_turns is not None and iteration >= policy.max_turns:
                note = f"Turn limit reached ({policy.max_turns}) before a final assistant response."
                self._append(Message.build(Role.SYSTEM, [(PartKind.ERROR, note)]))
                self._issue("runtime", note, "max_turns")
                return TurnOutcome.stopped(TurnStop.MAX_TURNS)
            await self._checkpoint("after_work")

    def _after_tool_results(self) -> bool:
        view = self.session.state.graph.view()
        return bool(view) and bool(view[len(view) - 1].tool_results())

    def _count_usage(self, response: LlmResponse, iteration: int) -> None:
        self.cumulative = self.cumulative + response.usage
        self.emit_independent(ev.Usage(iteration, response.usage, self.cumulative))

    def count_cut_usage(self, usage: Any, iteration: int, *, estimated: bool) -> None:
        """Usage of a model attempt cut by a cancel (see ``model_call``)."""
        if usage.is_zero():
            return
        self.cumulative = self.cumulative + usage
        if estimated:
            self.estimated_usage = self.estimated_usage + usage
        self.emit_independent(ev.Usage(iteration, usage, self.cumulative, estimated or None))

    def _issue(self, kind: str, message: str, code: str | None = None,
               retryable: bool | None = None) -> None:
        self.errors.append(TurnIssue(kind, message, code, retryable))

    async def _checkpoint(self, kind: str, pending_text: str = "") -> bool:
        s = self.session
        bound = s.core.max_batch_attempts
        try:
            claim = await s.store.claim_queued_work(
                self._keeper.lease, boundary=ClaimBoundary.ACTIVE_TURN_CHECKPOINT,
                max_attempts=bound)
        except SessionExecutionLeaseLost:
            if not await self._keeper.recover():
                raise
            claim = await s.store.claim_queued_work(
                self._keeper.lease, boundary=ClaimBoundary.ACTIVE_TURN_CHECKPOINT,
                max_attempts=bound)
        if claim is None:
            return False
        self.claims.append(claim)
        if pending_text:
            self._append(Message.build(Role.ASSISTANT, [(PartKind.PROSE, pending_text)]))
        turn_input = claim.turn_input()
        self._append(Message.build(Role.USER, [(PartKind.TEXT, i.text) for i in turn_input.items],
                                   origin="queued_input"))
        inputs = [{"id": _input_id(b.source_key, b.batch_id), "message": b.text}
                  for b in claim.batches]
        self.emit_independent(ev.QueuedInputAccepted(kind, inputs))
        s._record_queue_changed("claimed", claim.batch_ids)
        return True

    # ------------------------------------------------------------------ tools
    async def _run_tools(self, calls: list[LlmPart]) -> None:
        self._pending_calls = calls
        self._tool_results = {}
        if len(calls) == 1:
            await self._run_one(calls[0])
        else:
            await asyncio.gather(*(self._run_one(c) for c in calls))
        self._append_results(calls)
        self._pending_calls = None

    async def _run_one(self, call: LlmPart) -> None:
        s = self.session
        call_id, name = call.call_id or fresh_id("call_"), call.tool_name or ""
        cid = f"tool:{call_id}"
        args = _parse_args(call.input_json)
        self.emit(ev.ToolCallStarted(call_id, name, args), cid)
        started, t0 = now_ms(), time.perf_counter()
        self._tool_clock[call_id] = (started, t0)
        found = s.state.registry.provider_for(name)
        success = False
        if found is None:
            names = ", ".join(m.name for m in s.state.registry.members()) or "(none)"
            output: Any = f"unknown tool {name!r}; available tools: {names}"
        else:
            provider, manifest = found
            missing = [r for r in manifest.input_schema.get("required", ()) if r not in args]
            if missing:
                output = f"missing required argument(s) {', '.join(missing)} for tool {name!r}"
            else:
                try:
                    output = await provider.execute(name, args, ToolContext(s.session_id, self.turn_id, call_id))
                    success = True
                except asyncio.CancelledError as err:
                    if self.token.cancelled or _being_cancelled():
                        raise
                    output = error_text(err)  # the tool's own, not a cancel of this turn
                except KeyboardInterrupt:
                    # Ctrl-C / a kernel interrupt landed inside the tool: the user wants the
                    # turn stopped. Cancel it here; letting it escape would stop the loop.
                    self.token.cancel("keyboard_interrupt", f"KeyboardInterrupt in tool {name!r}")
                    raise asyncio.CancelledError from None
                except BaseException as err:  # Exception, SystemExit, ...: an error result
                    output = error_text(err)
        duration = round((time.perf_counter() - t0) * 1000, 3)
        try:
            output = clean_json(_jsonable(output))  # tool output enters the session (core/text.py)
        except Exception as err:  # an output that cannot be shown as text
            output = (f"the tool returned a {type(output).__name__} that cannot be shown as "
                      f"text: {error_text(err)}")
            success = False
        self._tool_results[call_id] = (_as_text(output), success)
        self.tool_calls.append(ToolCallRecord(call_id, name, args, output, success, duration, started))
        self.emit(ev.ToolCallCompleted(call_id, name, args, output, duration, success,
                                       "success" if success else "failure"), cid)

    def _append_results(self, calls: list[LlmPart], interrupted: bool = False) -> None:
        mid = fresh_id("m")
        parts = []
        for i, c in enumerate(calls):
            cid = c.call_id or ""
            text, ok = self._tool_results.get(cid, ("interrupted: the turn was stopped", False))
            parts.append(Part(f"{mid}.p{i}", PartKind.TOOL_RESULT, text, cid, c.tool_name,
                              interrupted=cid not in self._tool_results, is_error=not ok))
        self._append(Message(mid, Role.USER, tuple(parts)))

    def _settle_interrupted(self) -> None:
        """Make the graph consistent after a cancel: every tool call gets a result."""
        calls = self._pending_calls
        if calls is not None:
            for c in calls:
                cid = c.call_id or ""
                if cid not in self._tool_results:
                    # it ran from its start until the cancel: that time is real, keep it
                    started, t0 = self._tool_clock.get(cid, (now_ms(), time.perf_counter()))
                    ran = round((time.perf_counter() - t0) * 1000, 3)
                    args = _parse_args(c.input_json)
                    self.tool_calls.append(ToolCallRecord(cid, c.tool_name or "", args,
                                                          "interrupted", False, ran, started, True))
                    self.emit(ev.ToolCallCompleted(cid, c.tool_name or "", args, "interrupted",
                                                   ran, False, "cancelled"), f"tool:{cid}")
            self._append_results(calls)
            self._pending_calls = None
        else:
            self._keep_partial_prose(interrupted=True)

    def _keep_partial_prose(self, interrupted: bool) -> None:
        text = "".join(self.partial_prose)
        if text:
            mid = fresh_id("m")
            self._append(Message(mid, Role.ASSISTANT, (Part(f"{mid}.p0", PartKind.PROSE, text,
                                                            interrupted=interrupted),)))
        self.partial_prose = []

    # ------------------------------------------------------------------ commits
    def _leave_earlier_attempts(self) -> None:
        """A re-run of work whose earlier attempt stopped after its progress commit (its
        process was killed, or it lost its lease): that attempt's nodes end the active path.
        Branch to just before them, so the model sees the input once; they stay in the graph
        on a side branch, and the attempt's turn row says how it ended."""
        if self.attempt_prefix is None:
            return
        graph = self.session.state.graph
        first = None
        node = graph.get(graph.leaf_node_id) if graph.leaf_node_id is not None else None
        while node is not None and self._earlier_attempt(node.turn_id):
            first = node  # walk up from the leaf: only the trailing nodes are read
            node = graph.get(node.parent_node_id) if node.parent_node_id is not None else None
        if first is not None:
            graph.branch_to(first.parent_node_id)

    def _earlier_attempt(self, turn_id: str | None) -> bool:
        """Only queued work is re-run by the runtime: its batch is still queued, so no
        attempt of it completed; a trace / drain id is the same for every attempt."""
        prefix = self.attempt_prefix
        if turn_id is None or prefix is None:
            return False
        return turn_id == self.turn_id or turn_id.startswith(prefix)

    async def _progress_commit(self) -> None:
        s = self.session
        for attempt in (1, 2):
            self._leave_earlier_attempts()
            self._append(self._user_message())
            try:
                res = await s.store.commit(s._commit_base(
                    self._keeper.lease,
                    self.new_nodes,
                    turn_started=TurnStart(self.turn_id, now_ms()),
                    close_open_turns=True,
                ))
            except HeadRevisionConflict:
                if attempt == 2:
                    raise
                await s._reload_from_store()
                self.new_nodes = []
                continue
            s._applied(res.head_revision)
            self.persisted_nodes = len(self.new_nodes)
            return

    def _assemble(self, outcome: TurnOutcome, started_ms: int, t0: float) -> TurnResult:
        if outcome.finish is not None:
            raw = outcome.text or ""
        else:
            raw = "".join(self.partial_prose) or _last_assistant_text(self.new_nodes)
        safe = sanitize_assistant_output(raw)
        state = OutputState.USABLE if safe else OutputState.EMPTY_OUTPUT
        if safe and outcome.is_stopped:
            state = OutputState.RECOVERED_FROM_ERROR
        cancellation = None
        if outcome.stop is TurnStop.CANCELLED:
            origin, reason = cancel_evidence(self.token.origin, self.token.reason)
            cancellation = {"request_id": f"internal:{self.turn_id}",
                            "origin": origin, "reason": reason}
        return TurnResult(
            session_id=self.session.session_id,
            turn_id=self.turn_id,
            outcome=outcome,
            assistant_output=AssistantOutput(safe, raw, state),
            usage=self.cumulative,
            llm_calls=tuple(self.llm_calls),
            tool_calls=tuple(self.tool_calls),
            execution=ExecutionSummary(bool(self.tool_calls), started_ms,
                                       round((time.perf_counter() - t0) * 1000, 3)),
            errors=tuple(self.errors),
            cancellation=cancellation,
            queued_batch_ids=tuple(b for c in self.claims for b in c.batch_ids),
        )

    async def _commit_terminal(self, result: TurnResult, started_ms: int, t0: float) -> TurnResult:
        """The final commit. A lease that merely expired is still held and commits (docs/adr/0014).
        If another owner took the session over meanwhile, the turn re-acquires the lease when
        it is free again and commits only if nobody committed in between (the head revision
        and its claims are unchanged); otherwise it ends ``stopped: runtime_error``
        (``lease_lost``), uncommitted, and its open turn row is closed by whoever commits on
        the session next (this turn itself when it can take the lease)."""
        s = self.session
        keeper = self._keeper
        conflicts = (HeadRevisionConflict, ClaimSuperseded, TurnCommitConflict)
        for attempt in (1, 2):
            try:
                await self._final_commit(keeper.lease, result)
                return result
            except SessionExecutionLeaseLost:
                if attempt == 2 or not await keeper.recover():
                    break
            except conflicts:
                if not keeper.replaced:
                    raise
                break  # someone committed meanwhile (maybe closing this turn as process_lost)
        fresh = keeper.lease if keeper.replaced else None
        if not any(i.code == "lease_lost" for i in self.errors):
            self._issue("runtime", _LEASE_LOST, "lease_lost", True)
        self.claims = []  # not completed: whoever holds the session runs them
        lost = self._assemble(TurnOutcome.stopped(TurnStop.RUNTIME_ERROR), started_ms, t0)
        self.emit_independent(ev.TurnOutcomeEvent(lost.outcome.to_json(), self.turn_id))
        s.state.stale = True
        if fresh is not None:
            await self._close_lost_turn(fresh, lost)
        return lost

    async def _close_lost_turn(self, lease: Lease, result: TurnResult) -> None:
        """Record the terminal row (with its usage and calls, not its messages) of a turn
        whose work could not be committed, if its progress commit left it open."""
        s = self.session
        try:
            await s._reload_from_store()
            persisted = await s.store.load_session(s.session_id, ReadScope.ACTIVE_PATH)
            if persisted is None or self.turn_id not in persisted.open_turn_ids:
                return
            deltas: tuple[UsageDelta, ...] = ()
            if self.cumulative.total() > 0:
                deltas = _usage_deltas(self.turn_id, self.model, self.cumulative,
                                       self.estimated_usage)
            res = await s.store.commit(s._commit_base(
                lease, (), turn=self._turn_record(result), usage_deltas=deltas,
                llm_calls=tuple((self.turn_id, c) for c in self.llm_calls),
                tool_calls=tuple((self.turn_id, c) for c in self.tool_calls),
                events=tuple(self.activities)))
            s._applied(res.head_revision)
            object.__setattr__(result, "head_revision", res.head_revision)
        except (LashError, OSError):
            s.state.stale = True  # the next commit on the session closes it (ADR 4)
        finally:
            await s._release_lease_quietly(lease)

    def _turn_record(self, result: TurnResult) -> TurnRecord:
        return TurnRecord(
            self.turn_id, result.outcome.kind, result.outcome.reason,
            result.execution.started_at_ms, result.execution.duration_ms,
            _commit_hash(self.turn_id, result, self.new_nodes), result.to_json(),
        )

    async def _final_commit(self, lease: Lease, result: TurnResult) -> None:
        s = self.session
        if not self._outcome_emitted:
            self._outcome_emitted = True
            self.emit_independent(ev.TurnOutcomeEvent(result.outcome.to_json(), self.turn_id))
        deltas: tuple[UsageDelta, ...] = ()
        if self.cumulative.total() > 0:
            deltas = _usage_deltas(self.turn_id, self.model, self.cumulative, self.estimated_usage)
        record = self._turn_record(result)
        res = await s.store.commit(s._commit_base(
            lease, self.new_nodes[self.persisted_nodes:],
            turn_index=s.state.turn_index + 1,
            turn=record,
            usage_deltas=deltas,
            llm_calls=tuple((self.turn_id, c) for c in self.llm_calls),
            tool_calls=tuple((self.turn_id, c) for c in self.tool_calls),
            events=tuple(self.activities),
            completed_claims=tuple(self.claims),
            release_lease=True,
        ))
        st = s.state
        st.turn_index += 1
        st.set_ledger(merge_ledger(st.ledger, (TokenLedgerEntry(d.source, d.model, d.usage)
                                                for d in deltas)))
        s._applied(res.head_revision)
        object.__setattr__(result, "head_revision", res.head_revision)
        if self.claims:
            s._record_queue_changed("completed", tuple(b for c in self.claims for b in c.batch_ids))
        s._publish_committed()


# ---------------------------------------------------------------------- helpers


def _usage_deltas(turn_id: str, model: str, cumulative: Any, estimated: Any) -> tuple[UsageDelta, ...]:
    """The turn's usage rows: what providers reported, and (its own row, ``estimated``) what
    was estimated for cut streams."""
    if estimated.is_zero():
        return (UsageDelta(turn_id, "turn", model, cumulative),)
    measured = TokenUsage(**{b: getattr(cumulative, b) - getattr(estimated, b) for b in BUCKETS})
    rows = [UsageDelta(turn_id, "turn", model, estimated, estimated=True)]
    if measured.total() > 0:
        rows.insert(0, UsageDelta(turn_id, "turn", model, measured))
    return tuple(rows)


def _joined_text(response: LlmResponse) -> str:
    text = ""
    for p in response.parts:
        if p.kind == "text" and p.text:
            text = append_assistant_text_part(text, p.text)
    return text


def _has_reasoning(response: LlmResponse) -> bool:
    return any(p.kind == "reasoning" and p.text for p in response.parts)


def _assistant_message(response: LlmResponse) -> Message:
    mid = fresh_id("m")
    parts: list[Part] = []
    text = _joined_text(response)
    if text:
        parts.append(Part(f"{mid}.p0", PartKind.PROSE, text))
    for p in response.parts:
        i = len(parts)
        if p.kind == "reasoning" and (p.text or p.replay):  # replay: ADR 0030
            parts.append(Part(f"{mid}.p{i}", PartKind.REASONING, p.text, replay=p.replay))
        elif p.kind == "tool_call":
            parts.append(Part(f"{mid}.p{i}", PartKind.TOOL_CALL, p.input_json or "{}",
                              p.call_id, p.tool_name, replay=p.replay))
    return Message(mid, Role.ASSISTANT, tuple(parts))


def _parse_args(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    # JSON escapes can spell a lone surrogate ("\\ud800") in otherwise clean arguments
    return clean_json(value) if isinstance(value, dict) else {}


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``str()`` (which may raise: the caller turns
    that into an error result)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError, RecursionError):
        text = str(value)
    if not isinstance(text, str):
        raise TypeError(f"__str__ returned {type(text).__name__}, not str")
    return text


def error_text(err: BaseException) -> str:
    """``Type: message`` of an error raised by a tool, even when its ``str()`` raises."""
    name = type(err).__name__
    try:
        message = str(err)
    except Exception as inner:
        message = f"<str() of the error raised {type(inner).__name__}>"
    return f"{name}: {message}" if message else name


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _input_id(source_key: str | None, batch_id: str) -> str:
    if source_key:
        for prefix in ("host:", "injection:"):
            if source_key.startswith(prefix):
                return source_key[len(prefix):]
        return source_key
    return batch_id


def _last_assistant_text(nodes: list[SessionNode]) -> str:
    for n in reversed(nodes):
        if n.message is not None and n.message.role is Role.ASSISTANT and n.message.text():
            return n.message.text()
    return ""


def _commit_hash(turn_id: str, result: TurnResult, nodes: list[SessionNode]) -> str:
    """Stable over regenerated ids and timestamps: turn id, outcome and message contents."""
    body = {
        "turn_id": turn_id,
        "outcome": result.outcome.to_json(),
        "messages": [
            [n.message.role.value, [[p.kind.value, p.content, p.tool_name] for p in n.message.parts]]
            for n in nodes if n.message is not None
        ],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


__all__ = ["TurnRun", "LashError", "error_text"]
