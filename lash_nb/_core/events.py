"""Turn events: the stable semantic stream a UI folds (lash ``TurnActivity`` / ``TurnEvent``).

JSON form of an activity: ``{id, correlation_id, type, ...fields}`` with ``None`` fields
omitted. Row identity is ``correlation_id``: all prose deltas of one model attempt share one,
a tool call's start and completion share ``tool:<call_id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .attachments import Attachment
from .records import fresh_id
from .usage import TokenUsage


@dataclass(frozen=True, slots=True)
class TurnEvent:
    type: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in _field_names(type(self)):
            v = getattr(self, name)
            if v is None:
                continue
            out[name] = v.to_json() if isinstance(v, TokenUsage) else v
        return out


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """``dataclasses.fields`` per class, once: it is most of ``to_json``'s cost, and a long
    turn's final commit encodes every one of its events."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class QueuedWorkStarted(TurnEvent):
    type: ClassVar[str] = "queued_work_started"
    boundary: str
    batch_ids: list[str]


@dataclass(frozen=True, slots=True)
class ModelRequestStarted(TurnEvent):
    type: ClassVar[str] = "model_request_started"
    protocol_iteration: int


@dataclass(frozen=True, slots=True)
class AssistantProseDelta(TurnEvent):
    type: ClassVar[str] = "assistant_prose_delta"
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta(TurnEvent):
    type: ClassVar[str] = "reasoning_delta"
    text: str


@dataclass(frozen=True, slots=True)
class ModelAttemptReset(TurnEvent):
    type: ClassVar[str] = "model_attempt_reset"
    assistant_prose_correlation_ids: list[str]
    reasoning_correlation_ids: list[str]


@dataclass(frozen=True, slots=True)
class ToolCallStarted(TurnEvent):
    type: ClassVar[str] = "tool_call_started"
    call_id: str
    name: str
    args: Any


