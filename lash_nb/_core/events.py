"""Turn events: the stable semantic stream a UI folds (lash ``TurnActivity`` / ``TurnEvent``).

JSON form of an activity: ``{id, correlation_id, type, ...fields}`` with ``None`` fields
omitted. Row identity is ``correlation_id``: all prose deltas of one model attempt share one,
a tool call's start and completion share ``tool:<call_id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

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
        Usage,
        ChildUsage,
        ChildActivity,
        RetryStatus,
        QueuedInputAccepted,
        Error,
        StoreWait,
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
