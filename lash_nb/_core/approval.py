"""Tool approval: the policy a tool call runs under and the decision stored with it.

- ``always``: the call runs without asking (the default; nothing is recorded).
- ``ask``: the call waits for a decision (the widget's Approve / Deny, an approver callback,
  ``session.approvals().decide(...)``); a denied call returns a denial result to the model.
- ``never``: the call is denied by policy without asking.

An :class:`ApprovalDecision` is stored with the call's ``ToolCallRecord`` (``approval``) and
in the ``tool_approval`` turn events, so replays, reports and saved records show who decided
and when. ``by`` names the decider: ``user`` (the widget's buttons), ``api`` (a callback or a
script), ``policy`` (``never``), ``worker`` (an unattended worker denying ``ask``), or for a
question closed by a cancel, the cancel's origin (``widget_stop``, ``kernel_interrupt``, ...).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigurationError


class ApprovalPolicy(str, enum.Enum):
    ALWAYS = "always"
    ASK = "ask"
    NEVER = "never"


def approval_policy(value: Any, *, what: str = "approval") -> ApprovalPolicy:
    """``"ask"`` / ``ApprovalPolicy.ASK`` -> ``ApprovalPolicy.ASK``; anything else: one line."""
    try:
        return ApprovalPolicy(value)
    except ValueError:
        raise ConfigurationError(
            f"{what} must be 'always', 'ask' or 'never', got {value!r}") from None


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """What became of one call's approval: ``decision`` is ``approved``, ``denied`` or
    ``cancelled`` (the turn was stopped while it waited)."""

    decision: str
    by: str
    at_ms: int
    policy: str = ApprovalPolicy.ASK.value
    reason: str = ""
    asked_at_ms: int | None = None  # None: decided without asking (policy, worker)

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decision": self.decision, "by": self.by, "at_ms": self.at_ms,
                               "policy": self.policy}
        if self.reason:
            out["reason"] = self.reason
        if self.asked_at_ms is not None:
            out["asked_at_ms"] = self.asked_at_ms
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalDecision:
        asked = data.get("asked_at_ms")
        return cls(str(data.get("decision", "")), str(data.get("by", "")),
                   int(data.get("at_ms") or 0), str(data.get("policy") or "ask"),
                   str(data.get("reason") or ""), int(asked) if asked is not None else None)


def denial_text(tool: str, decision: ApprovalDecision) -> str:
    """The result the model reads for a denied call: it says not to retry blindly."""
    why = f": {decision.reason}" if decision.reason else ""
    if decision.by == "policy":
        head = f"the call to tool {tool!r} was denied by policy (never run){why}"
    elif decision.by == "worker":
        head = f"the call to tool {tool!r} was denied: it needs approval and no one is there to give it{why}"
    else:
        head = f"the call to tool {tool!r} was denied by the {decision.by}{why}"
    return f"{head}; do not call it again with the same arguments, answer without it or ask the user"


def policy_map(value: str | ApprovalPolicy | Mapping[str, Any] | None,
               *, what: str) -> tuple[ApprovalPolicy | None, dict[str, ApprovalPolicy]]:
    """An ``approval=`` argument: one policy for every tool, or ``{tool: policy}`` with an
    optional ``"*"`` for the rest."""
    if value is None:
        return None, {}
    if isinstance(value, Mapping):
        named = {str(k): approval_policy(v, what=f"{what}[{k!r}]") for k, v in value.items()}
        return named.pop("*", None), named
    return approval_policy(value, what=what), {}


__all__ = ["ApprovalDecision", "ApprovalPolicy", "approval_policy", "denial_text", "policy_map"]
