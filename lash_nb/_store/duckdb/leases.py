"""Session execution leases in the ``execution_leases`` table (rules of ``base.py``).

The row lives in the file, so leases hold across processes: a process that finds a live
lease of another owner gets :class:`LeaseBusy`, unless ``owner_is_dead`` proves the holder's
process gone (same host, pid no longer running).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..._errors import SessionExecutionLeaseLost
from ..base import Lease, LeaseBusy, owner_is_dead
from .commit import now_ms, release_lease
from .rows import first

_ROW_SQL = "SELECT owner_id, token, fencing, expires_at_ms FROM execution_leases WHERE session_id = ?"


def live_generation(con: Any, sid: str, t: int) -> int | None:
    row = first(con.execute(_ROW_SQL, [sid]))
    if row is None or row[1] is None or row[3] <= t:
        return None
    return int(row[2])


def _is_live(row: Any, lease: Lease, t: int) -> bool:
    return row is not None and row[1] == lease.token and row[2] == lease.fencing and row[3] > t


def try_acquire(con: Any, sid: str, owner_id: str, ttl_ms: int) -> Lease | LeaseBusy:
    t = now_ms()
    row = first(con.execute(_ROW_SQL, [sid]))
    if row is not None and row[1] is not None and row[3] > t:
        holder, token, fencing, _ = row
        if holder == owner_id:
            con.execute(
                "UPDATE execution_leases SET expires_at_ms = ? WHERE session_id = ?",
                [t + ttl_ms, sid],
            )
            return Lease(sid, owner_id, token, int(fencing), t + ttl_ms)
        if not owner_is_dead(holder or ""):
            return LeaseBusy(sid, holder or "", int(row[3]))
    fencing = (int(row[2]) if row is not None else 0) + 1
    token = f"{sid}:{owner_id}:{t}:{fencing}"
    con.execute(
        "INSERT INTO execution_leases VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE "
        "SET owner_id = excluded.owner_id, token = excluded.token, fencing = excluded.fencing, "
        "expires_at_ms = excluded.expires_at_ms",
        [sid, owner_id, token, fencing, t + ttl_ms],
    )
    return Lease(sid, owner_id, token, fencing, t + ttl_ms)


def check_live(con: Any, lease: Lease, t: int) -> None:
    if not _is_live(first(con.execute(_ROW_SQL, [lease.session_id])), lease, t):
        raise SessionExecutionLeaseLost(
            f"the execution lease on session {lease.session_id!r} was lost"
        )


def renew(con: Any, lease: Lease, ttl_ms: int) -> Lease:
    t = now_ms()
    check_live(con, lease, t)
    con.execute(
        "UPDATE execution_leases SET expires_at_ms = ? WHERE session_id = ?",
        [t + ttl_ms, lease.session_id],
    )
    return dataclasses.replace(lease, expires_at_ms=t + ttl_ms)


def release(con: Any, lease: Lease) -> None:
    release_lease(con, lease)
