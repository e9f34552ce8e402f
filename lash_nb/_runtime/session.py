"""``LashSession``: an opened session, the public facade over its parts.

Turns, queue, observation, tools and usage hang off it. What it is made of lives in
:class:`SessionParts` (``parts.py``): the state, the store, the writer (lock, lease, commit,
reload: ``writer.py``), the feed of observations (``feed.py``), the tool catalog and the
cancel registry. The builders (``turn.py``, ``queue.py``, ``tool_admin.py``) are written
against those parts, never against this class.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from .._core.events import TurnActivity
from .._core.llm import Provider, RetryPolicy
from .._core.prompt import PromptLayer
from .._core.records import TurnInput, fresh_id
from .._core.usage import SessionUsageReport, TokenLedgerEntry
from .._store.base import SessionStore, lease_owner_id, watches_queue, watches_turn_cancel
from .._tools.mcp import close_servers
from .approval import Approvals
from .cancel import TurnCancelRegistry
from .catalog import ToolCatalog
from .code_mode.mode import CodeMode
from .config import SessionAdmin, SessionCommandAdmin, SessionConfigPatch
from .feed import SessionFeed
from .kernel_shutdown import watch_kernel_shutdown
from .lifecycle import OpenHandles, ParkedSession, park
from .observe import ObservableSession
from .parts import SessionParts
from .plugins import PluginOperations
from .prompt_layers import SessionSurface, TurnPhaseProbe, render_for
from .queue import Drainer, EnqueueBuilder, QueuedTurnBuilder, batch_named
from .replay import LiveReplayStore
from .retention import tombstone_branch, track_open
from .state import SessionPolicy, SessionReadView, SessionState
from .tool_admin import ToolAdmin
from .turn import TurnBuilder
from .writer import SessionWriter

# await_queued_work_batch reads the queue again after these waits (doubling), for changes
# made by processes whose notifications cannot reach it; lash caps its poll at 400 ms
AWAIT_FIRST_READ_S = 0.025
AWAIT_READ_CAP_S = 0.4


class CoreSettings(Protocol):
    """What a session needs of the core that opened it (``LashCore`` is one)."""

    lease_ttl_ms: int
    lease_renew_s: float
    replay: LiveReplayStore
    retry_policy: RetryPolicy
    store: SessionStore
    max_batch_attempts: int

    async def list_sessions(self) -> list[Any]: ...

    async def close(self) -> None: ...


class LashSession:
    """An opened session. Not thread-safe: use it from one event loop (the sync mirror
    keeps every call of a sync-opened session on its private loop thread)."""

    def __init__(
        self,
        core: CoreSettings,
        state: SessionState,
        *,
        store: SessionStore,
        provider: Provider,
        residency: str = "keep_all",
        provider_mismatch: str | None = None,
        surface: SessionSurface | None = None,
        owner_id: str | None = None,
        code_mode: CodeMode | None = None,
    ) -> None:
        self.core = core
        self.residency = residency
        self.owner_id = owner_id or lease_owner_id(fresh_id())
        self._open = handles = OpenHandles(state.session_id, store)
        handles.add(self)
        track_open(handles)
        writer = SessionWriter(state, store, owner_id=self.owner_id,
                               lease_ttl_ms=core.lease_ttl_ms, lease_renew_s=core.lease_renew_s,
                               residency=residency)
        self.parts = SessionParts(
            state=state, store=store, provider=provider, writer=writer,
            feed=SessionFeed(core.replay, state), catalog=ToolCatalog(state),
            cancels=TurnCancelRegistry(), retry_policy=core.retry_policy,
            closed=lambda: handles.closed, max_batch_attempts=core.max_batch_attempts, core=core,
            surface=surface or SessionSurface(),
            code_mode=code_mode, provider_mismatch=provider_mismatch,
        )
        self.parts.catalog.plugins = self.parts.surface.plugins
        self.drainer: Drainer = Drainer(self.parts)
        self.parts.feed.on_committed = self.drainer.kick
        watch_kernel_shutdown()  # in a kernel, a restart commits this handle's turns (ADR 198)

    # ------------------------------------------------------------------ lifecycle
    @property
    def closed(self) -> bool:
        return self._open.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._open.closed = value

    @property
    def provider_mismatch(self) -> str | None:
        """The live provider's kind when the session was recorded with another (turns refuse
        until a provider is named); on the parts, so a queued turn refuses too (ADR 0201)."""
        return self.parts.provider_mismatch

    @provider_mismatch.setter
    def provider_mismatch(self, value: str | None) -> None:
        self.parts.provider_mismatch = value

    def clone(self) -> LashSession:
        """Another handle to this open (lash ``Clone``): same state, writer and queue.
        ``close()`` / ``park()`` refuse (``SessionStillInUse``) while it is alive; drop it
        with ``release()``."""
        twin = object.__new__(LashSession)
        twin.__dict__.update(self.__dict__)
        self._open.add(twin)
        return twin

    def release(self) -> None:
        """Drop this handle (lash: drop a clone); the open and its other handles go on."""
        self._open.drop(self)

    async def park(self) -> ParkedSession:
        """Flush what the store lacks and close; ``core.resume(parked)`` opens it again.
        Refuses with ``SessionStillInUse`` while another handle or a turn uses it."""
        return await park(self)

    # ------------------------------------------------------------------ parts
    @property
    def state(self) -> SessionState:
        return self.parts.state

    @property
    def store(self) -> SessionStore:
        return self.parts.store

    @property
    def provider(self) -> Provider:
        return self.parts.provider

    @provider.setter
    def provider(self, provider: Provider) -> None:
        self.parts.provider = provider

    @property
    def writer(self) -> SessionWriter:
        return self.parts.writer

    @property
    def cancels(self) -> TurnCancelRegistry:
        return self.parts.cancels

    # ------------------------------------------------------------------ public API
    @property
    def session_id(self) -> str:
        return self.state.session_id

    def __repr__(self) -> str:
        return (f"LashSession({self.session_id!r}, provider={self.state.policy.provider_id!r}, "
                f"model={self.state.policy.model!r}, turns={self.state.turn_index})")

    def turn(self, turn_input: TurnInput | str) -> TurnBuilder:
        return TurnBuilder(self.parts, turn_input, provider_mismatch=self.provider_mismatch)

    def enqueue(self, turn_input: TurnInput | str) -> EnqueueBuilder:
        return EnqueueBuilder(self.parts, self.drainer, turn_input)

    def queued_turn(self) -> QueuedTurnBuilder:
        return QueuedTurnBuilder(self.parts)

    async def queued_work(self, *, include_claimed: bool = False) -> list[Any]:
        """Batches of this session in enqueue order, claimed ones excluded unless
        ``include_claimed`` (a batch a drain or a worker runs now, ``batch.claim_id`` set):
        pending ones and ones parked ``failed`` after ``max_batch_attempts``
        (``batch.status``, ``.attempts``, ``.error``; cancel a failed batch to remove it)."""
        return list(await self.store.list_queued_work(self.session_id,
                                                      include_claimed=include_claimed))

    async def cancel_queued_work_batch(self, batch_id: str) -> Any:
        """Remove a pending batch and return it; ``None`` if it is unknown, already claimed,
        completed or cancelled. ``batch_id`` is the batch's id or the id it was enqueued with
        (``.id(k)``, ``%lash enqueue --id k``; docs/adr/0201)."""
        if not isinstance(batch_id, str):
            raise TypeError(f"batch_id must be a str (a QueuedWorkBatch.batch_id), got {type(batch_id).__name__}")
        batch = await self.store.cancel_queued_work_batch(self.session_id, batch_id)
        if batch is None:  # maybe the id it was enqueued with
            named = batch_named(await self.store.list_queued_work(self.session_id), batch_id)
            if named != batch_id:
                batch = await self.store.cancel_queued_work_batch(self.session_id, named)
                batch_id = named
        if batch is not None:
            self.parts.feed.queue_changed("cancelled", (batch_id,))
        return batch

    async def await_queued_work_batch(
            self, batch_id: str, timeout: float | None = None,  # noqa: ASYNC109 (lash's signature)
    ) -> None:
        """Return once ``batch_id`` is done: completed by the commit of the turn that ran it,
        cancelled, or parked failed (an unknown id returns at once). ``batch_id`` is the
        batch's id or the id it was enqueued with (``.id(k)``: docs/adr/0201). A claimed batch is still
        awaited: the turn running it may yet fail and leave it pending (ADR 0065). A change
        made in this process wakes the wait at once (PostgreSQL: any process's); the queue is
        also read again 25 ms doubling to 400 ms, so drains by other processes are seen."""
        store, sid = self.store, self.session_id
        watch = await store.queue_changes() if watches_queue(store) else None
        delay = AWAIT_FIRST_READ_S
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            seen = watch.version(sid) if watch is not None else 0
            queued = await store.list_queued_work(sid, include_claimed=True)
            batch_id = batch_named(queued, batch_id)
            if all(b.batch_id != batch_id or b.status == "failed" for b in queued):
                return
            wait = delay
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(
                        f"batch {batch_id!r} still queued after {timeout} s; drain it "
                        "(session.queued_turn().run(), the drainer or a worker) or wait longer")
                wait = min(wait, left)
            if watch is not None:
                await watch.wait(sid, seen, wait)
            else:
                await asyncio.sleep(wait)
            delay = min(delay * 2, AWAIT_READ_CAP_S)

    def cancel_running_turns(self, origin: str | None = "api", reason: str | None = None) -> int:
        """Signal every turn of this handle (running or waiting for the lock); thread-safe.
        ``origin`` / ``reason`` are stored as the turns' ``cancellation`` evidence (the
        reason defaults to the standard one for the origin, see ``lash_nb._core.cancel``)."""
        return self.cancels.cancel_all(origin, reason)

    async def request_turn_cancel(self, turn_id: str, origin: str = "remote") -> bool:
        """Stop the turn with this id wherever it runs: in this handle, or (with a store that
        carries cancel requests, e.g. PostgreSQL) in another process or machine. True if a
        local turn was signalled or the request was sent."""
        local = self.cancels.cancel_turn(turn_id, origin)
        store = self.store
        if not watches_turn_cancel(store):
            return local
        await store.request_turn_cancel(self.session_id, turn_id)
        return True

    def usage_report(self) -> SessionUsageReport:
        return self.state.usage_report()

    def read_view(self) -> SessionReadView:
        return self.state.read_view()

    def policy_snapshot(self) -> SessionPolicy:
        return self.state.policy

    def tools(self) -> ToolAdmin:
        return ToolAdmin(self.parts, self.drainer)

    def approvals(self) -> Approvals:
        """Tool approval: policies (``set_policy``), an approver callback (``set_approver``)
        and the open questions of ``ask`` tools (``pending``, ``await next()``, ``decide``)."""
        return self.parts.approvals

    # ------------------------------------------------------------------ configuration (config.py)
    def admin(self) -> SessionAdmin:
        return SessionAdmin(self)

    async def configure(self, patch: SessionConfigPatch) -> None:
        """Change provider, model or the session prompt layer for later turns; committed, so
        a reopened session keeps model and prompt (``lash_nb._runtime.config``)."""
        await self.admin().config().update(patch)

    def commands(self) -> SessionCommandAdmin:
        return SessionCommandAdmin(self)

    def plugin_operations(self) -> PluginOperations:
        return PluginOperations(self.parts.surface.plugins)

    async def set_turn_phase_probe(self, probe: TurnPhaseProbe | None) -> None:
        """Report each turn's phases to ``probe`` (``begin`` / ``end``), set between turns."""
        async with self.writer.lock():
            self.parts.surface.probe = probe

    def rendered_prompt(self, turn_layer: PromptLayer | None = None) -> str | None:
        """The system prompt the next turn would send (``None``: no system prompt)."""
        return render_for(self.parts.surface, self.state, turn_id="", turn_layer=turn_layer)

    def observe(self) -> ObservableSession:
        return ObservableSession(self.state, self.core.replay)

    def export_state(self) -> dict[str, Any]:
        """A JSON-able snapshot for ``core.session(id).open_with_state(state)``."""
        st = self.state
        return {
            "session_id": st.session_id,
            "policy": st.policy.to_json(),
            "parent_session_id": st.parent_session_id,
            "nodes": [
                {"node_id": n.node_id, "parent_node_id": n.parent_node_id, "kind": n.kind,
                 "content": n.content_json(), "created_at_ms": n.created_at_ms, "turn_id": n.turn_id}
                for n in st.graph.nodes()
            ],
            "leaf_node_id": st.graph.leaf_node_id,
            "ledger": [e.to_json() for e in st.ledger],
            "turn_index": st.turn_index,
            "tool_state": st.registry.state_json(),
        }

    def branch_to(self, node_id: str | None) -> None:
        """Move the leaf to an earlier node; the next turn starts a new branch there."""
        self.state.graph.branch_to(node_id)

    def is_running(self) -> bool:
        return self.writer.running

    async def tombstone_branch(self, node_id: str) -> int:
        """Tombstone ``node_id`` and every node under it (a branch off the active path):
        reads stop returning them now, ``core.vacuum()`` deletes them. Returns how many
        nodes the store marked."""
        return await tombstone_branch(self, node_id)

    async def close(self) -> None:
        """Close the open; refuses with ``SessionStillInUse`` while other handles
        (``clone()``) are alive. Closing a closed session does nothing."""
        if self.closed:
            return
        self._open.claim_sole(self, "close", turns=False)
        self.drainer.pause()
        self.closed = True
        await self.parts.writer.release_quietly(self.parts.writer.unreleased)
        await close_servers(self.state.registry, prefix="live:")  # MCP servers it added
        if self.parts.code_mode is not None:
            await self.parts.code_mode.close()  # its sandbox kernel, unless shared

    async def __aenter__(self) -> LashSession:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _stored_events(self, turn_id: str | None = None) -> list[TurnActivity]:
        return list(await self.store.load_events(self.session_id, turn_id))

    def _ledger(self) -> list[TokenLedgerEntry]:
        return self.state.ledger
