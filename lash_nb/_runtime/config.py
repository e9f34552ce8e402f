"""``session.configure(patch)``, ``session.admin()`` and ``session.commands()`` (lash
``SessionConfigPatch``, ``SessionAdmin``, ``SessionConfigAdmin``, ``SessionCommandAdmin``).

Theory of operation
- A :class:`SessionConfigPatch` sets any of provider, model and the session prompt layer.
  ``update`` waits for the session's writer lock (a running turn finishes first; its model
  call keeps the configuration it started with), then commits the session row with the new
  policy under the session lease. Only once the store accepted it do later turns use it; a
  refused commit (lease busy, store error) leaves the old configuration in place.
- Provider precedence for one turn: core < session builder < config patch < turn
  (``session.turn(x).provider(p)``), as lash's
  ``provider_overrides_apply_at_core_session_turn_and_config_scopes``.
- The committed policy lists the fields a patch set (``configured``); a reopen restores them
  over the core's defaults unless the session builder names that field itself. A provider
  is code, not data: the reopened session records its id, and a turn with another live
  provider fails ``ProviderUnavailable`` until the session builder names one (docs/adr/0041).
- Session commands are queued like lash queues them (exclusive, drained before turn work,
  idempotent by key): ``refresh_tool_catalog`` re-reads every tool source; ``reset``
  empties the session graph (the next commit replaces the stored graph; usage and turn count
  stay on the books).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from .._core.prompt import PromptContribution, PromptLayer, PromptSlot, PromptTemplate
from .._core.queue import QueuedWorkBatch
from .._core.text import check_id
from .._errors import ConfigurationError
from .parts import SessionParts
from .queue import Drainer, enqueue_command
from .state import SessionPolicy
from .tool_admin import ToolAdmin


class ConfigurableSession(Protocol):
    """What the admin needs of an opened session (``ConfigurableSession`` is one)."""

    parts: SessionParts
    drainer: Drainer
    provider_mismatch: str | None


@dataclass(frozen=True)
class SessionConfigPatch:
    """What to change; ``None`` keeps the current value. ``prompt`` replaces the whole session
    prompt layer; a str is the Intro slot's text (it replaces a builder's ``system_prompt``,
    which lives in that slot)."""

    provider: Any = None
    model: str | None = None
    prompt: PromptLayer | str | None = None

    def __post_init__(self) -> None:
        p = self.provider
        if p is not None and (not hasattr(p, "stream") or not hasattr(p, "kind")):
            raise ConfigurationError(
                f"SessionConfigPatch(provider=...) needs a provider (a kind and a stream(request) "
                f"method, see lash_nb.providers), got {type(p).__name__}")
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise ConfigurationError("SessionConfigPatch(model=...) must be a non-empty model id str")
        if isinstance(self.prompt, str):
            layer = PromptLayer().with_replaced_slot(
                PromptSlot.INTRO, [PromptContribution(PromptSlot.INTRO, self.prompt)])
            object.__setattr__(self, "prompt", layer)
        elif self.prompt is not None and not isinstance(self.prompt, PromptLayer):
            raise ConfigurationError(
                "SessionConfigPatch(prompt=...) takes a lash_nb.PromptLayer or a str")

    def is_empty(self) -> bool:
        return self.provider is None and self.model is None and self.prompt is None


def patched_policy(policy: SessionPolicy, patch: SessionConfigPatch) -> SessionPolicy:
    configured = set(policy.configured)
    changes: dict[str, Any] = {}
    if patch.provider is not None:
        changes["provider_id"] = patch.provider.kind
    if patch.model is not None:
        changes["model"] = patch.model
        configured.add("model")
    if patch.prompt is not None:
        assert isinstance(patch.prompt, PromptLayer)
        changes["prompt"] = patch.prompt
        configured.add("prompt")
    return replace(policy, **changes, configured=tuple(sorted(configured)))


class SessionConfigAdmin:
    """``session.admin().config()``."""

    def __init__(self, session: ConfigurableSession) -> None:
        self._session = session

    async def update(self, patch: SessionConfigPatch) -> None:
        if not isinstance(patch, SessionConfigPatch):
            raise ConfigurationError(
                "configure() takes a lash_nb.SessionConfigPatch(provider=, model=, prompt=)")
        if patch.is_empty():
            return
        s = self._session
        await s.parts.writer.persist(policy=lambda current: patched_policy(current, patch))
        if patch.provider is not None:
            s.parts.provider = patch.provider
            s.provider_mismatch = None
        s.parts.feed.committed(kick=False)

    def _layer(self) -> PromptLayer:
        return self._session.parts.state.policy.prompt or PromptLayer()

    async def set_prompt_template(self, template: PromptTemplate) -> None:
        await self.update(SessionConfigPatch(prompt=self._layer().with_template(template)))

    async def clear_prompt_template(self) -> None:
        await self.update(SessionConfigPatch(prompt=self._layer().with_template(None)))

    async def add_prompt_contribution(self, contribution: PromptContribution) -> None:
        await self.update(SessionConfigPatch(prompt=self._layer().with_contribution(contribution)))

    async def replace_prompt_slot(self, slot: PromptSlot | str,
                                  contributions: list[PromptContribution]) -> None:
        await self.update(SessionConfigPatch(
            prompt=self._layer().with_replaced_slot(slot, contributions)))

    async def clear_prompt_slot(self, slot: PromptSlot | str) -> None:
        await self.update(SessionConfigPatch(prompt=self._layer().with_cleared_slot(slot)))


class SessionCommandAdmin:
    """``session.commands()``: queued session commands."""

    def __init__(self, session: ConfigurableSession) -> None:
        self._session = session

    async def refresh_tool_catalog(self, reason: str = "user",
                                   idempotency_key: str = "refresh") -> QueuedWorkBatch:
        return await self._submit("refresh_tool_catalog", reason, idempotency_key)

    async def reset(self, reason: str = "user", idempotency_key: str = "reset") -> QueuedWorkBatch:
        return await self._submit("reset_session", reason, idempotency_key)

    async def _submit(self, kind: str, reason: str, key: str) -> QueuedWorkBatch:
        check_id(key, "idempotency key")
        s = self._session
        return await enqueue_command(s.parts, s.drainer, {"kind": kind, "reason": str(reason)},
                                     key)


class SessionAdmin:
    """``session.admin()``: the session's control surface (lash ``SessionAdmin``)."""

    def __init__(self, session: ConfigurableSession) -> None:
        self._session = session

    def config(self) -> SessionConfigAdmin:
        return SessionConfigAdmin(self._session)

    def commands(self) -> SessionCommandAdmin:
        return SessionCommandAdmin(self._session)

    def tools(self) -> ToolAdmin:
        return ToolAdmin(self._session.parts, self._session.drainer)


__all__ = [
    "SessionAdmin",
    "SessionCommandAdmin",
    "SessionConfigAdmin",
    "SessionConfigPatch",
    "patched_policy",
]
