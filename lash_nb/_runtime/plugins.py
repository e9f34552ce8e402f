"""Session plugins: what lash's ``SessionBuilder::plugin::<P>(config)`` gives an embedder.

Theory of operation
- A plugin is any object with a ``plugin_id`` (:class:`SessionPlugin`). Everything else is
  optional and found by name, so a plugin implements only what it needs:

  ======================  ====================================================================
  member                  what the session does with it
  ======================  ====================================================================
  ``revision``            an int the plugin bumps when its tools or prompt change; the sum
                          over a session's plugins is the ``plugin_revision`` of the tool
                          catalog key, so the next model call sees the new surface
  ``tool_providers()``    tool providers, registered as source ``plugin:<id>:<n>``
                          (re-read whenever the plugin revision moves)
  ``prompt_contributions(ctx)``  prompt contributions for a turn (a layer between the
                          session's and the turn's)
  ``requires_turn_input`` True: every turn must bring ``.plugin_input(id, value)``, else
                          ``MissingPluginTurnInput`` before anything is written (lash)
  ``on_turn_input(input, ctx)``  may replace the turn input before anything is written
                          (a ``TurnInput`` or a str; ``None`` keeps it); queued turns too
  ``checkpoint(ctx)``     called at every checkpoint of a turn (``after_work``,
                          ``before_completion``); returned strings are injected as messages
                          and the turn goes on with another model call (lash
                          ``checkpoint_hook_can_inject_messages``)
  ``operations()``        ``{name: callable(args)}`` reached through
                          ``session.plugin_operations()`` (``query`` / ``run_command``)
  ======================  ====================================================================

- Plugins are attached to the core (``LashCoreBuilder.plugin``) or one session
  (``SessionBuilder.plugin``); their code is not stored (it lives in the notebook), so a
  reopened session is given its plugins again, like its tools.
- A plugin's exception inside a turn hook is not swallowed: it fails the turn's call
  (``PluginError`` naming the plugin) before the model sees a half-built prompt.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .._core.prompt import PromptContribution, PromptLayer
from .._core.records import TurnInput
from .._core.text import check_id, clean_text
from .._core.tools import ToolRegistry
from .._errors import ConfigurationError, MissingPluginTurnInput, PluginError
from .._providers.redaction import scrub_known
from .._tools.function import as_tool_provider


@runtime_checkable
class SessionPlugin(Protocol):
    """A session plugin: any object with a ``plugin_id``. Optional members, found by name:

    - ``revision: int``: bump it when the tools or prompt below change; the next model call
      sees the new surface (it enters the tool catalog key);
    - ``tool_providers() -> list``: tools (``@tool`` functions or tool providers);
    - ``prompt_contributions(ctx: PluginTurnContext) -> list[PromptContribution]``;
    - ``requires_turn_input = True``: every turn must bring ``.plugin_input(id, value)``
      (``ctx.plugin_input``), else ``MissingPluginTurnInput``;
    - ``on_turn_input(turn_input, ctx: PluginTurnContext) -> TurnInput | str | None``: replace
      the turn's input before anything is written (queued turns too);
    - ``checkpoint(ctx: PluginCheckpointContext) -> list[str] | str``: text injected at a
      checkpoint (``after_work`` / ``before_completion``); the turn then calls the model again;
    - ``operations() -> dict[str, callable]``: reached by
      ``session.plugin_operations().query(name, args)``.

    Attach with ``LashCoreBuilder.plugin(p)`` or ``SessionBuilder.plugin(p)``.
    """

    plugin_id: str


@dataclass(frozen=True)
class PluginTurnContext:
    """What a plugin hook sees of the turn about to run."""

    session_id: str
    turn_id: str
    plugin_input: Any = None
    tool_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PluginCheckpointContext:
    session_id: str
    turn_id: str
    checkpoint: str  # "after_work" | "before_completion"
    plugin_input: Any = None


def check_plugin(plugin: Any) -> SessionPlugin:
    pid = getattr(plugin, "plugin_id", None)
    if not isinstance(pid, str) or not pid.strip():
        raise ConfigurationError(
            f"{plugin!r} is not a plugin: give it a plugin_id str (see lash_nb.SessionPlugin)")
    check_id(pid, "plugin id")
    return plugin  # type: ignore[no-any-return]


@dataclass
class PluginSet:
    """The plugins of one session, and what they contribute."""

    plugins: list[SessionPlugin] = field(default_factory=list)
    _synced_revision: int | None = None

    def add(self, plugin: Any) -> None:
        p = check_plugin(plugin)
        if any(q.plugin_id == p.plugin_id for q in self.plugins):
            raise ConfigurationError(f"plugin {p.plugin_id!r} is attached twice; attach it once")
        self.plugins.append(p)

    @property
    def revision(self) -> int:
        return len(self.plugins) + sum(int(getattr(p, "revision", 0) or 0) for p in self.plugins)

    def ids(self) -> list[str]:
        return [p.plugin_id for p in self.plugins]

    # ------------------------------------------------------------------ tools
    def sync_tools(self, registry: ToolRegistry) -> bool:
        """Register the plugins' tool providers if the revision moved; True if it did."""
        rev = self.revision
        if rev == self._synced_revision:
            return False
        for p in self.plugins:
            providers = _call(p, "tool_providers") or ()
            prefix = f"plugin:{p.plugin_id}:"
            listed = {f"{prefix}{i}" for i in range(len(providers))}
            for sid in [s for s in registry.sources if s.startswith(prefix) and s not in listed]:
                registry.remove_source(sid)
            for i, tp in enumerate(providers):
                registry.add_source(as_tool_provider(tp), f"{prefix}{i}")
        self._synced_revision = rev
        return True

    # ------------------------------------------------------------------ turn hooks
    def check_turn_inputs(self, inputs: Mapping[str, Any]) -> None:
        for p in self.plugins:
            if getattr(p, "requires_turn_input", False) and p.plugin_id not in inputs:
                raise MissingPluginTurnInput(p.plugin_id)
        unknown = sorted(set(inputs) - set(self.ids()))
        if unknown:
            raise ConfigurationError(
                f"plugin input for {unknown[0]!r}, but no such plugin is attached "
                f"(attached: {', '.join(self.ids()) or 'none'})")

    def prompt_layer(self, ctx_for: Callable[[str], PluginTurnContext]) -> PromptLayer:
        layer = PromptLayer()
        for p in self.plugins:
            if not hasattr(p, "prompt_contributions"):
                continue
            for c in _call(p, "prompt_contributions", ctx_for(p.plugin_id)) or ():
                if not isinstance(c, PromptContribution):
                    raise PluginError(p.plugin_id, "prompt_contributions must return "
                                      "PromptContribution objects")
                layer = layer.with_contribution(c)
        return layer

    async def turn_input(self, turn_input: TurnInput,
                         ctx_for: Callable[[str], PluginTurnContext]) -> TurnInput:
        """Each plugin's ``on_turn_input`` may replace the input (a ``TurnInput`` or a str;
        ``None`` keeps it) before the turn writes anything."""
        for p in self.plugins:
            if not hasattr(p, "on_turn_input"):
                continue
            out = await _acall(p, "on_turn_input", turn_input, ctx_for(p.plugin_id))
            if out is None:
                continue
            if isinstance(out, str):
                out = TurnInput.text(out)
            if not isinstance(out, TurnInput):
                raise PluginError(p.plugin_id, "on_turn_input must return a TurnInput, a str "
                                  f"or None, got {type(out).__name__}")
            turn_input = TurnInput(out.items, turn_input.trace_turn_id)
        return turn_input

    async def checkpoint(self, ctx_for: Callable[[str], PluginCheckpointContext]) -> list[str]:
        texts: list[str] = []
        for p in self.plugins:
            if not hasattr(p, "checkpoint"):
                continue
            out = await _acall(p, "checkpoint", ctx_for(p.plugin_id))
            if isinstance(out, str):
                out = [out]
            texts.extend(str(t) for t in out or () if str(t).strip())
        return texts

    # ------------------------------------------------------------------ operations
    def operation(self, name: str) -> tuple[str, Callable[..., Any]]:
        names: list[str] = []
        for p in self.plugins:
            ops = _call(p, "operations") or {}
            if name in ops:
                return p.plugin_id, ops[name]
            names.extend(ops)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PluginError("", f"no plugin offers the operation {name!r}; {hint}"
                          f"offered: {', '.join(sorted(names)) or 'none'}")


