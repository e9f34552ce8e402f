"""The rules of one turn as a pure state machine: no asyncio, no I/O, no clock.

Theory of operation
- A driver (``lash_nb._runtime.turn_run``) owns the I/O. It asks the machine for the next
  effect with :meth:`TurnMachine.poll_effect`, performs it, and feeds the result back with
  :meth:`TurnMachine.handle_response`. ``poll_effect`` returns ``None`` while the machine
  waits for a response. Effects come in two sorts: *requests* the driver must answer
  (:class:`ProgressCommit`, :class:`LlmCall`, :class:`ToolCalls`, :class:`Checkpoint`,
  :class:`Seal`) and *records* it just carries out in order (:class:`Emit` an event,
  :class:`AppendProse` / :class:`AppendToolCallMessage` / :class:`AppendNote` to the graph,
  :class:`RecordIssue`, :class:`KeepPartialProse`, :class:`SettleTools`). The last effect
  is always :class:`Done` with the outcome. (lash: ``TurnMachine::poll_effect`` /
  ``handle_response`` in ``lash-sansio``.)
- States and who moves them (every move is a row of ``_MOVES``):

  ====================  ==========================  ===========================
  state                 response accepted           next state
  ====================  ==========================  ===========================
  START                 (poll)                      AWAIT_PROGRESS
  AWAIT_PROGRESS        ProgressCommitted           AWAIT_LLM / SEALING / DONE
  AWAIT_LLM             LlmReplied                  AWAIT_TOOLS / AWAIT_CHECKPOINT
                                                    / SEALING
  AWAIT_LLM             LlmFailed                   SEALING
  AWAIT_TOOLS           ToolsDone                   AWAIT_CHECKPOINT / SEALING
  AWAIT_CHECKPOINT      CheckpointDone              AWAIT_LLM / SEALING
  SEALING               Sealed                      DONE
  any but START/DONE    Cancelled, LeaseLost        DONE
  ====================  ==========================  ===========================

- Forbidden: a response that does not belong to the current state raises
  :class:`TurnMachineError` (a driver bug, never a user error); nothing is accepted after
  DONE. Cancellation is accepted in every waiting state and ends the turn ``stopped:
  cancelled`` at once; while tools run it first asks the driver to settle them (every tool
  call gets a result so the graph stays consistent), otherwise to keep the partial prose
  of a cut stream (marked interrupted). ``LeaseLost`` (another runtime took the session
  over) settles the same way and ends ``stopped: runtime_error`` with a ``lease_lost`` issue.
- Outcome rules: a reply without tool calls passes the ``before_completion`` checkpoint and
  finishes ``assistant_message`` (sanitised text); with tool calls the tools run as one
  batch, then ``max_turns`` is checked (``stopped: max_turns`` with a system note), then the
  ``after_work`` checkpoint, then the next model call. A terminal reason without tool calls
  stops the turn (``_TERMINAL_STOPS``); an empty reply that does not follow tool results
  stops ``provider_error``; a failed model call (after the retry ladder) stops
  ``provider_error``. Every loop outcome is sealed (:class:`Seal`): a cancel that won the
  race against completion turns it into ``stopped: cancelled``.
- Retries of one model call are decided by :func:`decide_retry` (the driver owns the
  attempts): a retryable failure before ``max_attempts`` is retried; a retried attempt that
  had shown deltas is retracted first (``model_attempt_reset``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from .llm import TerminalReason
from .records import OutputState, TurnIssue, TurnOutcome, TurnStop, sanitize_assistant_output


class TurnMachineError(RuntimeError):
    """A response the machine cannot take in its current state (a driver bug)."""


class State(str, enum.Enum):
    START = "start"
    AWAIT_PROGRESS = "await_progress"
    AWAIT_LLM = "await_llm"
    AWAIT_TOOLS = "await_tools"
    AWAIT_CHECKPOINT = "await_checkpoint"
    AWAIT_EXEC = "await_exec"  # code mode (``code_mode.CodeTurnMachine``): a cell runs
    SEALING = "sealing"
    DONE = "done"


TERMINAL_STOPS: dict[TerminalReason, TurnStop] = {
    TerminalReason.OUTPUT_LIMIT: TurnStop.INCOMPLETE,
    TerminalReason.CONTENT_FILTER: TurnStop.PROVIDER_ERROR,
    TerminalReason.CONTEXT_OVERFLOW: TurnStop.PROVIDER_ERROR,
    TerminalReason.PROVIDER_ERROR: TurnStop.PROVIDER_ERROR,
    TerminalReason.CANCELLED: TurnStop.CANCELLED,
}


# ---------------------------------------------------------------------- effects
@dataclass(frozen=True, slots=True)
class ProgressCommit:
    """Make the user message durable (opens the turn row)."""


@dataclass(frozen=True, slots=True)
class LlmCall:
    """Emit ``model_request_started`` for this iteration, then call the model (with the
    retry ladder of :func:`decide_retry`); answer :class:`LlmReplied` or :class:`LlmFailed`."""

    iteration: int


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """Run the reply's tool calls as one batch (concurrently), results in call order."""

    count: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    kind: str  # before_completion | after_work
    pending_text: str = ""  # a before_completion reply shown before the claimed input


