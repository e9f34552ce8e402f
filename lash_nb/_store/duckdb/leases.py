"""Session execution leases in the ``execution_leases`` table (rules of ``base.py``).

The row lives in the file, so leases hold across processes: a process that finds a live
lease of another owner gets :class:`LeaseBusy`, unless ``owner_is_dead`` proves the holder's
process gone (same host, pid no longer running). While this process holds the file the lease
rows are kept in memory (``hold.py``) and written with the next transaction or before release.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..._errors import SessionExecutionLeaseLost
from ..base import Lease, LeaseBusy, lease_is_held, owner_is_dead
from .commit import now_ms
from .hold import Hold, LeaseRow


def live_generation(hold: Hold, con: Any, sid: str, t: int) -> int | None:
    row = hold.lease(con, sid)
    if row is None or row.token is None or row.expires_at_ms <= t:
        return None
    return row.fencing


def _is_held(row: LeaseRow | None, lease: Lease) -> bool:
    return row is not None and lease_is_held(lease, row.token, row.fencing)


def try_acquire_here(hold: Hold, sid: str, owner_id: str, ttl_ms: int) -> Lease | LeaseBusy | None:
    """:func:`try_acquire` on the caller's thread, when memory holds the session's lease row
    and the hold is not sealed (ADR 90); ``None``: ask the store thread."""
    if not hold.lease_lock.acquire(blocking=False):  # the store thread is changing leases
        return None
    try:
        if hold.sealed or not hold.knows_lease(sid):
            return None
        return try_acquire(hold, None, sid, owner_id, ttl_ms)
    finally:
        hold.lease_lock.release()


def try_acquire(hold: Hold, con: Any, sid: str, owner_id: str, ttl_ms: int) -> Lease | LeaseBusy:
    with hold.lease_lock:
        return _try_acquire(hold, con, sid, owner_id, ttl_ms)


def _try_acquire(hold: Hold, con: Any, sid: str, owner_id: str, ttl_ms: int) -> Lease | LeaseBusy:
    t = now_ms()
    row = hold.lease(con, sid)
    if row is not None and row.token is not None and row.owner_id == owner_id:
        # its own lease, expired or not: extended with the same fencing
        hold.set_lease(sid, LeaseRow(owner_id, row.token, row.fencing, t + ttl_ms))
        return Lease(sid, owner_id, row.token, row.fencing, t + ttl_ms)
    if (row is not None and row.token is not None and row.expires_at_ms > t
            and not owner_is_dead(row.owner_id or "")):
        return LeaseBusy(sid, row.owner_id or "", row.expires_at_ms)
    fencing = (row.fencing if row is not None else 0) + 1
    token = f"{sid}:{owner_id}:{t}:{fencing}"
    hold.set_lease(sid, LeaseRow(owner_id, token, fencing, t + ttl_ms))
    return Lease(sid, owner_id, token, fencing, t + ttl_ms)


def check_held(hold: Hold, con: Any, lease: Lease) -> None:
    """Raise ``SessionExecutionLeaseLost`` unless ``lease`` still holds its session (see
    ``base.lease_is_held``: released or taken over, not merely expired)."""
    if not _is_held(hold.lease(con, lease.session_id), lease):
        raise SessionExecutionLeaseLost(
            f"the execution lease on session {lease.session_id!r} was lost"
        )


def renew(hold: Hold, con: Any, lease: Lease, ttl_ms: int) -> Lease:
    with hold.lease_lock:
        t = now_ms()
        check_held(hold, con, lease)
        hold.set_lease(lease.session_id, LeaseRow(lease.owner_id, lease.token, lease.fencing,
                                                  t + ttl_ms))
        return dataclasses.replace(lease, expires_at_ms=t + ttl_ms)


def release(hold: Hold, con: Any, lease: Lease) -> None:
    with hold.lease_lock:
        row = hold.lease(con, lease.session_id)
        if row is not None and row.token == lease.token and row.fencing == lease.fencing:
            hold.set_lease(lease.session_id, LeaseRow(None, None, row.fencing, 0))


def forget(hold: Hold, con: Any, lease: Lease) -> None:
    """``release``, except that the row is deleted when the session is not stored and has
    no queued work (``base.LeaseForgetter``, ADR 0148). Runs in a transaction after the
    pending commits were folded (the tables say whether the session is stored)."""
    sid = lease.session_id
    taken = con.execute(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE session_id = $sid) OR EXISTS (SELECT 1 "
        "FROM queued_work_batches WHERE session_id = $sid)", {"sid": sid}).fetchone()
    with hold.lease_lock:
        if (taken is not None and taken[0]) or not _is_held(hold.lease(con, sid), lease):
            release(hold, con, lease)
            return
        con.execute("DELETE FROM execution_leases WHERE session_id = ?", [sid])

        def gone() -> None:
            with hold.lease_lock:
                if _is_held(hold.lease(con, sid), lease):  # nobody took it meanwhile
                    hold.forget(sid)

        hold.after_commit(gone)


def keep_through_wait(hold: Hold, con: Any, lease: Lease, grace_ms: int = 5_000) -> None:
    """A commit that waited (disk full) while this process held the file throughout: nobody
    else could take its lease meanwhile (they cannot open the file), so a lease that was
    live at the first attempt is kept live for the retry. Fencing still holds."""
    with hold.lease_lock:
        row = hold.lease(con, lease.session_id)
        if row is None or row.token != lease.token or row.fencing != lease.fencing:
            return
        t = now_ms()
        if row.expires_at_ms < t + grace_ms:
            hold.set_lease(lease.session_id,
                           LeaseRow(row.owner_id, row.token, row.fencing, t + grace_ms))
