"""Queued work in ``queued_work_batches`` (state machine of ``lash_nb._core.queue``).

A row is *claimed* only while its ``claim_generation`` equals the fencing number of the
session's live lease; otherwise it is pending, whatever its ``claim_id`` says. Claim
selection reads the session's rows in ``enqueue_seq`` order and applies
``select_claim_prefix`` in Python inside the claiming transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..._core.queue import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimBoundary,
    QueueClaim,
    QueuedWorkBatch,
    QueuedWorkDraft,
    attempts_exhausted,
    clip_error,
    failure_text,
    select_claim_prefix,
    validate_selected_group,
)
from ..._core.records import fresh_id
from ..base import Lease
from . import rows
from .commit import finish_batches, now_ms
from .hold import Hold
from .leases import check_held, live_generation


def enqueue(con: Any, hold: Hold, d: QueuedWorkDraft) -> QueuedWorkBatch:
    if d.source_key is not None:
        row = rows.first(con.execute(
            f"SELECT {rows.BATCH_COLS} FROM queued_work_batches "
            "WHERE session_id = ? AND source_key = ?",
            [d.session_id, d.source_key],
        ))
        if row is not None:
            return rows.decode_batch(row)
    batch_id = fresh_id("qwb:")
    items = [
        {"item_id": f"{batch_id}:item:{i}", "kind": kind, "payload": dict(payload)}
        for i, (kind, payload) in enumerate(d.items)
    ]
    t = now_ms()
    row = rows.first(con.execute(
        "INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
        "slot_policy, merge_key, available_at_ms, enqueued_at_ms, items) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {rows.BATCH_COLS}",
        [batch_id, d.session_id, d.source_key, d.delivery_policy.value, d.slot_policy.value,
         d.merge_key, d.available_at_ms, t, rows.dumps(items)],
    ))
    hold.bump_queue(d.session_id, +1)
    return rows.decode_batch(row)


def _session_rows(con: Any, sid: str) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = con.execute(
        f"SELECT {rows.BATCH_COLS} FROM queued_work_batches WHERE session_id = ? "
        "ORDER BY enqueue_seq",
        [sid],
    ).fetchall()
    return found


def _claimed(r: Sequence[Any], generation: int | None) -> bool:
    return r[10] is not None and r[11] == generation


def _failed(r: Sequence[Any]) -> bool:
    return r[15] is not None


PARK_SQL = (
    "UPDATE queued_work_batches SET failed_at_ms = $t, claim_id = NULL, claimed_at_ms = NULL, "
    "error = $error WHERE batch_id = $id"
)


def list_queued(con: Any, hold: Hold, sid: str, include_claimed: bool) -> list[QueuedWorkBatch]:
    if hold.queue_size(con, sid) == 0:
        return []
    gen = live_generation(hold, con, sid, now_ms())
    return rows.decode_listing(((r, _claimed(r, gen)) for r in _session_rows(con, sid)),
                               include_claimed)


def claim(
    con: Any,
    hold: Hold,
    lease: Lease,
    boundary: ClaimBoundary,
    max_batches: int,
    batch_ids: Sequence[str] | None,
    commands: bool,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> QueueClaim | None:
    t = now_ms()
    check_held(hold, con, lease)
    if hold.queue_size(con, lease.session_id) == 0:
        return None  # nothing queued: no statement at all (the common checkpoint case)
    gen = lease.fencing
    ready = [
        rows.decode_batch(r) for r in _session_rows(con, lease.session_id)
        if r[7] <= t and not _claimed(r, gen) and not _failed(r)
    ]
    for b in ready:  # claimed that often by runtimes that died: park it
        if attempts_exhausted(b.attempts, max_attempts):
            con.execute(PARK_SQL, {"t": t, "id": b.batch_id,
                                   "error": failure_text(b.error, b.attempts)})
    ready = [b for b in ready if not attempts_exhausted(b.attempts, max_attempts)]
    if batch_ids is not None:
        by_id = {b.batch_id: b for b in ready}
        if not all(b in by_id for b in batch_ids):
            return None
        chosen = [by_id[b] for b in batch_ids]
        if not validate_selected_group(chosen, boundary):
            return None
    else:
        chosen = select_claim_prefix(ready, boundary, max_batches, commands=commands)
    if not chosen:
        return None
    claim_id = f"qwc:{chosen[0].enqueue_seq}:{lease.fencing}:{fresh_id()}"
    con.execute(
        "UPDATE queued_work_batches SET claim_id = ?, claim_generation = ?, claimed_at_ms = ?, "
        "attempts = attempts + 1 WHERE list_contains(?, batch_id)",
        [claim_id, lease.fencing, t, [b.batch_id for b in chosen]],
    )
    # the claim's generation is durable with it (the expiry is written when the file is released)
    hold.write_lease(con, lease.session_id, unless_holder_stored=True)
    return QueueClaim(claim_id, lease.session_id, lease.fencing, boundary,
                      tuple(dataclasses.replace(b, attempts=b.attempts + 1) for b in chosen))


def cancel(con: Any, hold: Hold, sid: str, batch_id: str) -> QueuedWorkBatch | None:
    t = now_ms()
    row = rows.first(con.execute(
        f"SELECT {rows.BATCH_COLS} FROM queued_work_batches WHERE batch_id = ? AND session_id = ?",
        [batch_id, sid],
    ))
    if row is None or _claimed(row, live_generation(hold, con, sid, t)):
        return None
    finish_batches(con, [batch_id], "cancelled", None, t)
    hold.bump_queue(sid, -1)
    return rows.decode_batch(row)


def abandon(con: Any, c: QueueClaim, error: str | None = None,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
    """Release ``c`` without completing it: its batches are pending again with ``error`` as
    their last error, or parked failed once they used up ``max_attempts`` claims."""
    con.execute(
        "UPDATE queued_work_batches SET claim_id = NULL, claimed_at_ms = NULL, "
        "error = coalesce($error, error, CASE WHEN attempts >= $max THEN $why END), "
        "failed_at_ms = CASE WHEN attempts >= $max THEN $t END "
        "WHERE claim_id = $claim AND list_contains($ids, batch_id)",
        {"error": clip_error(error), "max": max(1, max_attempts), "t": now_ms(),
         "why": failure_text(None, max(1, max_attempts)), "claim": c.claim_id,
         "ids": list(c.batch_ids)},
    )


def sessions_with_ready_work(con: Any, hold: Hold) -> list[str]:
    hold.write_dirty_leases(con)  # the join below reads lease rows from the file
    return [r[0] for r in con.execute(
        """
        SELECT b.session_id FROM queued_work_batches b
        LEFT JOIN execution_leases l ON l.session_id = b.session_id
            AND l.token IS NOT NULL AND l.expires_at_ms > $t
        WHERE b.available_at_ms <= $t AND b.failed_at_ms IS NULL
            AND NOT (b.claim_id IS NOT NULL AND b.claim_generation IS NOT DISTINCT FROM l.fencing)
        GROUP BY b.session_id ORDER BY min(b.enqueue_seq)
        """,
        {"t": now_ms()},
    ).fetchall()]
