"""The system prompt of a turn, from its layers, and the session surface that holds them.

Layers, in the order they resolve (``lash_nb._core.prompt``):

1. core: ``LashCoreBuilder.prompt_contribution(...)`` and friends;
2. the plain ``system_prompt(...)`` of the core or session builder (the Intro slot);
3. session: ``SessionBuilder.prompt_*`` at open, then ``session.configure(...)`` /
   ``session.admin().config()`` (committed with the session: a reopen keeps it);
4. tools and plugins: a tool provider's ``prompt_contributions()`` and a plugin's
   ``prompt_contributions(ctx)``;
5. turn: ``session.turn(x).system("...")`` / ``.prompt_contribution(...)`` (``%%lash --system``).

The rendered text is cached per session (:class:`~lash_nb._core.prompt.PromptCache`): turns
whose layers and tool catalog did not change reuse it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from .._core.prompt import (
    PromptCache,
    PromptContribution,
    PromptLayer,
    PromptSlot,
    PromptTemplate,
    resolve_prompt_layers,
    system_prompt_layer,
)
from .._core.tools import ToolRegistry
from .plugins import PluginSet, PluginTurnContext


class TurnPhase(str, enum.Enum):
    """Phases a turn passes (lash ``RuntimeTurnPhase``), reported to a turn phase probe."""

    BEFORE_TURN_HOOKS = "before_turn_hooks"
    PROMPT_BUILD = "prompt_build"
    EFFECT_LOOP = "effect_loop"
    FINAL_COMMIT = "final_commit"


class TurnPhaseProbe(Protocol):
    """``begin`` / ``end`` of each :class:`TurnPhase`; optional ``begin_named`` /
    ``end_named`` get the turn machine's waiting states (``await_llm``, ``await_tools``,
    ...). Called on the session's event loop; keep them quick and non-raising."""

    def begin(self, phase: TurnPhase) -> None: ...

    def end(self, phase: TurnPhase) -> None: ...


@dataclass
class SessionSurface:
    """What shapes a session besides its state: core prompt layer, plugins, prompt cache,
    turn phase probe."""

    core_layer: PromptLayer = field(default_factory=PromptLayer)
    plugins: PluginSet = field(default_factory=PluginSet)
    cache: PromptCache = field(default_factory=PromptCache)
    probe: Any = None

    def phase(self, name: str, begin: bool) -> None:
        probe = self.probe
        if probe is None:
            return
        if isinstance(name, TurnPhase):
            (probe.begin if begin else probe.end)(name)
            return
        fn = getattr(probe, "begin_named" if begin else "end_named", None)
        if fn is not None:
            fn(name)


_EMPTY = PromptLayer()


def _tools_layer(registry: ToolRegistry) -> PromptLayer:
    layer = _EMPTY
    for provider in registry.sources.values():
        contribute = getattr(provider, "prompt_contributions", None)
        if callable(contribute):
            for c in contribute() or ():
                layer = layer.with_contribution(c)
    return layer


def render_for(surface: SessionSurface, state: Any, *, turn_id: str,
               turn_layer: PromptLayer | None = None,
               plugin_inputs: Mapping[str, Any] | None = None) -> str | None:
    """The system prompt a turn of this session would send now. Rendered again only when a
    layer or the tool catalog generation changed (tool sources' contributions are read then
    too); plugins are asked every time, their contributions may depend on the turn."""
    registry: ToolRegistry = state.registry
    policy = state.policy
    plugin_layer = _EMPTY
    if surface.plugins.plugins:
        names = tuple(m.name for m in registry.members())
        inputs = plugin_inputs or {}

        def ctx(pid: str) -> PluginTurnContext:
            return PluginTurnContext(state.session_id, turn_id, inputs.get(pid), names)

        plugin_layer = surface.plugins.prompt_layer(ctx)
    key = (surface.core_layer, policy.system_prompt, policy.prompt, registry.generation,
           plugin_layer, turn_layer)

    def build() -> str:
        layers = [surface.core_layer, system_prompt_layer(policy.system_prompt),
                  policy.prompt or _EMPTY, _tools_layer(registry), plugin_layer,
                  turn_layer or _EMPTY]
        return resolve_prompt_layers(layers).render(m.name for m in registry.members())

    return surface.cache.render(key, build) or None


class PromptLayerSink:
    """The prompt-layer builder methods shared by ``LashCoreBuilder``, ``SessionBuilder`` and
    ``TurnBuilder`` (lash's ``PromptLayerSink`` trait)."""

    _prompt: PromptLayer | None = None

    def _layer(self) -> PromptLayer:
        return self._prompt if self._prompt is not None else PromptLayer()

    def prompt_template(self, template: PromptTemplate | None) -> Self:
        self._prompt = self._layer().with_template(template)
        return self

    def prompt_contribution(self, contribution: PromptContribution) -> Self:
        if not isinstance(contribution, PromptContribution):
            raise TypeError("prompt_contribution takes a lash_nb.PromptContribution, e.g. "
                            "PromptContribution.guidance('Title', 'text')")
        self._prompt = self._layer().with_contribution(contribution)
        return self

    def replace_prompt_slot(self, slot: PromptSlot | str,
                            contributions: Iterable[PromptContribution]) -> Self:
        self._prompt = self._layer().with_replaced_slot(slot, contributions)
        return self

    def clear_prompt_slot(self, slot: PromptSlot | str) -> Self:
        self._prompt = self._layer().with_cleared_slot(slot)
        return self

    def prompt_layer(self, layer: PromptLayer) -> Self:
        if not isinstance(layer, PromptLayer):
            raise TypeError("prompt_layer takes a lash_nb.PromptLayer")
        self._prompt = layer
        return self


__all__ = ["PromptLayerSink", "SessionSurface", "TurnPhase", "TurnPhaseProbe", "render_for"]
