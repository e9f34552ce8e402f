"""Queued work in ``queued_work_batches`` (state machine of ``lash_nb._core.queue``).

Theory of operation
- A row is *claimed* only while its ``claim_generation`` equals the fencing number of the
  session's live lease; otherwise it is pending, whatever its ``claim_id`` says. So the
  claims of a worker that died become pending once its lease expires (one lease TTL), or at
  once when ``owner_is_dead`` proves its process gone.
- Claim: one statement checks the lease and whether anything is ready (nothing ready: no
  transaction). Then in one transaction: select the ready rows in ``enqueue_seq`` order
  ``FOR UPDATE SKIP LOCKED``, apply ``select_claim_prefix``, and write the claim with an
  UPDATE guarded by the caller's lease (token and fencing). The rows are locked before that
  UPDATE reads the lease, so a newer lease that claimed any of them had committed before and
  is seen: the guard fails, the transaction rolls back, nothing of a newer lease is
  overwritten (ADR 0121: no lease lock for a claim). Parking batches that used up their
  attempts is rare and keeps the lease row locked ``FOR SHARE`` for it. Under a live lease
  the only other writer that locks a session's batch rows is a cancel, which deletes them,
  so skipping a locked row never reorders the queue. A claim stays a transaction of its
  own: other processes (listings, cancels, workers) see the batch claimed before the turn
  runs.
- Enqueue: a burst of enqueues (``PostgresStore.enqueue``) is one transaction: one statement
  takes each session's advisory lock before ``enqueue_seq`` is drawn, so within one session
  sequence order is commit order (a claim never sees batch n+1 committed before batch n),
  and queues one ``lash_work`` per session (delivered at commit) to wake idle workers; a run
  of unkeyed drafts is one INSERT from arrays.
- Cancel locks the batch row (waiting, not skipping) and deletes it only when no live
  claim holds it: a cancelled batch never becomes a turn.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from ..._core.queue import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimBoundary,
    QueueClaim,
    QueuedWorkBatch,
    QueuedWorkDraft,
    QueuedWorkItem,
    SlotPolicy,
    clip_error,
    failure_text,
    select_claim_prefix,
    validate_selected_group,
)
from ..._core.records import fresh_id
from ..base import Lease
from ..duckdb import rows
from .leases import lost
from .schema import AT_ONCE_SQL, EARLY_SQL, SCHEDULED_AT_SQL

COLS = rows.BATCH_COLS  # same column names as the DuckDB store; items decoded from text
_LIVE_GEN = (
    "(SELECT fencing FROM execution_leases l WHERE l.session_id = b.session_id "
    "AND l.token IS NOT NULL AND l.expires_at_ms > lash_now_ms())"
)


_INSERT = (
    "INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
    "slot_policy, merge_key, available_at_ms, enqueued_at_ms, items) "
)
# the sessions' advisory locks, in the order given (sorted: two bursts never wait on each
# other in a circle), and one ``lash_work`` per session, delivered at COMMIT
_LOCK_AND_WAKE_SQL = (
    "SELECT pg_advisory_xact_lock(hashtextextended(s, 7)), pg_notify('lash_work', s) "
    "FROM unnest(%s::text[]) AS s"
)


async def enqueue(con: Any, d: QueuedWorkDraft) -> QueuedWorkBatch:
    return (await enqueue_many(con, [d]))[0]


def draw(drafts: Sequence[QueuedWorkDraft]) -> list[list[Any]]:
    """The rows' values, batch ids included, drawn before any statement (nothing to roll
    back if a draft cannot be written; :func:`enqueue_again` finds them by id)."""
    return [_values(d) for d in drafts]


async def enqueue_many(con: Any, drafts: Sequence[QueuedWorkDraft],
                       values: Sequence[list[Any]] | None = None) -> list[QueuedWorkBatch]:
    """``drafts`` in one transaction, in order: one statement takes the sessions' locks and
    queues their wake-ups, a run of drafts without a source key is one INSERT, a keyed draft
    is looked up by its key first (idempotent, also within the burst). ``values``: from
    :func:`draw` (drawn here when not given)."""
    values = list(values) if values is not None else draw(drafts)
    out: list[QueuedWorkBatch] = []
    async with con.transaction():
        await con.execute(_LOCK_AND_WAKE_SQL, [sorted({d.session_id for d in drafts})])
        i = 0
        while i < len(drafts):
            j = i
            while j < len(drafts) and drafts[j].source_key is None:
                j += 1
            if j > i:
                out += await _insert_run(con, drafts[i:j], values[i:j])
                i = j
            else:
                out.append(await _insert_keyed(con, drafts[i], values[i]))
                i += 1
    return out


async def enqueue_again(con: Any, drafts: Sequence[QueuedWorkDraft],
                        values: Sequence[list[Any]]) -> list[QueuedWorkBatch]:
    """The burst again, after the connection died under :func:`enqueue_many`: its COMMIT
    may have gone through with only the answer lost (docs/adr/0170). The burst is one
    transaction, stored whole or not at all; a batch drawn for it found by id (queued, or
    already run: ``queue_history``) means it was stored, and its batches are answered
    without writing them twice. Else it is written now (a keyed draft is looked up by its
    key either way)."""
    ids = [v[0] for v in values]
    cur = await con.execute(
        "SELECT batch_id, enqueue_seq, enqueued_at_ms FROM queued_work_batches "
        "WHERE batch_id = ANY(%s) UNION ALL SELECT batch_id, enqueue_seq, enqueued_at_ms "
        "FROM queue_history WHERE session_id = ANY(%s) AND batch_id = ANY(%s)",
        [ids, sorted({d.session_id for d in drafts}), ids])
    drawn = {r[0]: (int(r[1]), int(r[2])) for r in await cur.fetchall()}
    if not drawn:
        return await enqueue_many(con, drafts, values)
    out = []
    for d, v in zip(drafts, values, strict=True):
        if v[0] in drawn:
            out.append(_built(d, v, *drawn[v[0]]))
        else:  # a keyed draft answered by the batch already queued under its key
            async with con.transaction():
                out.append(await _insert_keyed(con, d, v))
    return out


async def _insert_keyed(con: Any, d: QueuedWorkDraft, v: list[Any]) -> QueuedWorkBatch:
    cur = await con.execute(
        f"SELECT {COLS} FROM queued_work_batches WHERE session_id = %s AND source_key = %s",
        [d.session_id, d.source_key])
    row = await cur.fetchone()
    if row is None:
        cur = await con.execute(
            _INSERT + f"VALUES (%s, %s, %s, %s, %s, %s, %s, lash_now_ms(), %s::jsonb) "
            f"RETURNING {COLS}", v)
        row = await cur.fetchone()
    return rows.decode_batch(row)


async def _insert_run(con: Any, drafts: Sequence[QueuedWorkDraft],
                      values: Sequence[list[Any]]) -> list[QueuedWorkBatch]:
    """One INSERT from arrays (rows in array order, so ``enqueue_seq`` follows the calls);
    only the server-drawn columns come back: the batches are built from what was sent."""
    cols = [list(c) for c in zip(*values, strict=True)]
    del cols[2]  # source_key: NULL for the whole run
    cur = await con.execute(
        _INSERT + "SELECT b, s, NULL, dp, sp, mk, av, lash_now_ms(), it::jsonb FROM unnest("
        "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int8[], %s::text[]) "
        "AS u(b, s, dp, sp, mk, av, it) RETURNING batch_id, enqueue_seq, enqueued_at_ms", cols)
    drawn = {r[0]: (int(r[1]), int(r[2])) for r in await cur.fetchall()}
    return [_built(d, v, *drawn[v[0]]) for d, v in zip(drafts, values, strict=True)]


def _built(d: QueuedWorkDraft, v: list[Any], enqueue_seq: int,
           enqueued_at_ms: int) -> QueuedWorkBatch:
    """The batch written from ``d`` and its values ``v``, with the server-drawn columns."""
    return QueuedWorkBatch(
        batch_id=v[0], session_id=d.session_id, enqueue_seq=enqueue_seq,
        source_key=d.source_key, delivery_policy=d.delivery_policy, slot_policy=d.slot_policy,
        merge_key=d.merge_key, available_at_ms=d.available_at_ms, enqueued_at_ms=enqueued_at_ms,
        items=tuple(QueuedWorkItem(i["item_id"], i["kind"], i["payload"])
                    for i in json.loads(v[7])),  # as read back: JSON's own types
    )


def _values(d: QueuedWorkDraft) -> list[Any]:
    """The row's values (``enqueued_at_ms`` is the server's clock, drawn by the INSERT)."""
    batch_id = fresh_id("qwb:")
    items = [
        {"item_id": f"{batch_id}:item:{i}", "kind": kind, "payload": dict(payload)}
        for i, (kind, payload) in enumerate(d.items)
    ]
    return [batch_id, d.session_id, d.source_key, d.delivery_policy.value, d.slot_policy.value,
            d.merge_key, d.available_at_ms, rows.dumps(items)]


async def list_queued(con: Any, sid: str, include_claimed: bool) -> list[QueuedWorkBatch]:
    cur = await con.execute(
        f"SELECT {COLS}, claim_id IS NOT NULL AND claim_generation = {_LIVE_GEN} "
        "FROM queued_work_batches b WHERE session_id = %s ORDER BY enqueue_seq", [sid])
    n = rows.BATCH_NCOLS
    return rows.decode_listing(((r, bool(r[n])) for r in await cur.fetchall()), include_claimed)


# The session written as a range, read in (session, enqueue) order: an order only the
# session's indexes give (``queued_work_pending``, ``queued_work_early``). With ``session_id =``
# the planner folds the session away and may read the whole table in ``enqueue_seq`` order
# (the primary key) or as it lies, stepping over every other session's rows queued before
# the head: it assumes a session's rows are spread evenly, and they are not (ADR 207). The
# range holds exactly the session's rows: text comparison is deterministic (ties broken
# bytewise), so only ``sid`` is both >= and <= ``sid``.
_IN_ORDER = "session_id >= %(sid)s AND session_id <= %(sid)s"
_HEAD_FIRST = "ORDER BY session_id, enqueue_seq"


def _pending(session: str) -> str:
    """The session's rows a claim may take: not parked, not claimed under the live lease."""
    return (f"FROM queued_work_batches WHERE {session} AND failed_at_ms IS NULL "
            "AND (claim_id IS NULL OR claim_generation <> %(gen)s)")


