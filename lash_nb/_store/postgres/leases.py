"""Session execution leases in ``execution_leases`` (rules of ``base.py``), fenced.

Every lease decision reads the server clock (``lash_now_ms()``) and locks the session's
lease row ``FOR UPDATE``, so two workers racing for one session serialize on that row: one
acquires (fencing + 1), the other sees it busy. Lock order everywhere: ``sessions`` row,
then lease row, then queued batch rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..._errors import SessionExecutionLeaseLost
from ..base import Lease, LeaseBusy, owner_is_dead

ROW_SQL = (
    "SELECT owner_id, token, fencing, expires_at_ms, lash_now_ms() FROM execution_leases "
    "WHERE session_id = %s FOR UPDATE"
)


def lost(session_id: str) -> SessionExecutionLeaseLost:
    return SessionExecutionLeaseLost(
        f"the execution lease on session {session_id!r} was lost (taken over or released); "
        "reopen the session and run again"
    )


async def try_acquire(con: Any, sid: str, owner_id: str, ttl_ms: int) -> Lease | LeaseBusy:
    async with con.transaction():
        await con.execute(
            "INSERT INTO execution_leases VALUES (%s, NULL, NULL, 0, 0) "
            "ON CONFLICT (session_id) DO NOTHING", [sid])
        cur = await con.execute(ROW_SQL, [sid])
        holder, token, fencing, expires, t = await cur.fetchone()
        if token is not None and holder == owner_id:  # its own, expired or not: same fencing
            await con.execute(
                "UPDATE execution_leases SET expires_at_ms = %s WHERE session_id = %s",
                [t + ttl_ms, sid])
            return Lease(sid, owner_id, token, int(fencing), t + ttl_ms)
        if token is not None and expires > t and not owner_is_dead(holder or ""):
            return LeaseBusy(sid, holder or "", int(expires))
        fencing = int(fencing) + 1
        token = f"{sid}:{owner_id}:{t}:{fencing}"
        await con.execute(
            "UPDATE execution_leases SET owner_id = %s, token = %s, fencing = %s, "
            "expires_at_ms = %s WHERE session_id = %s",
            [owner_id, token, fencing, t + ttl_ms, sid])
        return Lease(sid, owner_id, token, fencing, t + ttl_ms)


async def renew(con: Any, lease: Lease, ttl_ms: int) -> Lease:
    # one autocommitted statement, no BEGIN ... COMMIT around it: the row lock ends with the
    # statement's answer, so a loop blocked right after it (a sync call in an async tool)
    # keeps no other process waiting on the lease row
    cur = await con.execute(
        "UPDATE execution_leases SET expires_at_ms = lash_now_ms() + %s "
        "WHERE session_id = %s AND token = %s AND fencing = %s RETURNING expires_at_ms",
        [ttl_ms, lease.session_id, lease.token, lease.fencing])
    row = await cur.fetchone()
    if row is None:
        raise lost(lease.session_id)
    return dataclasses.replace(lease, expires_at_ms=int(row[0]))


RELEASE_SQL = (
    "UPDATE execution_leases SET owner_id = NULL, token = NULL, expires_at_ms = 0 "
    "WHERE session_id = %s AND token = %s AND fencing = %s"
)

# wake idle workers when a released session still has ready work (it was skipped while busy)
WAKE_IF_READY_SQL = (
    "SELECT pg_notify('lash_work', %s) WHERE EXISTS (SELECT 1 FROM queued_work_batches "
    "WHERE session_id = %s AND available_at_ms <= lash_now_ms() AND failed_at_ms IS NULL)"
)


async def release(con: Any, lease: Lease) -> None:
    # one statement (autocommitted: atomic, the wake-up delivered at its end)
    await con.execute(
        "WITH released AS (UPDATE execution_leases SET owner_id = NULL, token = NULL, "
        "expires_at_ms = 0 WHERE session_id = %s AND token = %s AND fencing = %s RETURNING 1) "
        + WAKE_IF_READY_SQL,
        [lease.session_id, lease.token, lease.fencing, lease.session_id, lease.session_id])


async def forget(con: Any, lease: Lease) -> None:
    """``release``, except that the row is deleted when the session is not stored and has
    no queued work (``base.LeaseForgetter``, ADR 0148)."""
    cur = await con.execute(
        "DELETE FROM execution_leases WHERE session_id = %(sid)s AND token = %(tok)s AND "
        "fencing = %(gen)s AND NOT EXISTS (SELECT 1 FROM sessions WHERE session_id = %(sid)s) "
        "AND NOT EXISTS (SELECT 1 FROM queued_work_batches WHERE session_id = %(sid)s) "
        "RETURNING 1", {"sid": lease.session_id, "tok": lease.token, "gen": lease.fencing})
    if await cur.fetchone() is None:
        await release(con, lease)
