"""Session state held by an opened session, and the read view published from it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .._core.graph import GraphView, SessionGraph, SessionNode, message_tree
from .._core.prompt import PromptLayer
from .._core.records import Message
from .._core.text import check_id, clean_text
from .._core.tool_output import DEFAULT_MAX_OUTPUT
from .._core.tools import ToolRegistry
from .._core.usage import SessionUsageReport, TokenLedgerEntry
from .._errors import LashWarning


@dataclass(frozen=True)
class SessionPolicy:
    provider_id: str
    model: str
    max_turns: int | None = None
    system_prompt: str | None = None
    prompt: PromptLayer | None = None  # the session prompt layer (``_runtime/config.py``)
    configured: tuple[str, ...] = ()  # fields a committed config patch set: a reopen keeps them
    mode: str = "standard"  # "code": lash's RLM protocol (a reopen keeps it; ADR 71)
    # the model's context window in tokens (None: unknown) and what a "context length
    # exceeded" failure does: "window" sends the newest messages again, "stop" ends the turn
    # (ADR 60; lash_nb/_core/context_window.py). Process configuration, not stored.
    context_window: int | None = None
    on_context_overflow: str = "window"
    # characters of a tool's output the model is sent (a tool's own max_output wins; ADR 174).
    # Process configuration, not stored.
    max_tool_output: int = DEFAULT_MAX_OUTPUT

    def __post_init__(self) -> None:  # stored with the session (core/text.py)
        check_id(self.model, "model name")
        if isinstance(self.system_prompt, str):
            object.__setattr__(self, "system_prompt", clean_text(self.system_prompt))

    def to_json(self) -> dict[str, Any]:
        """Serialized policy: the provider id only, never provider configuration or secrets."""
        return {
            "provider_id": self.provider_id,
            "model": self.model,
            "max_turns": self.max_turns,
            "system_prompt": self.system_prompt,
            **({"prompt": self.prompt.to_json()} if self.prompt is not None else {}),
            **({"configured": list(self.configured)} if self.configured else {}),
            **({"mode": self.mode} if self.mode != "standard" else {}),
        }


CONFIGURABLE = ("model", "prompt")  # what a committed config patch keeps (config.py)


def restore_configured(policy: SessionPolicy, stored: Mapping[str, Any] | None, *,
                       explicit: set[str]) -> SessionPolicy:
    """The committed config patch of a stored policy over ``policy``, except the fields in
    ``explicit`` (named by the session builder): a reopen, or a reload after another handle
    configured the session, keeps what was configured (docs/adr/0041)."""
    configured = [f for f in (stored or {}).get("configured") or () if f in CONFIGURABLE]
    if not stored or not configured:
        return policy
    changes: dict[str, Any] = {}
    if "model" in configured and "model" not in explicit and stored.get("model"):
        changes["model"] = str(stored["model"])
    if "prompt" in configured and "prompt" not in explicit:
        try:
            changes["prompt"] = PromptLayer.from_json(stored.get("prompt"))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            # a layer this version cannot read (a newer one wrote it): open without it
            warnings.warn(f"the stored prompt layer of this session could not be read ({err}); "
                          "it is not used: set it again with session.configure(...)",
                          LashWarning, stacklevel=2)
    return replace(policy, **changes, configured=tuple(sorted(configured)))


@dataclass
class SessionState:
    session_id: str
    policy: SessionPolicy
    graph: SessionGraph
    registry: ToolRegistry
    parent_session_id: str | None = None
    ledger: list[TokenLedgerEntry] = field(default_factory=list)
    turn_index: int = 0
    head_revision: int | None = None  # None: never persisted
    # the provider id the store held when this handle last read or wrote the session: one
    # that differs at a reload was rebound elsewhere; our own (named at open) is not (ADR 0201)
    stored_provider_id: str | None = None
    stale: bool = False  # a commit failed: reload from the store before the next turn
    learned_context_window: int | None = None  # estimated tokens of a prompt that overflowed
    # turns this handle's open closed as process_lost: their process died before they committed
    lost_turns: tuple[str, ...] = ()
    # turns another process left open (no final commit) when this handle last read the
    # session, and that it could not close then (their lease was live): the next progress
    # commit closes them, and counts them among the session's turns (ADR 212)
    unclosed_turns: tuple[str, ...] = ()
    # the last queued turn this handle committed that completed its batches: its nodes are an
    # answered exchange (the next turn need not ask the queue, turn_commit.py)
    answered_turn_id: str | None = None
    _report: SessionUsageReport | None = None

    def usage_report(self) -> SessionUsageReport:
        if self._report is None:
            self._report = SessionUsageReport.from_entries(self.ledger)
        return self._report

    def set_ledger(self, ledger: list[TokenLedgerEntry]) -> None:
        self.ledger = ledger
        self._report = None

    def revision(self) -> int:
        return self.head_revision if self.head_revision is not None else self.turn_index

    def read_view(self) -> SessionReadView:
        return SessionReadView(
            session_id=self.session_id,
            revision=self.revision(),
            turn_index=self.turn_index,
            policy=self.policy,
            _view=self.graph.view(),
            _ledger=tuple(self.ledger),
            _graph=self.graph,
        )


@dataclass(frozen=True)
class SessionReadView:
    """Settled session state as of the last commit. Cheap to make; messages are lazy."""

    session_id: str
    revision: int
    turn_index: int
    policy: SessionPolicy
    _view: GraphView = field(repr=False)
    _ledger: tuple[TokenLedgerEntry, ...] = field(repr=False, default=())
    _graph: SessionGraph | None = field(repr=False, default=None)

    def messages(self) -> list[Message]:
        return list(self._view)

    def nodes(self) -> list[SessionNode]:
        return self._view.nodes()

    def usage_report(self) -> SessionUsageReport:
        return SessionUsageReport.from_entries(self._ledger)

    def message_tree(self) -> list[Any]:
        return message_tree(self._graph) if self._graph is not None else []

    def transcript(self) -> list[dict[str, str]]:
        """``[{role, text}]`` for each message on the active path (tool parts summarised)."""
        out = []
        for m in self._view:
            text = m.text()
            calls = [f"[{p.tool_name}({p.content})]" for p in m.tool_calls()]
            results = [f"[{p.tool_name} -> {p.content}]" for p in m.tool_results()]
            out.append({"role": m.role.value, "text": "\n".join([text, *calls, *results]).strip()})
        return out

    def __len__(self) -> int:
        return len(self._view)

    def _repr_markdown_(self) -> str:
        lines = [(f"**session** `{self.session_id}` · revision {self.revision} · "
                 f"{self.turn_index} turns")]
        lines.extend(f"- **{row['role']}**: {row['text'][:300]}" for row in self.transcript())
        return "\n".join(lines)