async def claim(
    con: Any,
    lease: Lease,
    boundary: ClaimBoundary,
    max_batches: int,
    batch_ids: Sequence[str] | None,
    commands: bool,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    nonce: str | None = None,
) -> QueueClaim | None:
    """``nonce``: the claim id's last part (drawn by the caller, so that after a lost
    connection :func:`claimed_already` can find the claim if its COMMIT went through)."""
    sid, gen = lease.session_id, lease.fencing
    max_attempts = max(1, max_attempts)
    # one statement first: the lease is the caller's, something could be claimed (at a
    # checkpoint or for a command: an early row), something must be parked; else no
    # transaction at all
    early = commands or boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT
    pending = _pending("session_id = %(sid)s")
    cur = await con.execute(
        "SELECT (SELECT token = %(tok)s AND fencing = %(gen)s FROM execution_leases "
        f"WHERE session_id = %(sid)s), (SELECT true {_pending(_IN_ORDER)} "
        "AND (available_at_ms <= lash_now_ms() OR attempts >= %(max)s)"
        + (f" AND {EARLY_SQL}" if early else "")
        + f" {_HEAD_FIRST} LIMIT 1) IS NOT NULL, "
        f"EXISTS (SELECT 1 {pending} AND attempts > 0 AND attempts >= %(max)s)",
        {"tok": lease.token, "gen": gen, "sid": sid, "max": max_attempts})
    held, ready, spent = await cur.fetchone() or (None, False, False)
    if not held:
        raise lost(sid)
    if not ready:
        return None
    async with con.transaction():
        if spent:  # claimed that often by runtimes that died: park them (never claimed again)
            # under the lease locked FOR SHARE: no newer lease can have claimed them meanwhile
            cur = await con.execute(
                "SELECT token = %s AND fencing = %s "
                "FROM execution_leases WHERE session_id = %s FOR SHARE",
                [lease.token, gen, sid])
            ok = await cur.fetchone()
            if not (ok and ok[0]):
                raise lost(sid)
            await con.execute(
                "UPDATE queued_work_batches SET failed_at_ms = lash_now_ms(), claim_id = NULL, "
                "claimed_at_ms = NULL, error = coalesce(error, %s) WHERE session_id = %s "
                "AND failed_at_ms IS NULL AND attempts > 0 AND attempts >= %s "
                "AND (claim_id IS NULL OR claim_generation <> %s)",
                [failure_text(None, max_attempts), sid, max_attempts, gen])
        ready_sql = f"SELECT {COLS} {_pending(_IN_ORDER)} AND available_at_ms <= lash_now_ms()"
        args: dict[str, Any] = {"sid": sid, "gen": gen}
        if batch_ids is not None:
            cur = await con.execute(
                ready_sql + " AND batch_id = ANY(%(ids)s) ORDER BY enqueue_seq "
                "FOR UPDATE SKIP LOCKED", {**args, "ids": list(batch_ids)})
            by_id = {b.batch_id: b for b in map(rows.decode_batch, await cur.fetchall())}
            if not all(b in by_id for b in batch_ids):
                return None
            chosen = [by_id[b] for b in batch_ids]
            if not validate_selected_group(chosen, boundary):
                return None
        else:
            # the head alone, locked; only a head that joins others reads (and locks) the rows
            # behind it, so a claim locks one row however deep the queue (ADR 200)
            cur = await con.execute(
                ready_sql + f" {_HEAD_FIRST} LIMIT 1 FOR UPDATE SKIP LOCKED", args)
            ready_rows = [rows.decode_batch(r) for r in await cur.fetchall()]
            if (ready_rows and ready_rows[0].slot_policy is SlotPolicy.JOIN and not commands
                    and max_batches > 1):
                cur = await con.execute(
                    ready_sql + f" AND enqueue_seq > %(after)s {_HEAD_FIRST} LIMIT %(n)s "
                    "FOR UPDATE SKIP LOCKED",
                    {**args, "after": ready_rows[0].enqueue_seq, "n": max_batches - 1})
                ready_rows += [rows.decode_batch(r) for r in await cur.fetchall()]
            chosen = select_claim_prefix(ready_rows, boundary, max_batches, commands=commands)
        if not chosen:
            return None
        claim_id = f"qwc:{chosen[0].enqueue_seq}:{gen}:{nonce or fresh_id()}"
        # the rows are locked by this transaction, so only a lease that is no longer the
        # caller's leaves one unwritten: any newer lease committed before the rows were locked
        # is seen by this statement (the claims of a newer lease are then never overwritten)
        cur = await con.execute(
            "UPDATE queued_work_batches SET claim_id = %s, claim_generation = %s, "
            "claimed_at_ms = lash_now_ms(), attempts = attempts + 1 WHERE batch_id = ANY(%s) "
            "AND EXISTS (SELECT 1 FROM execution_leases WHERE session_id = %s AND token = %s "
            "AND fencing = %s)",
            [claim_id, gen, [b.batch_id for b in chosen], sid, lease.token, gen])
        if cur.rowcount != len(chosen):
            raise lost(sid)  # rolls the claim back
    return QueueClaim(claim_id, sid, gen, boundary,
                      tuple(dataclasses.replace(b, attempts=b.attempts + 1) for b in chosen))