@dataclass(frozen=True, slots=True)
class ToolCallCompleted(TurnEvent):
    type: ClassVar[str] = "tool_call_completed"
    call_id: str
    name: str
    args: Any
    output: Any
    duration_ms: float
    success: bool
    # lash's tool outcome status: success | failure | cancelled (None in events stored before
    # lash_nb recorded it; read those as success / failure from ``success``)
    status: str | None = None
    # lash_nb addition: what the call printed (stdout, stderr, warnings, logging), cleaned,
    # scrubbed and bounded; None: nothing (ADR 197). Not sent to the model.
    printed: str | None = None
    # lash_nb addition: the pictures the tool returned (the model is sent them after the
    # results), ``Attachment``s in this process, their refs (``AttachmentRef.to_json``) in
    # JSON: the bytes are in the store's blobs; the record shows a thumbnail (ADR 232)
    images: list[Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = TurnEvent.to_json(self)
        if self.images:
            out["images"] = [i.ref.to_json() if isinstance(i, Attachment) else i
                             for i in self.images]
        return out


@dataclass(frozen=True, slots=True)
class ToolCallPrinted(TurnEvent):
    """lash_nb addition: whole lines a running call printed, as they come (on the call's
    row, ``tool:<call_id>``), and a line being redrawn (``\\r``, a progress bar) up to its
    last redraw; the completion's ``printed`` has all of it (ADR 197). Live
    lines carry at most the first half of the call's bound: ``more`` (True, once) says the
    call printed past it, the rest comes with the completion (ADR 210)."""

    type: ClassVar[str] = "tool_call_printed"
    call_id: str
    name: str
    text: str
    more: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolApproval(TurnEvent):
    """lash_nb addition: a tool call's approval (``lash_nb._core.approval``), on the call's
    row (correlation ``tool:<call_id>``). ``state`` ``pending``: the turn waits for a decision;
    then once more with the decision (``approved`` / ``denied`` / ``cancelled``), ``by`` whom
    and when (``decided_at_ms``)."""

    type: ClassVar[str] = "tool_approval"
    call_id: str
    name: str
    state: str
    policy: str = "ask"
    by: str | None = None
    reason: str | None = None
    decided_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Usage(TurnEvent):
    type: ClassVar[str] = "usage"
    protocol_iteration: int
    usage: TokenUsage
    cumulative: TokenUsage
    # True: ``usage`` is an estimate (a stream cut by a cancel that reported nothing)
    estimated: bool | None = None


@dataclass(frozen=True, slots=True)
class ChildUsage(TurnEvent):
    """lash ``TurnEvent::ChildUsage``: a child session run by one of this turn's tool calls
    used tokens; they roll up into this turn's ``children_usage`` and the session ledger
    under ``source`` (``child:<child session id>``)."""

    type: ClassVar[str] = "child_usage"
    child_session_id: str
    source: str
    model: str
    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class ChildActivity(TurnEvent):
    """lash_nb addition: one activity of a child turn, forwarded under the tool call that
    runs it (``call_id``), so a view can nest the child's turn under that tool row."""

    type: ClassVar[str] = "child_activity"
    call_id: str
    child_session_id: str
    activity: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RetryStatus(TurnEvent):
    type: ClassVar[str] = "retry_status"
    wait_seconds: float
    attempt: int
    max_attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class QueuedInputAccepted(TurnEvent):
    type: ClassVar[str] = "queued_input_accepted"
    checkpoint: str
    inputs: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Error(TurnEvent):
    type: ClassVar[str] = "error"
    message: str
    kind: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class StoreWait(TurnEvent):
    """lash_nb addition: the turn is waiting for its store. ``reason`` is ``locked`` (another
    process holds the DuckDB file: ``holder`` names it, e.g. ``"worker pid 12"``) or
    ``disk_full``; repeated with a growing ``waited_s`` under one correlation id, and a last
    time with ``done`` once the store answered."""

    type: ClassVar[str] = "store_wait"
    reason: str
    waited_s: float
    holder: str | None = None
    holder_pid: int | None = None
    done: bool = False


@dataclass(frozen=True, slots=True)
class CodeSandboxStarted(TurnEvent):
    """Code mode: the session's sandbox kernel was started (fresh: no variable of earlier
    turns; cells are never replayed) with this data shared into it (``[{name, kind, what}]``)
    and this isolation (``network off, own PID namespace`` or why not)."""

    type: ClassVar[str] = "code_sandbox_started"
    isolation: str
    shared: list[dict[str, str]]
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CodeCellStarted(TurnEvent):
    """Code mode: the model's cell ``cell`` (1, 2, ... within the turn) starts in the sandbox.
    Its completion shares the correlation id ``cell:<turn id>:<cell>``."""

    type: ClassVar[str] = "code_cell_started"
    cell: int
    code: str
    language: str = "python"


@dataclass(frozen=True, slots=True)
class CodeCellOutput(TurnEvent):
    """Code mode: text the running cell printed (streamed; the completion has all of it)."""

    type: ClassVar[str] = "code_cell_output"
    cell: int
    text: str


@dataclass(frozen=True, slots=True)
class CodeCellCompleted(TurnEvent):
    """Code mode: what the cell gave. ``status``: ok | error | timeout | died | cancelled;
    ``output`` is its text (the observation the model reads next), ``displays`` its rich
    outputs (``{mime: data}``: text/html tables, image/png), ``final_value`` what it submitted."""

    type: ClassVar[str] = "code_cell_completed"
    cell: int
    code: str
    status: str
    output: str
    duration_ms: float
    error: str | None = None
    displays: list[dict[str, str]] | None = None
    final_value: Any = None
    truncated: bool | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ContextWindowed(TurnEvent):
    """lash_nb: a model call sent only the newest messages of the active path (ADR 60).
    ``reason``: ``window`` (the path neared the context window) or ``overflow`` (the provider
    refused the whole path as too long, and this call sends it again, windowed)."""

    type: ClassVar[str] = "context_windowed"
    reason: str
    sent_messages: int
    left_out_messages: int
    estimated_tokens: int
    sent_tokens: int
    window_tokens: int


@dataclass(frozen=True, slots=True)
class TurnOutcomeEvent(TurnEvent):
    """lash_nb addition: the terminal outcome of the turn, so a replayed stream can show it."""

    type: ClassVar[str] = "turn_outcome"
    outcome: dict[str, Any]
    turn_id: str


EVENT_TYPES: dict[str, type[TurnEvent]] = {
    cls.type: cls
    for cls in (
        QueuedWorkStarted,
        ModelRequestStarted,
        AssistantProseDelta,
        ReasoningDelta,
        ModelAttemptReset,
        ToolCallStarted,
        ToolCallCompleted,
        ToolCallPrinted,
        ToolApproval,
        Usage,
        ChildUsage,
        ChildActivity,
        RetryStatus,
        QueuedInputAccepted,
        Error,
        StoreWait,
        CodeSandboxStarted,
        CodeCellStarted,
        CodeCellOutput,
        CodeCellCompleted,
        ContextWindowed,
        TurnOutcomeEvent,
    )
}


def event_from_json(data: Mapping[str, Any]) -> TurnEvent:
    cls = EVENT_TYPES[data["type"]]
    kwargs = {f.name: data.get(f.name) for f in fields(cls)}
    for key in ("usage", "cumulative"):
        if key in kwargs and isinstance(kwargs[key], Mapping):
            kwargs[key] = TokenUsage.from_json(kwargs[key])
    return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class TurnActivity:
    id: str
    correlation_id: str
    event: TurnEvent
    turn_id: str = ""

    @classmethod
    def independent(cls, event: TurnEvent, turn_id: str = "") -> TurnActivity:
        i = fresh_id("a")
        return cls(i, i, event, turn_id)

    @property
    def type(self) -> str:
        return self.event.type

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "correlation_id": self.correlation_id}
        out.update(self.event.to_json())
        if self.turn_id:
            out["turn_id"] = self.turn_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TurnActivity:
        return cls(
            data["id"], data["correlation_id"], event_from_json(data), data.get("turn_id", "")
        )
