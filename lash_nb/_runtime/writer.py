"""``SessionWriter``: the one collaborator that changes a session's persisted head.

Theory of operation
- Everything that writes a session goes through its writer: the writer lock (one writer per
  handle at a time: a turn, a queued drain, a tool-membership persist), the session
  execution lease (acquire, keep renewed while a turn runs, release), the commit base (the
  session row every commit carries), applying a commit's new head revision, and reloading
  the session from the store when this handle's view went stale.
- The writer holds the handle's :class:`SessionState` and its :class:`SessionStore`; it never
  runs turns and never publishes observations (``feed.py``); callers commit through
  :meth:`commit`, which applies the new head only once the store accepted it.
- A reload that finds the session rebound to another provider (by another handle or
  process: the stored id is neither this handle's nor the one it last read or wrote) raises
  ``ProviderUnavailable`` naming that provider and leaves the handle stale, so no turn of
  this handle writes its own provider id back (lash
  ``refreshed_head_provider_id_mismatch_fails_before_turn``). A worker that only committed
  turns left the id as it was: a handle that named its own provider at open runs on (ADR 0201).
- A :class:`LeaseKeeper` renews the lease every renew interval while a turn runs (reviving
  one that merely expired); when another owner took the session over it takes a fresh lease
  once the session is free, else cancels the turn's token (origin ``lease_lost``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .._core.cancel import CancellationToken
from .._core.graph import SessionGraph
from .._errors import (
    HeadRevisionConflict,
    ProviderUnavailable,
    SessionDeleted,
    SessionExecutionBusy,
    SessionExecutionLeaseLost,
)
from .._store.base import (
    CommitResult,
    Lease,
    LeaseBusy,
    ReadScope,
    RuntimeCommit,
    SessionStore,
    forgets_leases,
    watches_turn_cancel,
)
from .state import SessionPolicy, SessionState, restore_configured

# RuntimeCommit's defaults; a commit this writer makes names every other field (ADR 0103)
_COMMIT_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RuntimeCommit)
                    if f.default is not dataclasses.MISSING}
_COMMIT_NEEDS = frozenset(f.name for f in dataclasses.fields(RuntimeCommit)) - set(_COMMIT_DEFAULTS)


def new_commit(fields: dict[str, Any]) -> RuntimeCommit:
    """``RuntimeCommit(**fields)`` for the frozen dataclass without its 23 frozen-attribute
    sets (a turn makes two; the same object, equal to the constructor's: ADR 0103)."""
    unknown = fields.keys() - _COMMIT_DEFAULTS.keys() - _COMMIT_NEEDS
    if unknown or not fields.keys() >= _COMMIT_NEEDS:
        return RuntimeCommit(**fields)  # the constructor names the bad or missing field
    commit = object.__new__(RuntimeCommit)
    attrs = commit.__dict__
    attrs.update(_COMMIT_DEFAULTS)
    attrs.update(fields)
    return commit


log = logging.getLogger("lash_nb.lease")  # acquired / busy / released DEBUG, lost / retaken WARNING


class SessionWriter:
    def __init__(self, state: SessionState, store: SessionStore, *, owner_id: str,
                 lease_ttl_ms: int, lease_renew_s: float, residency: str) -> None:
        self.state = state
        self.store = store
        self.owner_id = owner_id
        self.lease_ttl_ms = lease_ttl_ms
        self.lease_renew_s = lease_renew_s
        self.residency = residency
        self._lock: asyncio.Lock | None = None
        # the store said this handle's session was deleted (ADR 0148): the lease the refused
        # turn took is forgotten, not left released, so the deleted session keeps no row
        self.deleted = False
        # a lease whose release failed (the store was unreachable): released on close, so
        # the next open of the session in this process is not told it is busy (ADR 0170)
        self.unreleased: Lease | None = None

    # ------------------------------------------------------------------ lock
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @property
    def running(self) -> bool:
        return self._lock is not None and self._lock.locked()

    # ------------------------------------------------------------------ lease
    async def acquire_lease(self) -> Lease:
        got = await self.store.try_acquire_lease(self.state.session_id, self.owner_id,
                                                 self.lease_ttl_ms)
        _log_acquire(got, self.owner_id)
        if isinstance(got, LeaseBusy):
            raise SessionExecutionBusy(self.state.session_id, got.holder_owner_id)
        return got

    async def try_lease(self) -> Lease | None:
        got = await self.store.try_acquire_lease(self.state.session_id, self.owner_id,
                                                 self.lease_ttl_ms)
        _log_acquire(got, self.owner_id)
        return None if isinstance(got, LeaseBusy) else got

    def keep_lease(self, lease: Lease, token: CancellationToken) -> LeaseKeeper:
        return LeaseKeeper(self, lease, token)

    async def release_quietly(self, lease: Lease | None) -> None:
        if lease is None:
            return
        try:
            if self.deleted and forgets_leases(self.store):
                await self.store.forget_lease(lease)
            else:
                await self.store.release_lease(lease)
        except Exception:
            self.unreleased = lease
            return
        if self.unreleased is not None and self.unreleased.fencing == lease.fencing:
            self.unreleased = None
        log.debug("session %s: lease %d released by %s", lease.session_id, lease.fencing,
                  lease.owner_id)

    async def watch_remote_cancel(self, turn_id: str,
                                  token: CancellationToken) -> Callable[[], None]:
        """Subscribe a running turn to cross-process cancel requests, if the store has them."""
        store = self.store
        if not watches_turn_cancel(store):
            return _noop
        def cancel() -> None:
            token.cancel("remote", None)

        return await store.watch_turn_cancel(self.state.session_id, turn_id, cancel)

    # ------------------------------------------------------------------ commits
    def commit_base(self, lease: Lease | None, nodes: Sequence[Any], **kw: Any) -> RuntimeCommit:
        st = self.state
        replace = st.graph.replace_required
        fields: dict[str, Any] = {
            "session_id": st.session_id,
            "lease": lease,
            # never persisted from this handle's view = expect an empty store (revision 0); a
            # graph opened fresh over a stored session replaces it only if nobody committed to
            # it since (another process's turns would drop out of the graph)
            "expected_head_revision": st.head_revision if replace else (st.head_revision or 0),
            "provider_id": st.policy.provider_id,
            "model": st.policy.model,
            "parent_session_id": st.parent_session_id,
            "policy": st.policy.to_json(),
            "tool_state": st.registry.shared_state_json(),
            "turn_index": st.turn_index,
            "leaf_node_id": st.graph.leaf_node_id,
        }
        if replace:
            fields["replace_graph"] = tuple(st.graph.nodes())
        else:
            fields["append_nodes"] = tuple(nodes)
        fields.update(kw)
        return new_commit(fields)

    async def commit(self, commit: RuntimeCommit) -> CommitResult:
        """Commit and apply the new head revision (only once the store accepted it)."""
        try:
            res = await self.store.commit(commit)
        except SessionDeleted as e:
            self.deleted = e.elsewhere == "deleted"
            raise
        self.applied(res.head_revision)
        self.state.stored_provider_id = commit.provider_id
        if commit.release_lease and commit.lease is not None:
            log.debug("session %s: lease %d released by %s with revision %d",
                      commit.session_id, commit.lease.fencing, commit.lease.owner_id,
                      res.head_revision)
        return res

    def applied(self, head_revision: int) -> None:
        self.state.head_revision = head_revision
        self.state.graph.replace_required = False
        self.state.stale = False
        self.deleted = False

    async def reload(self) -> None:
        scope = (ReadScope.ACTIVE_PATH if self.residency == "active_path_only"
                 else ReadScope.FULL_GRAPH)
        persisted = await self.store.load_session(self.state.session_id, scope)
        st = self.state
        recorded = persisted.meta.provider_id if persisted is not None else ""
        if recorded and recorded not in (st.policy.provider_id, st.stored_provider_id):
            # another handle or process rebound the session: never write our provider back
            st.stale = True
            raise ProviderUnavailable(recorded, st.policy.provider_id, st.session_id)
        if persisted is None and st.head_revision is not None:
            # this handle's session was stored, and is gone: deleted by another handle or
            # process; an empty view here would make the next commit recreate it holding
            # only the new turns (ADR 0148). The handle stays stale: every turn refuses
            self.deleted = True
            raise SessionDeleted(st.session_id, elsewhere="deleted")
        if persisted is None:
            st.graph = SessionGraph()
            st.head_revision, st.turn_index = None, 0
            st.unclosed_turns = ()
            st.set_ledger([])
        else:
            st.graph = persisted.graph()
            st.head_revision = persisted.meta.head_revision
            st.turn_index = persisted.meta.turn_index
            st.unclosed_turns = tuple(persisted.open_turn_ids)
            st.set_ledger(list(persisted.ledger))
            st.stored_provider_id = recorded or st.stored_provider_id
            # another handle's committed config patch: adopt it, never write ours over it
            st.policy = restore_configured(st.policy, persisted.meta.policy, explicit=set())
        st.stale = False

    async def recover_open_turns(self, closing: int = 0) -> bool:
        """Close turns whose runtime died mid-turn (progress commit, no terminal commit);
        False when a live holder of the session still runs them. ``closing``: how many the
        open read; they count among the session's turns (``turn_index``), as a turn that
        ended by itself does, so a card never says "0 turns" beside a turn that did not
        finish (ADR 198). After a conflict another runtime's commit closed them."""
        lease = await self.try_lease()
        if lease is None:
            return False  # the holder is alive: it is still running them
        st = self.state
        try:
            for attempt in (1, 2):
                counted = st.turn_index
                st.turn_index = counted + (closing if attempt == 1 else 0)
                try:
                    await self.commit(self.commit_base(lease, (), close_open_turns=True,
                                                       release_lease=True))
                    st.unclosed_turns = ()
                except BaseException as err:
                    st.turn_index = counted
                    if attempt == 2 or not isinstance(err, HeadRevisionConflict):
                        raise
                    await self.reload()  # another runtime committed meanwhile
                    continue
                return True
            return False
        except BaseException:
            await self.release_quietly(lease)
            raise

    async def persist(self, policy: Callable[[SessionPolicy], SessionPolicy] | None = None) -> None:
        """Commit the session row now (e.g. a tool-membership change), under the lock.
        ``policy`` maps the current policy to a new one (a config patch): it is applied only
        if the commit succeeds."""
        async with self.lock():
            before = self.state.policy
            lease = None
            try:
                lease = await self.acquire_lease()
                if self.state.stale:
                    await self.reload()
                if policy is not None:
                    self.state.policy = policy(before)
                await self.commit(self.commit_base(lease, (), release_lease=True))
            except BaseException:
                self.state.policy = before
                await self.release_quietly(lease)
                raise


def _noop() -> None:
    return None


class LeaseKeeper:
    """Renews a session lease every renew interval while a turn runs. A renewal also revives
    a lease that expired while the loop was blocked, if nobody took the session over. If
    someone did, it takes a fresh lease when the session is free again (the final commit
    then checks that nobody committed meanwhile); if the session is busy, it cancels the
    turn's token with origin ``lease_lost`` (the turn ends ``stopped: runtime_error``)."""

    def __init__(self, writer: SessionWriter, lease: Lease, token: CancellationToken) -> None:
        self.writer = writer
        self.lease = lease
        self.token = token
        self.lost = False
        self.replaced = False
        self._task: asyncio.Task[None] | None = None
        self._handle = asyncio.get_running_loop().call_later(writer.lease_renew_s, self._fire)

    def _fire(self) -> None:
        self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        try:
            self.lease = await self.writer.store.renew_lease(self.lease, self.writer.lease_ttl_ms)
        except SessionExecutionLeaseLost:
            if not await self.recover():
                log.warning("session %s: lease lost to another runtime; turn cancelled "
                            "(lease_lost)", self.lease.session_id)
                self.lost = True
                self.token.cancel("lease_lost", "another runtime took the session over")
                return
        except Exception:
            pass
        self._handle = asyncio.get_running_loop().call_later(self.writer.lease_renew_s,
                                                             self._fire)

    async def recover(self) -> bool:
        """After another owner took the session over: take a fresh lease if it is free now.
        ``replaced`` tells the final commit its conflicts mean "someone committed meanwhile"."""
        fresh = await self.writer.try_lease()
        if fresh is None:
            return False
        log.warning("session %s: lease %d was taken over; took lease %d once the session was free",
                    fresh.session_id, self.lease.fencing, fresh.fencing)
        self.lease, self.replaced = fresh, True
        return True

    def stop(self) -> None:
        self._handle.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _log_acquire(got: Lease | LeaseBusy, owner_id: str) -> None:
    if isinstance(got, LeaseBusy):
        log.debug("session %s: lease busy, held by %s", got.session_id, got.holder_owner_id)
    else:
        log.debug("session %s: lease %d acquired by %s", got.session_id, got.fencing, owner_id)
