"""``LashSession``: an opened session. Turns, queue, observation, tools and usage hang off it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Sequence

from .._core.cancel import CancellationToken
from .._core.events import TurnActivity
from .._core.graph import SessionGraph
from .._core.llm import LlmToolSpec
from .._core.records import TurnInput, fresh_id
from .._core.tools import CatalogKey
from .._core.usage import SessionUsageReport, TokenLedgerEntry
from .._errors import HeadRevisionConflict, SessionExecutionBusy, SessionExecutionLeaseLost
from .._store.base import (
    Lease,
    LeaseBusy,
    ReadScope,
    RuntimeCommit,
    lease_owner_id,
)
from .cancel import TurnCancelRegistry
from .state import SessionPolicy, SessionReadView, SessionState

if TYPE_CHECKING:
    from .core import LashCore
    from .observe import ObservableSession
    from .queue import Drainer, EnqueueBuilder, QueuedTurnBuilder
    from .tool_admin import ToolAdmin
    from .turn import TurnBuilder


class LashSession:
    """An opened session. Not thread-safe: use it from one event loop (the sync mirror
    keeps every call of a sync-opened session on its private loop thread)."""

    def __init__(
        self,
        core: LashCore,
        state: SessionState,
        *,
        store: Any,
        provider: Any,
        residency: str = "keep_all",
        provider_mismatch: str | None = None,
    ) -> None:
        self.core = core
        self.state = state
        self.store = store
        self.provider = provider
        self.residency = residency
        self.provider_mismatch = provider_mismatch
        self.cancels = TurnCancelRegistry()
        self.owner_id = lease_owner_id(fresh_id())
        self._lock: asyncio.Lock | None = None
        self._catalog: tuple[CatalogKey, tuple[LlmToolSpec, ...], list[dict[str, Any]]] | None = None
        self.context_overlay_revision = 0
        self.closed = False
        from .queue import Drainer

        self.drainer: Drainer = Drainer(self)

    # ------------------------------------------------------------------ public API
    @property
    def session_id(self) -> str:
        return self.state.session_id

    def __repr__(self) -> str:
        return (f"LashSession({self.session_id!r}, provider={self.state.policy.provider_id!r}, "
                f"model={self.state.policy.model!r}, turns={self.state.turn_index})")

    def turn(self, turn_input: TurnInput | str) -> TurnBuilder:
        from .turn import TurnBuilder

        return TurnBuilder(self, turn_input)

    def enqueue(self, turn_input: TurnInput | str) -> EnqueueBuilder:
        from .queue import EnqueueBuilder

        return EnqueueBuilder(self, turn_input)

    def queued_turn(self) -> QueuedTurnBuilder:
        from .queue import QueuedTurnBuilder

        return QueuedTurnBuilder(self)

    async def queued_work(self) -> list[Any]:
        """Batches of this session in enqueue order, claimed ones excluded: pending ones and
        ones parked ``failed`` after ``max_batch_attempts`` (``batch.status``, ``.attempts``,
        ``.error``; cancel a failed batch to remove it)."""
        pending: list[Any] = await self.store.list_queued_work(self.session_id)
        return pending

    async def cancel_queued_work_batch(self, batch_id: str) -> Any:
        """Remove a pending batch and return it; ``None`` if it is unknown, already claimed,
        completed or cancelled."""
        if not isinstance(batch_id, str):
            raise TypeError(f"batch_id must be a str (a QueuedWorkBatch.batch_id), got {type(batch_id).__name__}")
        batch = await self.store.cancel_queued_work_batch(self.session_id, batch_id)
        if batch is not None:
            self._record_queue_changed("cancelled", (batch_id,))
        return batch

    async def await_queued_work_batch(self, batch_id: str, timeout: float | None = None) -> None:
        """Return once ``batch_id`` is no longer pending (claimed, completed, cancelled or
        parked failed). Polls the store 25 ms doubling to 400 ms, so drains by other processes
        are seen."""
        delay = 0.025
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            pending = await self.store.list_queued_work(self.session_id)
            if all(b.batch_id != batch_id or b.status == "failed" for b in pending):
                return
            if deadline is not None and loop.time() + delay > deadline:
                raise TimeoutError(f"batch {batch_id!r} still pending after {timeout} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.4)

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
        send = getattr(self.store, "request_turn_cancel", None)
        if send is None:
            return local
        await send(self.session_id, turn_id)
        return True

    def usage_report(self) -> SessionUsageReport:
        return self.state.usage_report()

    def read_view(self) -> SessionReadView:
        return self.state.read_view()

    def policy_snapshot(self) -> SessionPolicy:
        return self.state.policy

    def tools(self) -> ToolAdmin:
        from .tool_admin import ToolAdmin

        return ToolAdmin(self)

    def observe(self) -> ObservableSession:
        from .observe import ObservableSession

        return ObservableSession(self)

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

    async def close(self) -> None:
        self.drainer.pause()
        self.closed = True

    async def __aenter__(self) -> LashSession:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ runtime internals
    def _writer(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def is_running(self) -> bool:
        return self._lock is not None and self._lock.locked()

    async def _acquire_lease(self) -> Lease:
        got = await self.store.try_acquire_lease(self.session_id, self.owner_id, self.core.lease_ttl_ms)
        if isinstance(got, LeaseBusy):
            raise SessionExecutionBusy(self.session_id, got.holder_owner_id)
        lease: Lease = got
        return lease

    async def _try_lease(self) -> Lease | None:
        got = await self.store.try_acquire_lease(self.session_id, self.owner_id, self.core.lease_ttl_ms)
        return None if isinstance(got, LeaseBusy) else got

    async def _watch_remote_cancel(self, turn_id: str, token: CancellationToken) -> Any:
        """Subscribe the running turn to cross-process cancel requests, if the store has them.
        Store contract: ``await store.watch_turn_cancel(session_id, turn_id, callback)``
        returns an unsubscribe callable; ``callback()`` may be called from any thread."""
        watch = getattr(self.store, "watch_turn_cancel", None)
        if watch is None:
            return _noop
        return await watch(self.session_id, turn_id, lambda: token.cancel("remote", None))

    def _keep_lease(self, lease: Lease, token: CancellationToken) -> LeaseKeeper:
        return LeaseKeeper(self, lease, token)

    async def _release_lease_quietly(self, lease: Lease | None) -> None:
        if lease is None:
            return
        with contextlib.suppress(Exception):
            await self.store.release_lease(lease)

    def _commit_base(self, lease: Lease | None, nodes: Sequence[Any], **kw: Any) -> RuntimeCommit:
        st = self.state
        replace = st.graph.replace_required
        fields: dict[str, Any] = dict(
            session_id=st.session_id,
            lease=lease,
            # never persisted from this handle's view = expect an empty store (revision 0)
            expected_head_revision=None if replace else (st.head_revision or 0),
            provider_id=st.policy.provider_id,
            model=st.policy.model,
            parent_session_id=st.parent_session_id,
            policy=st.policy.to_json(),
            tool_state=st.registry.state_json(),
            turn_index=st.turn_index,
            leaf_node_id=st.graph.leaf_node_id,
        )
        if replace:
            fields["replace_graph"] = tuple(st.graph.nodes())
        else:
            fields["append_nodes"] = tuple(nodes)
        fields.update(kw)
        return RuntimeCommit(**fields)

    def _applied(self, head_revision: int) -> None:
        self.state.head_revision = head_revision
        self.state.graph.replace_required = False
        self.state.stale = False

    async def _reload_from_store(self) -> None:
        scope = ReadScope.ACTIVE_PATH if self.residency == "active_path_only" else ReadScope.FULL_GRAPH
        persisted = await self.store.load_session(self.session_id, scope)
        st = self.state
        if persisted is None:
            st.graph = SessionGraph()
            st.head_revision, st.turn_index = None, 0
            st.set_ledger([])
        else:
            st.graph = persisted.graph()
            st.head_revision = persisted.meta.head_revision
            st.turn_index = persisted.meta.turn_index
            st.set_ledger(list(persisted.ledger))
        st.stale = False

    async def _recover_open_turns(self) -> None:
        """Close turns whose runtime died mid-turn (progress commit, no terminal commit)."""
        lease = await self._try_lease()
        if lease is None:
            return  # the holder is alive: it is still running them
        try:
            for attempt in (1, 2):
                try:
                    res = await self.store.commit(self._commit_base(
                        lease, (), close_open_turns=True, release_lease=True))
                except HeadRevisionConflict:
                    if attempt == 2:
                        raise
                    await self._reload_from_store()  # another runtime committed meanwhile
                    continue
                self._applied(res.head_revision)
                return
        except BaseException:
            await self._release_lease_quietly(lease)
            raise

    def _tool_specs(self) -> tuple[LlmToolSpec, ...]:
        reg = self.state.registry
        key = CatalogKey(True, self.context_overlay_revision, reg.generation, 0)
        if self._catalog is None or self._catalog[0] != key:
            members = reg.members()
            specs = tuple(LlmToolSpec(m.name, m.description, m.input_schema) for m in members)
            from .._core.tools import catalog_entries

            self._catalog = (key, specs, catalog_entries(members))
        return self._catalog[1]

    def _tool_catalog(self) -> list[dict[str, Any]]:
        self._tool_specs()
        assert self._catalog is not None
        return self._catalog[2]

    # ------------------------------------------------------------------ observation
    def _record_activity(self, activity: TurnActivity) -> None:
        self.core.replay.append(self.session_id, self.state.revision(), "turn_activity",
                                activity=activity)

    def _record_queue_changed(self, kind: str, batch_ids: Sequence[str]) -> None:
        self.core.replay.append(self.session_id, self.state.revision(), "queue_changed",
                                queue_kind=kind, batch_ids=tuple(batch_ids))

    def _publish_committed(self, kick: bool = True) -> None:
        self.core.replay.append(self.session_id, self.state.revision(), "committed",
                                read_view=self.state.read_view())
        if kick:
            self.drainer.kick()

    async def _stored_events(self, turn_id: str | None = None) -> list[TurnActivity]:
        events: list[TurnActivity] = await self.store.load_events(self.session_id, turn_id)
        return events

    def _ledger(self) -> list[TokenLedgerEntry]:
        return self.state.ledger


def _noop() -> None:
    return None


class LeaseKeeper:
    """Renews a session lease every renew interval while a turn runs. A renewal also revives
    a lease that expired while the loop was blocked, if nobody took the session over. If
    someone did, it takes a fresh lease when the session is free again (the final commit
    then checks that nobody committed meanwhile); if the session is busy, it cancels the
    turn's token with origin ``lease_lost`` (the turn ends ``stopped: runtime_error``)."""

    def __init__(self, session: LashSession, lease: Lease, token: CancellationToken) -> None:
        self.session = session
        self.lease = lease
        self.token = token
        self.lost = False
        self.replaced = False
        self._task: asyncio.Task[None] | None = None
        self._handle = asyncio.get_running_loop().call_later(
            session.core.lease_renew_s, self._fire)

    def _fire(self) -> None:
        self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        try:
            self.lease = await self.session.store.renew_lease(self.lease, self.session.core.lease_ttl_ms)
        except SessionExecutionLeaseLost:
            if not await self.recover():
                self.lost = True
                self.token.cancel("lease_lost", "another runtime took the session over")
                return
        except Exception:
            pass
        self._handle = asyncio.get_running_loop().call_later(self.session.core.lease_renew_s, self._fire)

    async def recover(self) -> bool:
        """After another owner took the session over: take a fresh lease if it is free now.
        ``replaced`` tells the final commit its conflicts mean "someone committed meanwhile"."""
        fresh = await self.session._try_lease()
        if fresh is None:
            return False
        self.lease, self.replaced = fresh, True
        return True

    def stop(self) -> None:
        self._handle.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()

