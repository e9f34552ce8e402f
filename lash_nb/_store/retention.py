"""Retention: what a store gives back (lash ``StoreMaintenance``, spec §4.8).

Theory of operation
- ``tombstone_nodes(session_id, node_ids)`` marks graph nodes dead: every read stops
  returning them at once; the rows stay until ``vacuum()``. Only nodes off the active path
  are ever tombstoned (the runtime's ``session.tombstone_branch`` checks that); a store
  tombstones what it is given and returns how many live nodes it marked.
- ``vacuum()`` deletes the tombstoned rows of every session and reports how many
  (:class:`VacuumReport`). A file store then gives the space back: DuckDB never shrinks a
  file by itself, so the DuckDB store copies the live data into a fresh file and swaps it in
  while it holds the file (``duckdb/compact.py``); ``file_bytes_before`` / ``_after`` say
  what that gained (``None`` for stores without a file).
- ``delete_session`` (in every store) removes one session's rows of every table, its queued
  work and its queue history in one transaction; other sessions are untouched.
- Retention is the host's decision: nothing here runs by itself (lash does not schedule
  vacuum either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeGuard, runtime_checkable


@dataclass(frozen=True)
class VacuumReport:
    """What ``store.vacuum()`` removed (lash ``VacuumReport``) and, for a file store, the
    file size before and after."""

    removed_node_count: int
    file_bytes_before: int | None = None
    file_bytes_after: int | None = None


@runtime_checkable
class StoreMaintenance(Protocol):
    """Tombstones and vacuum (lash ``StoreMaintenance``)."""

    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> int: ...

    async def vacuum(self) -> VacuumReport: ...


def maintains(store: object) -> TypeGuard[StoreMaintenance]:
    return isinstance(store, StoreMaintenance)