@dataclass(frozen=True, slots=True)
class Seal:
    """Seal the cancel token; answer :class:`Sealed` (False: a cancel won the race)."""


@dataclass(frozen=True, slots=True)
class Emit:
    event: ev.TurnEvent


@dataclass(frozen=True, slots=True)
class AppendProse:
    """Append one assistant prose message with this text."""

    text: str


@dataclass(frozen=True, slots=True)
class AppendToolCallMessage:
    """Append the reply (prose, reasoning, tool calls) as one assistant message."""


@dataclass(frozen=True, slots=True)
class AppendNote:
    """Append a system error note (e.g. the turn limit)."""

    text: str


@dataclass(frozen=True, slots=True)
class RecordIssue:
    issue: TurnIssue


@dataclass(frozen=True, slots=True)
class KeepPartialProse:
    """Keep the prose streamed so far as an interrupted assistant message."""


@dataclass(frozen=True, slots=True)
class SettleTools:
    """Give every tool call of the running batch a result (interrupted where missing)."""


@dataclass(frozen=True, slots=True)
class Done:
    outcome: TurnOutcome


class ProtocolEffect:
    """Base of the effects a second protocol's machine adds (code mode: ``ExecCell``,
    ``SettleCell`` in ``code_mode.py``); the driver routes them to that protocol's part."""

    __slots__ = ()


Effect = (ProgressCommit | LlmCall | ToolCalls | Checkpoint | Seal | Emit | AppendProse
          | AppendToolCallMessage | AppendNote | RecordIssue | KeepPartialProse | SettleTools
          | Done | ProtocolEffect)


# ---------------------------------------------------------------------- responses
@dataclass(frozen=True, slots=True)
class ProgressCommitted:
    cancelled: bool = False  # the token was cancelled while the lease and commit were taken


@dataclass(frozen=True, slots=True)
class LlmReplied:
    """What the rules need of a model response."""

    text: str = ""
    tool_calls: int = 0
    has_reasoning: bool = False
    terminal_reason: TerminalReason = TerminalReason.STOP


@dataclass(frozen=True, slots=True)
class LlmFailed:
    message: str
    code: str
    retryable: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolsDone:
    pass


@dataclass(frozen=True, slots=True)
class CheckpointDone:
    claimed: bool


@dataclass(frozen=True, slots=True)
class Sealed:
    sealed: bool


@dataclass(frozen=True, slots=True)
class Cancelled:
    pass


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Another runtime took the session over while the loop ran (docs/adr/0014)."""


LEASE_LOST = ("another runtime took this session over while the turn ran; its work was not "
              "committed (queued input runs again)")


class ProtocolResponse:
    """Base of the responses a second protocol's machine accepts (code mode: ``CellDone``)."""

    __slots__ = ()


Response = (ProgressCommitted | LlmReplied | LlmFailed | ToolsDone | CheckpointDone | Sealed
            | Cancelled | LeaseLost | ProtocolResponse)