async def claimed_already(con: Any, lease: Lease, boundary: ClaimBoundary,
                          nonce: str) -> QueueClaim | None:
    """The claim :func:`claim` wrote with ``nonce``, if its COMMIT went through before the
    connection died (only its answer lost); None when nothing was claimed under it."""
    cur = await con.execute(
        f"SELECT {COLS}, claim_id FROM queued_work_batches WHERE session_id = %s "
        "AND claim_generation = %s AND claim_id LIKE %s ORDER BY enqueue_seq",
        [lease.session_id, lease.fencing, f"qwc:%:{lease.fencing}:{nonce}"])
    found = await cur.fetchall()
    if not found:
        return None
    n = rows.BATCH_NCOLS
    return QueueClaim(found[0][n], lease.session_id, lease.fencing, boundary,
                      tuple(rows.decode_batch(r[:n]) for r in found))


# batches leave the queue: their history rows, the delete, and ``lash_queue`` (delivered at
# COMMIT) in one statement
FINISH_SQL = (
    "WITH gone AS (DELETE FROM queued_work_batches WHERE batch_id = ANY(%(ids)s) RETURNING *), "
    "kept AS (INSERT INTO queue_history SELECT batch_id, session_id, source_key, "
    "delivery_policy, slot_policy, enqueue_seq, enqueued_at_ms, claimed_at_ms, %(t)s, "
    "%(state)s, %(tid)s, epoch_ms(enqueued_at_ms), epoch_ms(%(t)s::bigint), attempts FROM gone) "
    "SELECT pg_notify('lash_queue', %(sid)s)"
)
QUEUE_NOTIFY_SQL = "SELECT pg_notify('lash_queue', %s)"  # batches left the session's queue


