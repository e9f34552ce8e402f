"""Child sessions: a tool call runs a sub-agent, its usage rolls up to the parent turn.

Theory of operation (lash ``SessionBuilder::parent``, ``TurnEvent::ChildUsage``,
``TurnResult::children_usage``, ``LashCoreBuilder::child_store_factory``)
- A child session is an ordinary session whose row names its parent
  (``core.session(id).parent(pid)``); the relation is committed with its first commit and
  kept by every later one (all stores).
- Store of a child: the builder's explicit ``.store(...)`` first, else the core's
  ``child_store_factory(child_id)`` when one is set, else the core's store (lash:
  ``child_store_factory.or(store_factory)``). A root session never asks the factory.
- While a turn runs a batch of tool calls, a :class:`ChildScope` is the current one (a
  context variable, so each concurrent tool call sees its own turn). ``run_child(context,
  prompt)`` from inside a tool opens the child under the calling session (id
  ``<parent>.<call id>`` unless given), runs one turn on it, closes it and returns its
  ``TurnResult``. Each activity of the child turn is forwarded to the parent's stream as a
  ``ChildActivity`` under the tool call's id (a view nests it under the tool row); the
  child's usage becomes ``ChildUsage`` events and ``children_usage`` entries of the parent
  turn with source ``child:<child id>`` (a grandchild's entries pass up unchanged).
- The parent turn commits those entries as usage rows of its own, so the parent's usage
  report, its usage frames and ``%lash usage`` show them. The child's own rows stay in the
  child session: a total over *all* sessions counts child tokens twice (once per level);
  ``usage_frame`` therefore leaves ``child:`` rows out when it sums across sessions
  (docs/adr/0045).
- Calling ``run_child`` outside a running tool call is a one-line ``ConfigurationError``.
- A code-mode cell's ``llm_query`` runs a child turn the same way (``run_child_turn``), its
  activities under the cell's correlation id (docs/adr/0072).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._core import events as ev
from .._core.cancel import CancellationToken
from .._core.records import TurnInput, TurnResult
from .._core.text import check_id
from .._core.tools import ToolContext
from .._core.usage import TokenLedgerEntry
from .._errors import ConfigurationError
from .cancel import absorb_interrupt

CHILD_SOURCE_PREFIX = "child:"


@dataclass
class ChildScope:
    """What ``run_child`` needs of the parent turn whose tools are running."""

    core: Any
    parent_session_id: str
    turn_id: str
    emit: Callable[[ev.TurnEvent, str], None]
    token: CancellationToken  # the parent turn's: stopping it stops the child turn
    usage: list[TokenLedgerEntry] = field(default_factory=list)  # the turn's children_usage


_SCOPE: contextvars.ContextVar[ChildScope | None] = contextvars.ContextVar(
    "lash_nb_child_scope", default=None)


class child_scope:
    """Make ``scope`` current while the parent turn's tool calls run (a plain context
    manager, not a generator one: it runs once per tool batch of every turn)."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: ChildScope) -> None:
        self._scope = scope
        self._token: contextvars.Token[ChildScope | None] | None = None

    def __enter__(self) -> None:
        self._token = _SCOPE.set(self._scope)

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _SCOPE.reset(self._token)


def child_source(child_session_id: str) -> str:
    return CHILD_SOURCE_PREFIX + child_session_id


def rolled_up(child_session_id: str, model: str, result: TurnResult) -> list[TokenLedgerEntry]:
    """The parent's ``children_usage`` entries for one child turn."""
    own = [TokenLedgerEntry(child_source(child_session_id), model, result.usage)] \
        if result.usage.total() > 0 else []
    return own + list(result.children_usage)


async def run_child(context: ToolContext, prompt: TurnInput | str, *,
                    session_id: str | None = None, system_prompt: str | None = None,
                    model: str | None = None) -> TurnResult:
    """Run ``prompt`` as one turn of a child session of the session whose tool is calling,
    and return the child's ``TurnResult``. Use it inside a tool that takes a
    ``context: ToolContext`` parameter::

        @tool
        async def research(topic: str, context: ToolContext) -> str:
            \"\"\"Ask a sub-agent.\"\"\"
            result = await run_child(context, f"Find three facts about {topic}")
            return result.assistant_output.safe_text

    The child's id is ``<parent id>.<call id>`` unless ``session_id`` is given (an existing
    child is resumed); its store follows ``LashCoreBuilder.child_store_factory``."""
    scope = _SCOPE.get()
    if not isinstance(context, ToolContext) or scope is None or \
            scope.turn_id != context.turn_id:
        raise ConfigurationError(
            "run_child(context, prompt) runs only inside a tool call of a running turn; give "
            "the tool a `context: ToolContext` parameter and pass that context")
    child_id = check_id(session_id or f"{context.session_id}.{context.call_id}",
                        "child session id")
    builder = scope.core.session(child_id).parent(scope.parent_session_id)
    if system_prompt is not None:
        builder = builder.system_prompt(system_prompt)
    if model is not None:
        builder = builder.model(model)
    child = await builder.open()
    return await run_child_turn(scope, child, prompt, call_id=context.call_id,
                                correlation_id=f"tool:{context.call_id}")


async def run_child_turn(scope: ChildScope, child: Any, prompt: TurnInput | str, *,
                         call_id: str, correlation_id: str) -> TurnResult:
    """Run one turn of the opened child session ``child`` under ``scope``, close the child,
    roll its usage up and return its result. Its activities reach the parent's stream as
    ``ChildActivity`` rows under ``correlation_id`` (a tool row, a code cell). A stop of
    the parent turn stops the child turn; when the awaiting task itself is cancelled the
    child turn is stopped too, its committed usage is still rolled up, then the cancel is
    raised again."""
    child_id = child.session_id

    def forward(activity: ev.TurnActivity) -> None:
        scope.emit(ev.ChildActivity(call_id, child_id, _activity_json(activity)),
                   correlation_id)

    child_token = CancellationToken()
    parent = scope.token

    def stop_child() -> None:
        child_token.cancel(parent.origin, parent.reason)

    parent.add_callback(stop_child)
    cut = False
    try:
        stream = child.turn(prompt).cancel(child_token).stream()
        while True:
            try:
                async for activity in stream:
                    forward(activity)
                break
            except asyncio.CancelledError:  # the caller was cut: stop the child, keep its books
                cut = True
                child_token.cancel(parent.origin or "asyncio", parent.reason)
                absorb_interrupt()
        result: TurnResult = await stream.finish()
    finally:
        parent.remove_callback(stop_child)
        await child.close()
    entries = rolled_up(child_id, child.state.policy.model, result)
    for e in entries:
        scope.emit(ev.ChildUsage(child_id, e.source, e.model, e.usage), correlation_id)
    scope.usage.extend(entries)
    if cut:
        raise asyncio.CancelledError
    return result


def _activity_json(activity: ev.TurnActivity) -> dict[str, Any]:
    return {"id": activity.id, "correlation_id": activity.correlation_id,
            "turn_id": activity.turn_id, **activity.event.to_json()}
