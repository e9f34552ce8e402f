"""Records of the session layer: turn input, messages and parts, outcomes, turn results.

All records are frozen; closed string sets are ``enum.Enum`` whose values are lash's
snake_case wire names.
"""

from __future__ import annotations

import enum
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .approval import ApprovalDecision
from .attachments import AttachmentRef
from .turn_input import InputItem as InputItem  # re-exported: a record of the session layer
from .turn_input import TurnInput as TurnInput
from .usage import ZERO_USAGE, LlmCallRecord, TokenLedgerEntry, TokenUsage

_NONCE = os.urandom(4).hex()
_counter = itertools.count(1)


def fresh_id(prefix: str = "") -> str:
    """A process-unique id: cheap (no uuid, no syscall) and sortable within a process."""
    return f"{prefix}{_NONCE}{next(_counter):x}"


# --------------------------------------------------------------------------- messages


class Role(str, enum.Enum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    EVENT = "event"


class PartKind(str, enum.Enum):
    TEXT = "text"
    ATTACHMENT = "attachment"  # an image or file; ``Part.attachment`` holds its ref
    PROSE = "prose"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a message.

    ``interrupted`` marks prose cut by a cancel and tool results synthesised for calls that
    a cancel stopped before they finished; ``is_error`` marks a failed tool result.
    """

    id: str
    kind: PartKind
    content: str
    tool_call_id: str | None = None
    tool_name: str | None = None
    interrupted: bool = False
    is_error: bool = False
    replay: str | None = None  # provider-native JSON to send back (ADR 0030); opaque here
    attachment: AttachmentRef | None = None  # kind ATTACHMENT, or a tool result's image

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind.value, "content": self.content}
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.tool_name is not None:
            out["tool_name"] = self.tool_name
        if self.interrupted:
            out["interrupted"] = True
        if self.is_error:
            out["is_error"] = True
        if self.replay is not None:
            out["replay"] = self.replay
        if self.attachment is not None:
            out["attachment"] = self.attachment.to_json()
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Part:
        try:
            kind = _PART_KINDS.get(d["kind"]) if type(d) is dict else None
        except TypeError:  # an unhashable kind
            kind = None
        if kind is None:  # not a dict, or not a kind: the checking path (and its errors)
            return cls._from_mapping(d)
        n = len(d)
        if n == 3 and "content" in d:  # id, kind, content: text and prose
            return _new_part(d["id"], kind, d["content"], None, None, False, False, None, None)
        if n == 5 and "content" in d and "tool_call_id" in d and "tool_name" in d:
            return _new_part(d["id"], kind, d["content"], d["tool_call_id"], d["tool_name"],
                             False, False, None, None)  # a tool call or a plain result
        get = d.get
        replay, attachment = get("replay"), get("attachment")
        return _new_part(
            d["id"], kind, get("content", ""), get("tool_call_id"), get("tool_name"),
            bool(get("interrupted", False)), bool(get("is_error", False)),
            replay if type(replay) is str else None,
            AttachmentRef.from_json(attachment)
            if attachment is not None and isinstance(attachment, Mapping) else None)

    @classmethod
    def _from_mapping(cls, d: Mapping[str, Any]) -> Part:
        return cls(
            id=d["id"],
            kind=PartKind(d["kind"]),
            content=d.get("content", ""),
            tool_call_id=d.get("tool_call_id"),
            tool_name=d.get("tool_name"),
            interrupted=bool(d.get("interrupted", False)),
            is_error=bool(d.get("is_error", False)),
            replay=d["replay"] if isinstance(d.get("replay"), str) else None,
            attachment=(AttachmentRef.from_json(d["attachment"])
                        if isinstance(d.get("attachment"), Mapping) else None),
        )


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    role: Role
    parts: tuple[Part, ...]
    origin: str | None = None  # e.g. "queued_input" for input accepted mid-turn

    def text(self) -> str:
        """Visible text: the text / prose parts joined by newlines (lash ``message_text``)."""
        return "\n".join(
            p.content for p in self.parts if p.kind in (PartKind.TEXT, PartKind.PROSE)
        )

    def tool_calls(self) -> list[Part]:
        return [p for p in self.parts if p.kind is PartKind.TOOL_CALL]

    def tool_results(self) -> list[Part]:
        return [p for p in self.parts if p.kind is PartKind.TOOL_RESULT]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "role": self.role.value,
            "parts": [p.to_json() for p in self.parts],
        }
        if self.origin:
            out["origin"] = self.origin
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Message:
        try:
            role = _ROLES.get(d["role"]) if type(d) is dict else None
        except TypeError:  # an unhashable role
            role = None
        if role is None:  # the checking path (and its errors)
            role = Role(d["role"])
        parts = d.get("parts", ())
        if type(parts) is list and len(parts) == 1:  # most messages: no list to build
            return _new_message(d["id"], role, (Part.from_json(parts[0]),), d.get("origin"))
        part = Part.from_json
        return _new_message(d["id"], role, tuple([part(p) for p in parts]), d.get("origin"))

    @classmethod
    def build(
        cls, role: Role, parts: Sequence[tuple[PartKind, str] | Part], *, origin: str | None = None
    ) -> Message:
        mid = fresh_id("m")
        out: list[Part] = []
        for i, p in enumerate(parts):
            if isinstance(p, Part):
                out.append(p)
            else:
                out.append(Part(f"{mid}.p{i}", p[0], p[1]))
        return cls(mid, role, tuple(out), origin)


# The decode path of a resume makes ~40,000 of these from rows we wrote: it fills the slots
# directly (a frozen dataclass ``__init__`` sets each field through ``object.__setattr__``,
# ~40% of that decode). Part and Message have no ``__post_init__``, so the objects are the
# ones ``Part(...)`` / ``Message(...)`` make (tests/test_resume_reads.py compares them).
_PART_KINDS = {k.value: k for k in PartKind}
_ROLES = {r.value: r for r in Role}
_new = object.__new__
(_p_id, _p_kind, _p_content, _p_call, _p_tool, _p_interrupted, _p_error, _p_replay,
 _p_attachment) = (getattr(Part, f.name).__set__ for f in fields(Part))
_m_id, _m_role, _m_parts, _m_origin = (getattr(Message, f.name).__set__ for f in fields(Message))


def _new_part(
    id: str, kind: PartKind, content: str, tool_call_id: str | None, tool_name: str | None,
    interrupted: bool, is_error: bool, replay: str | None, attachment: AttachmentRef | None,
) -> Part:
    p: Part = _new(Part)
    _p_id(p, id)
    _p_kind(p, kind)
    _p_content(p, content)
    _p_call(p, tool_call_id)
    _p_tool(p, tool_name)
    _p_interrupted(p, interrupted)
    _p_error(p, is_error)
    _p_replay(p, replay)
    _p_attachment(p, attachment)
    return p


def _new_message(id: str, role: Role, parts: tuple[Part, ...], origin: str | None) -> Message:
    m: Message = _new(Message)
    _m_id(m, id)
    _m_role(m, role)
    _m_parts(m, parts)
    _m_origin(m, origin)
    return m


_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads_stored(text: str) -> Any:
    """``json.loads(text)`` for the stored content of a node, a third cheaper: the C scanner
    called directly (``loads`` wraps it in three Python calls). Text it does not take whole
    (leading or trailing whitespace, bad JSON) goes to ``json.loads``, with its errors."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)


def messages_from_stored(texts: Iterable[str]) -> list[Message]:
    """``[Message.from_json(loads_stored(t)) for t in texts]``, in one loop without a Python
    call per message for the shapes lash writes most: one text, prose, tool call or tool
    result part and no origin (a resume decodes ~40,000 of them; ADR 0132).

    A text takes the loop only when the JSON scanner takes it whole and it is exactly that
    shape: a dict of ``id``, ``role`` (a known role) and ``parts``, a list of one dict of
    ``id``, ``kind`` (a known kind) and ``content`` (and ``tool_call_id`` and ``tool_name``).
    Every key is read, so with the counts of keys that is the whole dict. Anything else
    (whitespace, bad JSON, other keys, several parts, an unknown role) raises or falls out
    of the loop's checks and goes the way above, which decodes it or raises as before."""
    out: list[Message] = []
    append, scan, roles, kinds, new = out.append, _scan, _ROLES, _PART_KINDS, _new
    p_id, p_kind, p_content, p_call, p_tool = _p_id, _p_kind, _p_content, _p_call, _p_tool
    p_interrupted, p_error, p_replay, p_attachment = _p_interrupted, _p_error, _p_replay, _p_attachment
    m_id, m_role, m_parts, m_origin = _m_id, _m_role, _m_parts, _m_origin
    for text in texts:
        try:
            d, end = scan(text, 0)
            if (end == len(text) and type(d) is dict and len(d) == 3
                    and type(parts := d["parts"]) is list and len(parts) == 1
                    and type(p := parts[0]) is dict):
                n = len(p)
                if n == 3:
                    call = tool = None
                elif n == 5:
                    call, tool = p["tool_call_id"], p["tool_name"]
                else:
                    n = 0
                if n:
                    # every lookup before the first object is made: a KeyError (a key
                    # missing, an unknown role or kind) or TypeError (unhashable) leaves
                    # nothing half made
                    mid, role, pid, kind, content = (
                        d["id"], roles[d["role"]], p["id"], kinds[p["kind"]], p["content"])
                    part = new(Part)
                    p_id(part, pid)
                    p_kind(part, kind)
                    p_content(part, content)
                    p_call(part, call)
                    p_tool(part, tool)
                    p_interrupted(part, False)
                    p_error(part, False)
                    p_replay(part, None)
                    p_attachment(part, None)
                    m = new(Message)
                    m_id(m, mid)
                    m_role(m, role)
                    m_parts(m, (part,))
                    m_origin(m, None)
                    append(m)
                    continue
        except (StopIteration, KeyError, TypeError):
            pass
        append(Message.from_json(loads_stored(text)))
    return out


# --------------------------------------------------------------------------- outcomes


class TurnStop(str, enum.Enum):
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"
    INVALID_INPUT = "invalid_input"
    MAX_TURNS = "max_turns"
    TOOL_FAILURE = "tool_failure"
    PROVIDER_ERROR = "provider_error"
    PLUGIN_ABORT = "plugin_abort"
    RUNTIME_ERROR = "runtime_error"


class TurnFinish(str, enum.Enum):
    ASSISTANT_MESSAGE = "assistant_message"
    FINAL_VALUE = "final_value"
    TOOL_VALUE = "tool_value"


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """``finished`` (with a :class:`TurnFinish`), ``agent_frame_switch`` or ``stopped``.

    ``str(outcome)`` reads ``finished: assistant_message`` or ``stopped: cancelled``.
    """

    kind: str  # finished | agent_frame_switch | stopped
    finish: TurnFinish | None = None
    stop: TurnStop | None = None
    text: str | None = None
    value: Any = None
    tool_name: str | None = None

    @classmethod
    def assistant_message(cls, text: str) -> TurnOutcome:
        return cls("finished", finish=TurnFinish.ASSISTANT_MESSAGE, text=text)

    @classmethod
    def stopped(cls, stop: TurnStop) -> TurnOutcome:
        return cls("stopped", stop=stop)

    @property
    def is_finished(self) -> bool:
        return self.kind == "finished"

    @property
    def is_stopped(self) -> bool:
        return self.kind == "stopped"

    @property
    def reason(self) -> str:
        """The finish or stop wire name (``assistant_message``, ``cancelled``, ...)."""
        if self.finish is not None:
            return self.finish.value
        if self.stop is not None:
            return self.stop.value
        return self.kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}" if self.kind != "agent_frame_switch" else self.kind

    def to_json(self) -> dict[str, Any]:
        """lash's externally tagged form, e.g. ``{"stopped": "cancelled"}``."""
        if self.kind == "stopped":
            return {"stopped": self.stop.value if self.stop else None}
        if self.kind == "finished" and self.finish is TurnFinish.ASSISTANT_MESSAGE:
            return {"finished": {"assistant_message": {"text": self.text or ""}}}
        if self.kind == "finished" and self.finish is TurnFinish.FINAL_VALUE:
            return {"finished": {"final_value": {"value": self.value}}}
        if self.kind == "finished":
            return {"finished": {"tool_value": {"tool_name": self.tool_name, "value": self.value}}}
        return {"agent_frame_switch": {}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TurnOutcome:
        if "stopped" in d:
            return cls.stopped(TurnStop(d["stopped"]))
        if "finished" in d:
            (name, body), = d["finished"].items()
            fin = TurnFinish(name)
            return cls(
                "finished",
                finish=fin,
                text=body.get("text"),
                value=body.get("value"),
                tool_name=body.get("tool_name"),
            )
        return cls("agent_frame_switch")


# --------------------------------------------------------------------------- results


class OutputState(str, enum.Enum):
    USABLE = "usable"
    EMPTY_OUTPUT = "empty_output"
    RECOVERED_FROM_ERROR = "recovered_from_error"


@dataclass(frozen=True, slots=True)
class AssistantOutput:
    safe_text: str = ""
    raw_text: str = ""
    state: OutputState = OutputState.EMPTY_OUTPUT


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    call_id: str
    tool: str
    args: Any
    output: Any
    success: bool
    duration_ms: float
    started_at_ms: int = 0
    interrupted: bool = False
    # the approval decision when the call's policy was ``ask`` or ``never`` (None: it ran
    # under ``always``, nobody was asked); see ``lash_nb._core.approval``
    approval: ApprovalDecision | None = None
    # what the call printed while it ran (stdout, stderr, warnings, logging), cleaned,
    # scrubbed and bounded like its output; None: nothing. Stored (``tool_calls.printed``),
    # shown on the call's row, never sent to the model (ADR 197)
    printed: str | None = None
    # the scrubbed traceback of the error the tool raised, for the user debugging it: kept
    # in the process that ran the call only (not in ``to_json``: never stored, never sent
    # to the model, whose result is the one ``Type: message`` line; ADR 192)
    traceback: str | None = field(default=None, compare=False, repr=False)

    @property
    def status(self) -> str:
        """lash's tool outcome status: ``success`` | ``failure`` | ``cancelled``."""
        if self.interrupted:
            return "cancelled"
        return "success" if self.success else "failure"

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "status": self.status,
            "tool": self.tool,
            "args": self.args,
            "output": self.output,
            "success": self.success,
            "duration_ms": self.duration_ms,
            "started_at_ms": self.started_at_ms,
            "interrupted": self.interrupted,
            **({"approval": self.approval.to_json()} if self.approval is not None else {}),
            **({"printed": self.printed} if self.printed is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class TurnIssue:
    kind: str
    message: str
    code: str | None = None
    retryable: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "code": self.code,
                "retryable": self.retryable}


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    had_tool_calls: bool = False
    started_at_ms: int = 0
    duration_ms: float = 0.0


@dataclass(frozen=True)
class TurnResult:
    session_id: str
    turn_id: str
    outcome: TurnOutcome
    assistant_output: AssistantOutput = AssistantOutput()
    usage: TokenUsage = ZERO_USAGE
    children_usage: tuple[TokenLedgerEntry, ...] = ()
    llm_calls: tuple[LlmCallRecord, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    execution: ExecutionSummary = ExecutionSummary()
    errors: tuple[TurnIssue, ...] = ()
    cancellation: Mapping[str, Any] | None = None
    queued_batch_ids: tuple[str, ...] = ()
    head_revision: int | None = None

    def is_success(self) -> bool:
        return self.outcome.kind in ("finished", "agent_frame_switch")

    def assistant_message(self) -> str | None:
        if self.outcome.finish is TurnFinish.ASSISTANT_MESSAGE:
            return self.outcome.text
        return None

    @property
    def text(self) -> str:
        """The answer's text as shown (the ``text=`` of the repr): the whole answer of a
        finished turn, what had streamed of a stopped one, ``""`` when the model said nothing.
        ``assistant_message()`` is lash's: ``None`` unless the turn finished with an answer."""
        return self.assistant_output.safe_text

    def total_usage(self) -> TokenUsage:
        total = self.usage
        for e in self.children_usage:
            total = total + e.usage
        return total

    @property
    def started_at_ms(self) -> int:
        return self.execution.started_at_ms

    @property
    def duration_ms(self) -> float:
        return self.execution.duration_ms

    @property
    def tool_tracebacks(self) -> dict[str, str]:
        """Call id -> the traceback of each tool call of this turn that raised (scrubbed,
        lash_nb's own frames left out); only on the result the running process made: the
        store keeps the one line (ADR 192)."""
        return {c.call_id: c.traceback for c in self.tool_calls if c.traceback is not None}

    def to_json(self) -> dict[str, Any]:
        out = self._to_json()
        if self.children_usage:  # only then: the JSON of a turn without children is unchanged
            out["children_usage"] = [e.to_json() for e in self.children_usage]
        return out

    def _to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "turn_id": self.turn_id,
            "outcome": self.outcome.to_json(),
            "assistant_output": {
                "safe_text": self.assistant_output.safe_text,
                "raw_text": self.assistant_output.raw_text,
                "state": self.assistant_output.state.value,
            },
            "usage": self.usage.to_json(),
            "llm_calls": [c.to_json() for c in self.llm_calls],
            "tool_calls": [c.to_json() for c in self.tool_calls],
            "execution": {
                "had_tool_calls": self.execution.had_tool_calls,
                "started_at_ms": self.execution.started_at_ms,
                "duration_ms": self.execution.duration_ms,
            },
            "errors": [e.to_json() for e in self.errors],
            "cancellation": dict(self.cancellation) if self.cancellation else None,
            "queued_batch_ids": list(self.queued_batch_ids),
        }

    def __repr__(self) -> str:
        text = self.assistant_output.safe_text
        short = (text[:60] + "…") if len(text) > 60 else text
        return (
            f"TurnResult(turn_id={self.turn_id!r}, outcome='{self.outcome}', "
            f"text={short!r}, usage={self.usage.total()} tokens, "
            f"tool_calls={len(self.tool_calls)})"
        )


@dataclass(frozen=True)
class TurnOutput:
    result: TurnResult
    activities: tuple[Any, ...] = field(default=())
    # a queued turn cut by a worker asked to stop: the batches it handed back to the queue
    returned_batch_ids: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """``result.text``: the answer's text as shown."""
        return self.result.text

    def __repr__(self) -> str:
        return f"TurnOutput({self.result!r}, activities={len(self.activities)})"


def sanitize_assistant_output(text: str) -> str:
    """Right-trim every line, rejoin with ``\\n``, trim the whole string (lash rule)."""
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def append_assistant_text_part(current: str, part: str) -> str:
    """Join text parts of one response with a paragraph boundary (lash rule)."""
    if not current:
        return part
    trailing = len(current) - len(current.rstrip("\n"))
    leading = len(part) - len(part.lstrip("\n"))
    pad = max(0, 2 - trailing - leading)
    return current + "\n" * pad + part
