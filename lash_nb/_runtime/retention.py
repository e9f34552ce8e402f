"""Retention from the runtime's side: tombstone a branch, delete a session, vacuum.

Theory of operation (lash ``StoreMaintenance`` + ``LashCore::delete_session``)
- ``session.tombstone_branch(node_id)`` tombstones ``node_id`` and every node below it.
  The active path is never tombstoned: a branch that holds the leaf is refused (move the
  leaf with ``branch_to`` first). The store marks the rows; this handle drops the nodes
  from its graph at once; ``core.vacuum()`` deletes the rows later.
- ``core.delete_session(id)`` deletes a session only when nobody uses it: an open in this
  process that was not closed or parked refuses with ``SessionStillInUse``; a turn running
  anywhere (the session execution lease is held) refuses with ``SessionExecutionBusy``.
  Deleting holds that lease so nothing starts meanwhile; the store removes the session's
  rows, queued work and lease row in one transaction and touches no other session.
- Nothing here runs by itself: retention is the host's decision, as in lash.
"""

from __future__ import annotations

import weakref
from typing import Any

from .._core.graph import SessionGraph
from .._core.records import fresh_id
from .._core.text import check_id
from .._errors import ConfigurationError, SessionExecutionBusy, SessionStillInUse
from .._store.base import LeaseBusy, SessionStore, lease_owner_id
from .._store.retention import StoreMaintenance, VacuumReport, maintains
from .lifecycle import OpenHandles

_OPENS: weakref.WeakSet[OpenHandles] = weakref.WeakSet()  # every open of this process


def track_open(handles: OpenHandles) -> None:
    _OPENS.add(handles)


def opens_here() -> list[tuple[str, SessionStore]]:
    """``(session id, store)`` of every open of this process that is not closed, the newest
    first: a notebook names the ones it opened with the Python API, which its magics do not
    know (ADR 0201)."""
    opens = sorted(_OPENS, key=lambda h: h.opened, reverse=True)  # the newest first
    return [(h.session_id, h.store) for h in opens if not h.closed and h.alive()]


def open_here(store: SessionStore, session_id: str) -> bool:
    """An open of ``session_id`` on ``store`` in this process that is not closed."""
    return any(not h.closed and h.session_id == session_id and h.store is store and h.alive()
               for h in list(_OPENS))


def maintenance(store: SessionStore) -> StoreMaintenance:
    if not maintains(store):
        raise ConfigurationError(
            f"{type(store).__name__} has no tombstones or vacuum; use a lash_nb.stores store "
            "(memory, DuckDB, PostgreSQL)")
    return store


def branch_below(graph: SessionGraph, node_id: str) -> list[str]:
    """``node_id`` and every node under it; refuses a branch holding the active path."""
    nodes = graph.nodes()
    if node_id not in {n.node_id for n in nodes}:
        raise ConfigurationError(
            f"no node {node_id!r} in this session graph; %lash graph (or read_view().nodes()) "
            "lists the node ids")
    below: dict[str | None, list[str]] = {}
    for n in nodes:
        below.setdefault(n.parent_node_id, []).append(n.node_id)
    ids, todo = [], [node_id]
    while todo:
        cur = todo.pop()
        ids.append(cur)
        todo.extend(below.get(cur, ()))
    on_path = {n.node_id for n in graph.active_path()}
    if on_path.intersection(ids):
        raise ConfigurationError(
            f"node {node_id!r} is on the active path (the conversation the next turn continues);"
            " branch_to() an earlier node first, then tombstone the branch left behind")
    return ids


async def tombstone_branch(session: Any, node_id: str) -> int:
    """Tombstone ``node_id`` and its descendants; returns how many nodes the store marked."""
    store = maintenance(session.store)
    ids = branch_below(session.state.graph, check_id(node_id, "node id"))
    async with session.writer.lock():  # not under a running turn of this handle
        marked = await store.tombstone_nodes(session.session_id, ids)
        session.state.graph.tombstone(ids)
    return marked


async def delete_session(store: SessionStore, session_id: str) -> None:
    """Delete a session nobody uses (see the module docstring)."""
    check_id(session_id, "session id")
    if open_here(store, session_id):
        raise SessionStillInUse(session_id, "delete",
                                "it is open in this process (close() or park() it first)")
    got = await store.try_acquire_lease(session_id, lease_owner_id(fresh_id()))
    if isinstance(got, LeaseBusy):
        raise SessionExecutionBusy(session_id, got.holder_owner_id)
    await store.delete_session(session_id)  # the lease row goes with it


async def vacuum(store: SessionStore) -> VacuumReport:
    return await maintenance(store).vacuum()