# ---------------------------------------------------------------------- the machine
@dataclass
class TurnMachine:
    max_turns: int | None = None
    input_blank: bool = False  # no text and no claimed batch: stopped invalid_input
    state: State = State.START
    iteration: int = 0
    after_tool_results: bool = False  # the view ends with tool results
    _effects: list[Effect] = field(default_factory=list)
    _pending: TurnOutcome | None = None  # the outcome waiting for the seal
    _checkpoint_at: tuple[str, str] = ("", "")  # kind, pending text of the open checkpoint

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def poll_effect(self) -> Effect | None:
        if self._effects:
            return self._effects.pop(0)
        if self.state is State.START:
            self.state = State.AWAIT_PROGRESS
            return ProgressCommit()
        return None

    def handle_response(self, response: Response) -> None:
        move = _MOVES.get(type(response))  # one look-up by type: the common case
        if move is None and isinstance(response, (Cancelled, LeaseLost)):
            self._interrupt(lease_lost=isinstance(response, LeaseLost))
            return
        if move is None or self.state is not move[0]:
            raise TurnMachineError(
                f"{type(response).__name__} is not accepted in state {self.state.value}")
        move[1](self, response)

    # ------------------------------------------------------------------ transitions
    def _on_await_progress(self, r: ProgressCommitted) -> None:
        if self.input_blank:
            self._push(RecordIssue(TurnIssue("input_validation",
                                             "the turn input is empty; pass some text",
                                             "invalid_turn_input")))
            self._finish(TurnOutcome.stopped(TurnStop.INVALID_INPUT))
        elif r.cancelled:
            self._finish(TurnOutcome.stopped(TurnStop.CANCELLED))
        else:
            self._call_model()

    def _on_await_llm(self, r: LlmReplied | LlmFailed) -> None:
        if isinstance(r, LlmFailed):
            self._push(Emit(ev.Error(r.message, kind="llm_provider", code=r.code)),
                       RecordIssue(TurnIssue("llm_provider", r.message, r.code, r.retryable)),
                       KeepPartialProse())
            self._seal(TurnOutcome.stopped(TurnStop.PROVIDER_ERROR))
            return
        stop = TERMINAL_STOPS.get(r.terminal_reason)
        if r.tool_calls:
            self._effects.append(AppendToolCallMessage())
            self.state = State.AWAIT_TOOLS
            self._effects.append(ToolCalls(r.tool_calls))
        elif stop is not None:
            self._terminal_stop(r, stop)
        elif not r.text and not r.has_reasoning and not self.after_tool_results:
            self._push(Emit(ev.Error("the model returned an empty response",
                                     kind="llm_provider", code="empty_response")),
                       RecordIssue(TurnIssue("llm_provider", "empty response", "empty_response")))
            self._seal(TurnOutcome.stopped(TurnStop.PROVIDER_ERROR))
        else:
            self._checkpoint("before_completion", r.text)

    def _terminal_stop(self, r: LlmReplied, stop: TurnStop) -> None:
        reason = r.terminal_reason.value
        detail = f"the model stopped with {reason}"
        if r.text:
            self._push(AppendProse(r.text))
        if stop is TurnStop.PROVIDER_ERROR:
            self._push(Emit(ev.Error(detail, kind="llm_provider", code=reason)))
        self._push(RecordIssue(TurnIssue("llm_terminal", detail, reason)))
        self._seal(TurnOutcome.stopped(stop))

    def _on_await_tools(self, r: ToolsDone) -> None:
        self.iteration += 1
        self.after_tool_results = True
        if self.max_turns is not None and self.iteration >= self.max_turns:
            note = f"Turn limit reached ({self.max_turns}) before a final assistant response."
            self._push(AppendNote(note), RecordIssue(TurnIssue("runtime", note, "max_turns")))
            self._seal(TurnOutcome.stopped(TurnStop.MAX_TURNS))
            return
        self._checkpoint("after_work", "")

    def _on_await_checkpoint(self, r: CheckpointDone) -> None:
        kind, text = self._checkpoint_at
        if r.claimed:
            self.after_tool_results = False
            if kind == "before_completion":
                self.iteration += 1
            self._call_model()
        elif kind == "after_work":
            self._call_model()
        else:
            safe = sanitize_assistant_output(text)
            if safe:
                self._effects.append(AppendProse(safe))
            self._seal(TurnOutcome.assistant_message(safe))

    def _on_sealing(self, r: Sealed) -> None:
        outcome = self._pending
        assert outcome is not None
        self._pending = None
        self._finish(outcome if r.sealed else TurnOutcome.stopped(TurnStop.CANCELLED))

    def _interrupt(self, *, lease_lost: bool) -> None:
        if self.state in (State.START, State.DONE):
            name = "LeaseLost" if lease_lost else "Cancelled"
            raise TurnMachineError(f"{name} is not accepted in state {self.state.value}")
        if self.state is State.SEALING:
            # the loop was over: its effects are recorded, only the outcome changes
            self._pending = None
        elif self.state is State.AWAIT_TOOLS:
            self._push(SettleTools())
        elif self.state is State.AWAIT_LLM:
            self._push(KeepPartialProse())
        if lease_lost:
            self._push(RecordIssue(TurnIssue("runtime", LEASE_LOST, "lease_lost", True)))
            self._finish(TurnOutcome.stopped(TurnStop.RUNTIME_ERROR))
        else:
            self._finish(TurnOutcome.stopped(TurnStop.CANCELLED))

    # ------------------------------------------------------------------ helpers
    def _push(self, *effects: Effect) -> None:  # one effect on a hot path: _effects.append
        self._effects.extend(effects)

    def _call_model(self) -> None:
        self.state = State.AWAIT_LLM
        self._effects.append(LlmCall(self.iteration))

    def _checkpoint(self, kind: str, text: str) -> None:
        self.state = State.AWAIT_CHECKPOINT
        self._checkpoint_at = (kind, text)
        self._effects.append(Checkpoint(kind, text if kind == "before_completion" else ""))

    def _seal(self, outcome: TurnOutcome) -> None:
        self.state = State.SEALING
        self._pending = outcome
        self._effects.append(Seal())

    def _finish(self, outcome: TurnOutcome) -> None:
        self.state = State.DONE
        self._effects.append(Done(outcome))