async def cancel(con: Any, sid: str, batch_id: str,
                 seen: list[QueuedWorkBatch] | None = None) -> QueuedWorkBatch | None:
    """Cancel a pending batch; ``seen`` gets the batch before the COMMIT is sent (when its
    answer is lost, :func:`cancel_again` knows what the first run cancelled)."""
    async with con.transaction():
        cur = await con.execute(
            f"SELECT {COLS}, claim_id IS NOT NULL AND claim_generation = {_LIVE_GEN}, "
            "lash_now_ms() FROM queued_work_batches b WHERE batch_id = %s AND session_id = %s "
            "FOR UPDATE", [batch_id, sid])
        row = await cur.fetchone()
        n = rows.BATCH_NCOLS
        if row is None or row[n]:
            return None
        await con.execute(FINISH_SQL, {"t": row[n + 1], "state": "cancelled", "tid": None,
                                       "ids": [batch_id], "sid": sid})
        batch = rows.decode_batch(row)
        if seen is not None:
            seen.append(batch)
    return batch


async def cancel_again(con: Any, sid: str, batch_id: str,
                       seen: list[QueuedWorkBatch]) -> QueuedWorkBatch | None:
    """:func:`cancel` run again after its connection died: a first run whose COMMIT was
    applied (the batch is in the history as cancelled, and that run had read it) answers
    with the batch it cancelled; else the cancel runs now. Never a second history row."""
    got = await cancel(con, sid, batch_id)
    if got is not None or not seen:
        return got
    cur = await con.execute(
        "SELECT 1 FROM queue_history WHERE batch_id = %s AND session_id = %s "
        "AND final_state = 'cancelled'", [batch_id, sid])
    return seen[-1] if await cur.fetchone() is not None else None