class PluginOperations:
    """``session.plugin_operations()``: call a plugin's named operation (lash
    ``PluginOperations::query_raw`` / ``run_command_raw``)."""

    def __init__(self, plugins: PluginSet) -> None:
        self._plugins = plugins

    async def query(self, name: str, args: Any = None) -> tuple[str, Any]:
        """``(plugin_id, output)`` of the operation ``name``."""
        pid, fn = self._plugins.operation(name)
        try:
            out = fn(args)
            if inspect.isawaitable(out):
                out = await out
        except Exception as err:
            raise PluginError(pid, f"operation {name!r} failed: {_untrusted(err)}") from err
        return pid, out

    async def run_command(self, name: str, args: Any = None) -> Any:
        return (await self.query(name, args))[1]


def _call(plugin: SessionPlugin, method: str, *args: Any) -> Any:
    fn = getattr(plugin, method, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except (PluginError, MissingPluginTurnInput):
        raise
    except Exception as err:
        raise PluginError(plugin.plugin_id, f"{method} failed: {_untrusted(err)}") from err


async def _acall(plugin: SessionPlugin, method: str, *args: Any) -> Any:
    """``_call`` for a hook that may be a coroutine function."""
    out = _call(plugin, method, *args)
    if not inspect.isawaitable(out):
        return out
    try:
        return await out
    except (PluginError, MissingPluginTurnInput):
        raise
    except Exception as err:
        raise PluginError(plugin.plugin_id, f"{method} failed: {_untrusted(err)}") from err


def _untrusted(err: BaseException) -> str:
    """A plugin's exception text goes into turn issues and the store: scrub the keys of
    this process's providers and credential shapes (a plugin's config may hold a key) and
    clean it (docs/adr/0017)."""
    return scrub_known(clean_text(str(err)))[:2000]


def plugin_contexts(session_id: str, turn_id: str, inputs: Mapping[str, Any],
                    tool_names: Sequence[str]) -> Callable[[str], PluginTurnContext]:
    def ctx(pid: str) -> PluginTurnContext:
        return PluginTurnContext(session_id, turn_id, inputs.get(pid), tuple(tool_names))
    return ctx


__all__ = [
    "PluginCheckpointContext",
    "PluginOperations",
    "PluginSet",
    "PluginTurnContext",
    "SessionPlugin",
    "check_plugin",
    "plugin_contexts",
]
