"""Queued work in ``queued_work_batches`` (state machine of ``lash_nb._core.queue``).

A row is *claimed* only while its ``claim_generation`` equals the fencing number of the
session's live lease; otherwise it is pending, whatever its ``claim_id`` says. Claim
selection reads only the head of the session's ready rows (``enqueue_seq`` order, at most
one claim group's worth: a claim group is a prefix) and applies ``select_claim_prefix`` in
Python. Nothing eligible: that one read, no transaction (this process holds the file, so
nothing changes between the read and a write); a checkpoint or command claim with no
``earliest_safe_boundary`` row or session command queued (``Hold.early_size``) reads
nothing at all. A drain's claim (``IDLE`` boundary) is a mark in this hold, written with
the session's next commit (``claims.py``, ADR 0084), in its ``commit_log`` row; its
completion rides in the final commit's row (ADR 0106): both fold later, and until then this
hold overlays them (a logged claim reads claimed, a logged completion's row reads gone). A
checkpoint claim or a park is one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ..._core.queue import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimBoundary,
    DeliveryPolicy,
    QueueClaim,
    QueuedWorkBatch,
    QueuedWorkDraft,
    QueuedWorkItem,
    SlotPolicy,
    attempts_exhausted,
    clip_error,
    failure_text,
    select_claim_prefix,
    validate_selected_group,
)
from ..._core.records import fresh_id
from ..base import Lease
from . import claims as deferred
from . import rows
from .arrow import arrow_ready, need_bindable
from .commit import finish_batches, now_ms
from .hold import Hold
from .leases import check_held, live_generation

_INSERT = (
    "INSERT INTO queued_work_batches (batch_id, session_id, source_key, delivery_policy, "
    "slot_policy, merge_key, available_at_ms, enqueued_at_ms, items) "
)


def enqueue(con: Any, hold: Hold, d: QueuedWorkDraft) -> QueuedWorkBatch:
    if d.source_key is not None:
        row = rows.first(con.execute(
            f"SELECT {rows.BATCH_COLS} FROM queued_work_batches "
            "WHERE session_id = ? AND source_key = ?",
            [d.session_id, d.source_key],
        ))
        if row is not None and row[0] not in hold.claims.done_ids(d.session_id):
            return rows.decode_batch(row)
        if row is not None:  # completed in the log, still a row: its key is free once written
            deferred.apply_done(con, hold, d.session_id)
    row = rows.first(con.execute(
        _INSERT + f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {rows.BATCH_COLS}",
        _values(d, now_ms())[0]))
    _added(hold, [d], [(row[0], int(row[2]))])
    return rows.decode_batch(row)


def enqueue_many(con: Any, hold: Hold, drafts: Sequence[QueuedWorkDraft]) -> list[QueuedWorkBatch]:
    """``enqueue`` each draft in order (in the caller's transaction); a run of drafts without
    a source key is one INSERT (a burst costs one statement, not one per batch)."""
    out: list[QueuedWorkBatch] = []
    i = 0
    while i < len(drafts):
        j = i
        while j < len(drafts) and drafts[j].source_key is None:
            j += 1
        if j - i > 1:
            out.extend(_insert_many(con, hold, drafts[i:j]))
            i = j
        else:  # keyed (idempotent by its key) or alone
            out.append(enqueue(con, hold, drafts[i]))
            i += 1
    return out


_BURST_NAMES = ("batch_id", "session_id", "source_key", "delivery_policy", "slot_policy",
                "merge_key", "available_at_ms", "enqueued_at_ms", "items")


def _insert_many(con: Any, hold: Hold, drafts: Sequence[QueuedWorkDraft]) -> list[QueuedWorkBatch]:
    """One INSERT for the burst, through Arrow once pyarrow is imported (binding 9 lists of
    Python values costs more than the insert); only ids and sequence numbers come back:
    the batches are built from the drafts, as the memory store builds them."""
    t = now_ms()
    built = [_values(d, t) for d in drafts]
    cols = [list(c) for c in zip(*(v for v, _ in built), strict=True)]
    if arrow_ready():
        import pyarrow as pa

        kinds = [pa.string()] * 6 + [pa.int64()] * 2 + [pa.string()]
        con.register("lash_burst", pa.table([pa.array(c, type=k) for c, k in zip(cols, kinds, strict=True)],
                                            names=list(_BURST_NAMES)))
        try:
            found = con.execute(
                _INSERT + f"SELECT {', '.join(_BURST_NAMES[:-1])}, items::JSON FROM lash_burst "
                "RETURNING batch_id, enqueue_seq").fetchall()
        finally:
            con.unregister("lash_burst")
    else:
        need_bindable()  # lists (arrow.py)
        found = con.execute(
            _INSERT + "SELECT unnest($1::VARCHAR[]), unnest($2::VARCHAR[]), unnest($3::VARCHAR[]), "
            "unnest($4::VARCHAR[]), unnest($5::VARCHAR[]), unnest($6::VARCHAR[]), "
            "unnest($7::BIGINT[]), unnest($8::BIGINT[]), unnest($9::VARCHAR[])::JSON "
            "RETURNING batch_id, enqueue_seq", cols).fetchall()
    seq = dict(found)
    _added(hold, drafts, [(v[0], int(seq[v[0]])) for v, _ in built])
    return [QueuedWorkBatch(
        batch_id=v[0], session_id=d.session_id, enqueue_seq=int(seq[v[0]]), source_key=d.source_key,
        delivery_policy=d.delivery_policy, slot_policy=d.slot_policy, merge_key=d.merge_key,
        available_at_ms=d.available_at_ms, enqueued_at_ms=t,
        items=tuple(QueuedWorkItem(i["item_id"], i["kind"], i["payload"]) for i in items),
    ) for d, (v, items) in zip(drafts, built, strict=True)]


def _values(d: QueuedWorkDraft, t: int) -> tuple[list[Any], list[dict[str, Any]]]:
    """The row's values, and its items as written."""
    batch_id = fresh_id("qwb:")
    items = [
        {"item_id": f"{batch_id}:item:{i}", "kind": kind, "payload": dict(payload)}
        for i, (kind, payload) in enumerate(d.items)
    ]
    return [batch_id, d.session_id, d.source_key, d.delivery_policy.value, d.slot_policy.value,
            d.merge_key, d.available_at_ms, t, rows.dumps(items)], items


def _added(hold: Hold, drafts: Sequence[QueuedWorkDraft], made: Sequence[tuple[str, int]]) -> None:
    """After COMMIT: the sessions' queue sizes grow by the drafts (one update per session),
    their queue indexes by the rows ``made`` (batch id, enqueue seq; the drafts' order)."""
    grown: dict[tuple[str, bool], int] = {}
    rows_of: dict[str, list[tuple[str, int]]] = {}
    for d, row in zip(drafts, made, strict=True):
        early = d.delivery_policy is DeliveryPolicy.EARLIEST_SAFE_BOUNDARY or any(
            kind == "session_command" for kind, _ in d.items)
        grown[(d.session_id, early)] = grown.get((d.session_id, early), 0) + 1
        rows_of.setdefault(d.session_id, []).append(row)
    for (sid, early), n in grown.items():
        hold.bump_queue(sid, +n, early=early)
    for sid, made_here in rows_of.items():
        hold.indexed(sid, made_here)


def _session_rows(con: Any, sid: str) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = con.execute(
        f"SELECT {rows.BATCH_COLS} FROM queued_work_batches WHERE session_id = ? "
        "ORDER BY enqueue_seq",
        [sid],
    ).fetchall()
    return found


def _claimed(r: Sequence[Any], generation: int | None) -> bool:
    return r[10] is not None and r[11] == generation


PARK_SQL = (
    "UPDATE queued_work_batches SET failed_at_ms = $t, claim_id = NULL, claimed_at_ms = NULL, "
    "error = $error WHERE batch_id = $id"
)


def list_queued(con: Any, hold: Hold, sid: str, include_claimed: bool) -> list[QueuedWorkBatch]:
    if hold.queue_size(con, sid) == 0:
        return []
    gen = live_generation(hold, con, sid, now_ms())
    marks = hold.claims
    overlaid = sid in marks.unwritten or sid in marks.logged
    gone = set(marks.done_ids(sid))  # completed in the log

    def row(r: Sequence[Any]) -> tuple[Sequence[Any], bool]:
        u = marks.of_batch(sid, r[0], gen) if overlaid else None
        if u is not None:
            return deferred.overlay(r, u), True
        for old in marks.logged.get(sid, ()):  # a dead runtime's logged claim: its attempt counts
            if r[0] in old.batch_ids and (r[11] is None or r[11] < old.generation):
                r = deferred.overlay(r, old)
        return r, _claimed(r, gen)

    return rows.decode_listing((row(r) for r in _session_rows(con, sid) if r[0] not in gone),
                               include_claimed)


_READY_SQL = (
    f"SELECT {rows.BATCH_COLS} FROM queued_work_batches WHERE session_id = $sid "
    "AND available_at_ms <= $t AND failed_at_ms IS NULL "
    "AND (claim_id IS NULL OR claim_generation IS DISTINCT FROM $gen) "
    "AND NOT list_contains($marked, batch_id)"
)


# a window of the session's queue index: its rows between two seqs (a few; LIMIT 64, not 1:
# a small LIMIT makes DuckDB materialize late, which costs more than these rows)
_WINDOW_SQL = (
    f"SELECT {rows.BATCH_COLS} FROM queued_work_batches WHERE session_id = $sid "
    "AND enqueue_seq BETWEEN $lo AND $hi ORDER BY enqueue_seq LIMIT 64"
)


def claim(
    con: Any,
    hold: Hold,
    lease: Lease,
    boundary: ClaimBoundary,
    max_batches: int,
    batch_ids: Sequence[str] | None,
    commands: bool,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    in_txn: Callable[[Callable[[Any], QueueClaim | None]], QueueClaim | None] | None = None,
) -> QueueClaim | None:
    """The next claim group of ``lease``'s session, or ``None``. ``in_txn(job)`` runs the
    writes in one transaction (``None``: the caller already opened one)."""
    t = now_ms()
    check_held(hold, con, lease)
    sid = lease.session_id
    if hold.queue_size(con, sid) == 0:
        return None  # nothing queued: no statement at all (the common checkpoint case)
    if (commands or boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT) and \
            hold.early_size(con, sid) == 0:
        return None  # only earliest_safe_boundary work or commands could go, and none is queued
    if deferred.has_stale(hold, sid, lease.fencing):
        def stale(c: Any) -> QueueClaim | None:
            deferred.write(c, hold, sid, lease.fencing, strict=False, other=True)
            deferred.write_stale_logged(c, hold, sid, lease.fencing)
            return None
        (in_txn or (lambda job: job(con)))(stale)
    need_bindable()  # lists, here and in the claim's UPDATE (arrow.py)
    params: dict[str, Any] = {"sid": sid, "t": t, "gen": lease.fencing,
                              "marked": hold.claims.hidden_ids(sid, lease.fencing)}
    if batch_ids is not None:
        sql = _READY_SQL + " AND list_contains($ids, batch_id) ORDER BY enqueue_seq"
        params["ids"] = list(batch_ids)
    else:  # a claim group is a prefix of at most max_batches rows
        sql = _READY_SQL + " ORDER BY enqueue_seq LIMIT $n"
        params["n"] = 1 if commands else max(1, max_batches)

    if boundary is ClaimBoundary.IDLE and batch_ids is None and not commands:
        alone = _head_alone(con, hold, sid, params)
        if alone is not None:  # the head goes alone and nothing behind it can be parked
            chosen = select_claim_prefix(alone, boundary, max_batches)
            if not chosen:
                return None  # a session command heads the queue: no turn work goes first
            c = _claim_of(chosen, lease, boundary)
            deferred.remember(hold, c, t)
            hold.tried(sid, c.batch_ids)
            return c

    def ready() -> list[QueuedWorkBatch]:
        found = con.execute(sql, params).fetchall()
        if batch_ids is None and found and found[0][5] == SlotPolicy.EXCLUSIVE.value and not any(
                attempts_exhausted(int(r[13] or 0), max_attempts) for r in found):
            found = found[:1]  # an exclusive head goes alone: the rows behind it stay undecoded
        return [rows.decode_batch(r) for r in found]

    def choose(found: list[QueuedWorkBatch]) -> list[QueuedWorkBatch]:
        if batch_ids is None:
            return select_claim_prefix(found, boundary, max_batches, commands=commands)
        by_id = {b.batch_id: b for b in found}
        if not all(b in by_id for b in batch_ids):
            return []
        chosen = [by_id[b] for b in batch_ids]
        return chosen if validate_selected_group(chosen, boundary) else []

    first = ready()
    spent_first = any(attempts_exhausted(b.attempts, max_attempts) for b in first)
    if not spent_first:
        chosen = choose(first)
        if not chosen:
            return None  # nothing eligible: no transaction
        if boundary is ClaimBoundary.IDLE:  # a mark now, rows with the next commit
            c = _claim_of(chosen, lease, boundary)
            deferred.remember(hold, c, t)
            hold.tried(sid, c.batch_ids)
            return c

    def write(c: Any) -> QueueClaim | None:
        found = first
        while True:  # claimed that often by runtimes that died: park them, look again
            spent = [b for b in found if attempts_exhausted(b.attempts, max_attempts)]
            if not spent:
                break
            for b in spent:
                c.execute(PARK_SQL, {"t": t, "id": b.batch_id,
                                     "error": failure_text(b.error, b.attempts)})
            hold.drop_early(sid)
            deferred.gone_after_commit(hold, sid, [b.batch_id for b in spent])
            hold.unindexed(sid, [b.batch_id for b in spent])  # failed: never ready again
            found = ready()
        chosen = choose(found)
        if not chosen:
            return None
        made = _claim_of(chosen, lease, boundary)
        hold.tried(sid, made.batch_ids)
        c.execute(
            "UPDATE queued_work_batches SET claim_id = ?, claim_generation = ?, "
            "claimed_at_ms = ?, attempts = attempts + 1 WHERE list_contains(?, batch_id)",
            [made.claim_id, lease.fencing, t, list(made.batch_ids)],
        )
        # the claim's generation is durable with it (the expiry is written at the release)
        hold.write_lease(c, sid, unless_holder_stored=True)
        deferred.known_after_commit(hold, sid, made.claim_id, made.batch_ids)
        return made

    return write(con) if in_txn is None else in_txn(write)


def _head_alone(con: Any, hold: Hold, sid: str,
                params: dict[str, Any]) -> list[QueuedWorkBatch] | None:
    """The session's first ready row, read from a window of its queue index
    (``queue_index.py``), when it is an exclusive head and no row of the session was ever
    claimed (none can have used up its attempts: nothing to park). None: the claim reads the
    first 64 ready rows as before (a join head, rows tried, nothing ready in the window).
    Every row of the session before the window is hidden; the window's rows are read whole
    and checked here as ``_READY_SQL`` checks them (a shorter statement: less to plan)."""
    index = hold.queue_index.get(sid)
    if index is None or index.tried:
        return None
    hidden = set(params["marked"])
    window = index.window(hidden)
    if window is None:
        return None
    found = con.execute(_WINDOW_SQL, {"sid": sid, "lo": window[0], "hi": window[1]}).fetchall()
    t, gen = params["t"], params["gen"]
    head = next((r for r in found if r[7] <= t and r[15] is None
                 and (r[10] is None or r[11] != gen) and r[0] not in hidden), None)
    if head is None or head[5] != SlotPolicy.EXCLUSIVE.value:
        return None
    return [rows.decode_batch(head)]


def _claim_of(chosen: Sequence[QueuedWorkBatch], lease: Lease, boundary: ClaimBoundary) -> QueueClaim:
    claim_id = f"qwc:{chosen[0].enqueue_seq}:{lease.fencing}:{fresh_id()}"
    return QueueClaim(claim_id, lease.session_id, lease.fencing, boundary,
                      tuple(dataclasses.replace(b, attempts=b.attempts + 1) for b in chosen))


def cancel(con: Any, hold: Hold, sid: str, batch_id: str) -> QueuedWorkBatch | None:
    t = now_ms()
    row = rows.first(con.execute(
        f"SELECT {rows.BATCH_COLS} FROM queued_work_batches WHERE batch_id = ? AND session_id = ?",
        [batch_id, sid],
    ))
    gen = live_generation(hold, con, sid, t)
    if row is None or _claimed(row, gen) or hold.claims.of_batch(sid, batch_id, gen) is not None \
            or batch_id in hold.claims.done_ids(sid):
        return None
    finish_batches(con, [batch_id], "cancelled", None, t)
    hold.bump_queue(sid, -1)
    hold.unindexed(sid, [batch_id])
    return rows.decode_batch(row)


def abandon(con: Any, hold: Hold, c: QueueClaim, error: str | None = None,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS, *, count_attempt: bool = True) -> None:
    """Release ``c`` without completing it: its batches are pending again with ``error`` as
    their last error, or parked failed once they used up ``max_attempts`` claims (an
    unwritten claim is written first: its attempt counts). ``count_attempt=False`` hands it
    back: attempts as before the claim, error unchanged, never parked."""
    if any(u.claim_id == c.claim_id for u in hold.claims.unwritten.get(c.session_id, ())):
        deferred.write(con, hold, c.session_id, c.lease_generation, strict=False)
    deferred.gone_after_commit(hold, c.session_id, c.batch_ids)
    released = ("error = coalesce($error, error, CASE WHEN attempts >= $max THEN $why END), "
                "failed_at_ms = CASE WHEN attempts >= $max THEN $t END" if count_attempt
                else "attempts = greatest(attempts - 1, 0)")
    need_bindable()  # a list (arrow.py)
    con.execute(
        f"UPDATE queued_work_batches SET claim_id = NULL, claimed_at_ms = NULL, {released} "
        "WHERE claim_id = $claim AND list_contains($ids, batch_id)",
        {"claim": c.claim_id, "ids": list(c.batch_ids)} if not count_attempt else
        {"error": clip_error(error), "max": max(1, max_attempts), "t": now_ms(),
         "why": failure_text(None, max(1, max_attempts)), "claim": c.claim_id,
         "ids": list(c.batch_ids)},
    )


# a worker's poll: every queued row is read (a column scan; ADR 218 measured it, +0.5-1 ms
# at 100,000 rows, far below a reopen of the file)
POLL_SQL = """
SELECT b.session_id FROM queued_work_batches b
LEFT JOIN execution_leases l ON l.session_id = b.session_id
    AND l.token IS NOT NULL AND l.expires_at_ms > $t
WHERE b.available_at_ms <= $t AND b.failed_at_ms IS NULL
    AND NOT (b.claim_id IS NOT NULL AND b.claim_generation IS NOT DISTINCT FROM l.fencing)
    AND NOT list_contains($marked, b.batch_id)
GROUP BY b.session_id ORDER BY min(b.enqueue_seq)
"""


def sessions_with_ready_work(con: Any, hold: Hold, t: int) -> list[str]:
    """Sessions with a batch ready at ``t`` (ms), oldest first."""
    hold.write_dirty_leases(con)  # the join below reads lease rows from the file
    marks = hold.claims
    need_bindable()  # a list (arrow.py)
    marked = [b for sid in {*marks.unwritten, *marks.logged, *marks.done}
              for b in marks.hidden_ids(sid, live_generation(hold, con, sid, t))]
    return [r[0] for r in con.execute(POLL_SQL, {"t": t, "marked": marked}).fetchall()]
