"""Turn events (public namespace; re-exports only).

``TurnActivity`` is what ``session.turn(...).stream()`` and an observation yield: an id, a
correlation id (the row a UI updates) and one event, an instance of a ``TurnEvent`` kind
below. Match on the kind, e.g. ``isinstance(a.event, AssistantProseDelta)``.
"""

from ._core.events import (
    AssistantProseDelta,
    ChildActivity,
    ChildUsage,
    CodeCellCompleted,
    CodeCellOutput,
    CodeCellStarted,
    CodeSandboxStarted,
    ContextWindowed,
    Error,
    ModelAttemptReset,
    ModelRequestStarted,
    QueuedInputAccepted,
    QueuedWorkStarted,
    ReasoningDelta,
    RetryStatus,
    ToolApproval,
    ToolCallCompleted,
    ToolCallPrinted,
    ToolCallStarted,
    TurnActivity,
    TurnEvent,
    TurnOutcomeEvent,
    Usage,
)

__all__ = [
    "AssistantProseDelta",
    "ChildActivity",
    "ChildUsage",
    "CodeCellCompleted",
    "CodeCellOutput",
    "CodeCellStarted",
    "CodeSandboxStarted",
    "ContextWindowed",
    "Error",
    "ModelAttemptReset",
    "ModelRequestStarted",
    "QueuedInputAccepted",
    "QueuedWorkStarted",
    "ReasoningDelta",
    "RetryStatus",
    "ToolApproval",
    "ToolCallCompleted",
    "ToolCallPrinted",
    "ToolCallStarted",
    "TurnActivity",
    "TurnEvent",
    "TurnOutcomeEvent",
    "Usage",
]