async def abandon(con: Any, c: QueueClaim, error: str | None = None,
                  max_attempts: int = DEFAULT_MAX_ATTEMPTS, *, count_attempt: bool = True) -> None:
    """Release ``c`` without completing it: pending again with ``error`` as the last error,
    or parked failed once its batches used up ``max_attempts`` claims. ``count_attempt=False``
    hands it back: attempts as before the claim, error unchanged, never parked."""
    m = max(1, max_attempts)
    if count_attempt:
        released = ("error = coalesce(%(error)s, error, CASE WHEN attempts >= %(max)s THEN "
                    "%(why)s END), failed_at_ms = CASE WHEN attempts >= %(max)s THEN "
                    "lash_now_ms() END")
    else:
        released = "attempts = greatest(attempts - 1, 0)"
    # one statement (autocommitted: atomic, its notifications delivered at its end)
    await con.execute(
        "WITH released AS (UPDATE queued_work_batches SET claim_id = NULL, claimed_at_ms = NULL, "
        f"{released} "
        "WHERE claim_id = %(claim)s AND batch_id = ANY(%(ids)s) RETURNING 1) "
        "SELECT pg_notify('lash_work', %(sid)s), pg_notify('lash_queue', %(sid)s)",
        {"error": clip_error(error), "max": m, "why": failure_text(None, m),
         "claim": c.claim_id, "ids": list(c.batch_ids), "sid": c.session_id})