# response type -> (the state that accepts it, its transition)
_MOVES: dict[type, tuple[State, Callable[[TurnMachine, Any], None]]] = {
    ProgressCommitted: (State.AWAIT_PROGRESS, TurnMachine._on_await_progress),
    LlmReplied: (State.AWAIT_LLM, TurnMachine._on_await_llm),
    LlmFailed: (State.AWAIT_LLM, TurnMachine._on_await_llm),
    ToolsDone: (State.AWAIT_TOOLS, TurnMachine._on_await_tools),
    CheckpointDone: (State.AWAIT_CHECKPOINT, TurnMachine._on_await_checkpoint),
    Sealed: (State.SEALING, TurnMachine._on_sealing),
}


# ---------------------------------------------------------------------- retry + output rules
@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    reset: bool  # retract the failed attempt's rows (``model_attempt_reset``) first


def decide_retry(*, attempt: int, max_attempts: int, retryable: bool,
                 showed_deltas: bool) -> RetryDecision:
    """The retry ladder of one model call: retry a retryable failure before the last
    attempt; a retried attempt that showed deltas is retracted."""
    retry = retryable and attempt < max_attempts
    return RetryDecision(retry, retry and showed_deltas)


def output_state(safe_text: str, *, stopped: bool) -> OutputState:
    """How usable the turn's assistant output is."""
    if not safe_text:
        return OutputState.EMPTY_OUTPUT
    return OutputState.RECOVERED_FROM_ERROR if stopped else OutputState.USABLE


__all__ = [
    "LEASE_LOST",
    "TERMINAL_STOPS",
    "AppendNote",
    "AppendProse",
    "AppendToolCallMessage",
    "Cancelled",
    "Checkpoint",
    "CheckpointDone",
    "Done",
    "Effect",
    "Emit",
    "KeepPartialProse",
    "LeaseLost",
    "LlmCall",
    "LlmFailed",
    "LlmReplied",
    "ProgressCommit",
    "ProgressCommitted",
    "ProtocolEffect",
    "ProtocolResponse",
    "RecordIssue",
    "Response",
    "RetryDecision",
    "Seal",
    "Sealed",
    "SettleTools",
    "State",
    "ToolCalls",
    "ToolsDone",
    "TurnMachine",
    "TurnMachineError",
    "decide_retry",
    "output_state",
]
