"""A turn's plugin hooks (``plugins.py``): the turn input rewritten before anything is
written, and checkpoint texts that continue the turn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._core.records import TurnInput, TurnIssue
from .._core.text import clean_text
from .._errors import PluginError
from .parts import SessionParts
from .plugins import PluginCheckpointContext, PluginTurnContext


async def turn_input_hooks(parts: SessionParts, turn_id: str, turn_input: TurnInput,
                           inputs: Mapping[str, Any]) -> TurnInput:
    """The turn's input after the plugins' ``on_turn_input`` hooks (unchanged without plugins)."""
    plugins = parts.surface.plugins
    if not plugins.plugins:
        return turn_input
    names = tuple(m.name for m in parts.state.registry.members())
    sid = parts.session_id

    def ctx(pid: str) -> PluginTurnContext:
        return PluginTurnContext(sid, turn_id, inputs.get(pid), names)

    return await plugins.turn_input(turn_input, ctx)


async def checkpoint_texts(parts: SessionParts, turn_id: str, kind: str,
                           inputs: Mapping[str, Any], injections: int,
                           errors: list[TurnIssue]) -> list[str]:
    """The texts the plugins' checkpoint hooks inject (cleaned), none past ``max_turns``
    injections so a hook that always answers cannot loop forever; a hook's error is recorded
    in ``errors`` and injects nothing."""
    plugins = parts.surface.plugins
    bound = parts.state.policy.max_turns or 50
    if not plugins.plugins or injections >= bound:
        return []
    sid = parts.session_id

    def ctx(pid: str) -> PluginCheckpointContext:
        return PluginCheckpointContext(sid, turn_id, kind, inputs.get(pid))

    try:
        texts = await plugins.checkpoint(ctx)
    except PluginError as err:
        errors.append(TurnIssue("plugin", str(err), "plugin_error"))
        return []
    return [clean_text(t) for t in texts or ()]