# A worker's poll (ADR 218): the sessions with a batch ready now (due, not parked, not claimed
# under the session's live lease), oldest ready batch first. Read from the heads, not from every
# queued row: the sessions that have a batch enqueued to run at once, one index step each
# (``queued_work_at_once``), and each one's first such batch not claimed live (a live claim
# holds only the head's group); with the batches enqueued for later that are now due
# (``queued_work_scheduled``, read by due time: those still waiting are not visited). Parked
# batches are in neither index. Written so that only those indexes serve (ADR 207's lesson:
# the planner's choice follows its estimates): each step orders by ``session_id,
# enqueue_seq`` (an order only the session indexes give, and ``queued_work_at_once`` alone
# without a filter); the session is a range (an equality lets the primary key's order serve);
# the clock is the statement's (a stable value, so an index bound, which the planner compares
# with the statistics of ``queued_work_scheduled``'s expression: it expects the few rows due,
# reads them through the index, and the plan stays below the cost at which PostgreSQL
# compiles it with JIT, which made main's poll cost a second at 100,000 rows).
_NOW = "(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
_LIVE_CLAIM = f"b.claim_id IS NOT NULL AND b.claim_generation IS NOT DISTINCT FROM {_LIVE_GEN}"
_HEAD = "ORDER BY session_id, enqueue_seq LIMIT 1"
POLL_SQL = f"""
WITH RECURSIVE queued(sid) AS (
    (SELECT session_id FROM queued_work_batches WHERE {AT_ONCE_SQL} {_HEAD})
  UNION ALL
    SELECT (SELECT session_id FROM queued_work_batches
            WHERE {AT_ONCE_SQL} AND session_id > queued.sid {_HEAD})
    FROM queued WHERE queued.sid IS NOT NULL
),
ready(session_id, enqueue_seq) AS (
    SELECT queued.sid, (
        SELECT b.enqueue_seq FROM queued_work_batches b
        WHERE b.session_id >= queued.sid AND b.session_id <= queued.sid AND {AT_ONCE_SQL}
            AND b.available_at_ms <= {_NOW} AND NOT ({_LIVE_CLAIM}) {_HEAD})
    FROM queued WHERE queued.sid IS NOT NULL
  UNION ALL
    SELECT b.session_id, b.enqueue_seq FROM queued_work_batches b
    WHERE {SCHEDULED_AT_SQL} <= {_NOW} AND NOT ({_LIVE_CLAIM})
)
SELECT session_id FROM ready WHERE enqueue_seq IS NOT NULL
GROUP BY session_id ORDER BY min(enqueue_seq)
"""


async def sessions_with_ready_work(con: Any) -> list[str]:
    cur = await con.execute(POLL_SQL)
    return [r[0] for r in await cur.fetchall()]
