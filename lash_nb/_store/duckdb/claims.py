"""Drain claims this hold keeps in memory until the turn's first commit (ADR 0084).

Theory of operation
- While this process holds the DuckDB file nobody else can read or write it, and a claim
  is only made under the session's live lease, so a claim is exclusive as soon as this hold
  remembers it. An ``IDLE`` claim (a drain's turn work, a session command) is therefore kept
  *unwritten*: its rows (claim id, lease generation, ``claimed_at_ms``, ``attempts + 1``)
  are written inside the next transaction of its session under that lease (for a drain,
  the turn's progress commit, before any model call; for a command, the commit that
  completes it), or at the latest by ``Hold.flush`` (a release or hand-over, a user query,
  a vacuum). A drain then costs the commits of a plain turn. A process killed before that
  commit leaves the batch as it was: pending, no attempt counted, nothing of its turn
  written.
- The lease row is not written with the claim (it is written at the release, as for any
  turn). A new hold loads a session's lease with its fencing raised past every claim
  generation in the file (``hold.py``), so the lease taken after a crash never reuses the
  generation of a claim left behind: that claim reads as stale, and its batch as pending.
- Checkpoint claims (input joining a running turn) are written at once: the model sees
  that input before the turn's next commit, so its attempt must already count.
- Readers of this hold see unwritten claims as written: listings show them claimed, claim
  selection and ``sessions_with_ready_work`` skip their rows, a cancel refuses them.
- ``known`` maps each batch claimed in this hold to the claim id the file has (or will
  have) for it. Every writer of claim ids in this hold updates it after COMMIT, so the
  completing commit checks its claims there instead of reading their rows; a new hold starts
  empty and reads them.
- A drain's claim and its completion are **logged, not written** (ADR 0106): the turn's
  progress commit carries the claim in its ``commit_log`` row (``queue`` part of the delta)
  and the final commit carries the completion (the batch ids, the turn, the time), each
  one autocommit INSERT, as a plain turn's. The fold (``journal.py``: idle, release, before
  every read of the typed tables) and ``recover`` after a crash write them into
  ``queued_work_batches`` / ``queue_history`` in the log's order; both writes are
  idempotent (the claim update is guarded by generation, the completion reads the rows it
  deletes), so a queue part written early (``apply_done``) and folded again changes nothing.
  Until the fold, this hold overlays them (``logged``, ``done``): a logged claim reads as an
  unwritten one, a logged completion as a row already gone. A crash after the progress
  commit leaves the claim in the log: the next open folds it (the attempt counts, as a
  written claim's did) and raises the next lease's fencing past it, so the batch reads as
  pending and runs again; after the final commit the completion is folded: it ran once.
- Writing is guarded: only rows still pending take the claim. Fewer rows than the claim's
  raise ``ClaimSuperseded`` (the transaction rolls back: the turn fails before its model
  call and the drain abandons the claim). Only claims carried over a failed release can
  meet that (``carry``): a hold's own unwritten rows cannot change under it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..._core.queue import DeliveryPolicy, QueueClaim, QueuedWorkBatch
from ..._errors import ClaimSuperseded
from ..base import RuntimeCommit
from .arrow import need_bindable
from .schema import HISTORY_COLUMNS

if TYPE_CHECKING:
    from .hold import Hold

_WRITE_SQL = (
    "UPDATE queued_work_batches SET claim_id = $claim, claim_generation = $gen, "
    "claimed_at_ms = $t, attempts = attempts + 1 WHERE list_contains($ids, batch_id) "
    "AND failed_at_ms IS NULL AND (claim_id IS NULL OR coalesce(claim_generation, -1) < $gen)"
)


@dataclasses.dataclass(frozen=True)
class Unwritten:
    claim_id: str
    session_id: str
    generation: int
    claimed_at_ms: int
    batch_ids: tuple[str, ...]
    carried: bool = False  # left by a failed release: written guarded, in a transaction


@dataclasses.dataclass(frozen=True)
class Done:
    """A completion logged in ``commit_log``: its rows are still in ``queued_work_batches``."""

    batch_ids: tuple[str, ...]
    turn_id: str | None
    t: int
    claims: tuple[Unwritten, ...] = ()  # logged claims of these rows (``apply_done`` writes them first)


class DeferredClaims:
    """What one hold knows of the claims it made (see the module docstring)."""

    def __init__(self) -> None:
        self.unwritten: dict[str, list[Unwritten]] = {}  # session -> claims not in the file
        self.known: dict[str, dict[str, str]] = {}  # session -> batch id -> claim id
        self.logged: dict[str, list[Unwritten]] = {}  # claims in commit_log, not in the table
        self.done: dict[str, list[Done]] = {}  # completions in commit_log, rows still there

    def remember(self, u: Unwritten) -> None:
        """``u`` supersedes unwritten claims of an older generation on its batches (their
        rows were claimable again: that generation is not live)."""
        mine = set(u.batch_ids)
        kept = [o for o in self.unwritten.get(u.session_id, []) if not mine & set(o.batch_ids)]
        self.unwritten[u.session_id] = [*kept, u]
        self.known.setdefault(u.session_id, {}).update(dict.fromkeys(u.batch_ids, u.claim_id))

    def live_ids(self, sid: str, generation: int | None) -> list[str]:
        """Batch ids of ``sid``'s unwritten claims of ``generation`` (the live one: only
        those hold their batches, as a written claim does)."""
        return [b for u in (*self.unwritten.get(sid, ()), *self.logged.get(sid, ()))
                if u.generation == generation for b in u.batch_ids]

    def hidden_ids(self, sid: str, generation: int | None) -> list[str]:
        """Rows of ``sid`` a claim must skip: held by a live claim the table does not show
        yet, or completed in the log."""
        return [*self.live_ids(sid, generation), *self.done_ids(sid)]

    def done_ids(self, sid: str) -> list[str]:
        return [b for d in self.done.get(sid, ()) for b in d.batch_ids]

    def of_batch(self, sid: str, batch_id: str, generation: int | None) -> Unwritten | None:
        return next((u for u in (*self.unwritten.get(sid, ()), *self.logged.get(sid, ()))
                     if batch_id in u.batch_ids and u.generation == generation), None)

    def folded(self, parts: Sequence[Mapping[str, Any]] | None = None) -> None:
        """After a fold's COMMIT: the logged queue ``parts`` (``Delta.queue``; default:
        every one) are in the tables, no longer overlaid."""
        if parts is None:
            self.logged.clear()
            self.done.clear()
            return
        claim_ids = {c[0] for p in parts for c in p.get("claims", ())}
        done = {(tuple(d["ids"]), d["turn"], d["t"]) for p in parts if (d := p.get("done"))}
        for sid in list(self.logged):
            _keep(self.logged, sid, [u for u in self.logged[sid] if u.claim_id not in claim_ids])
        for sid in list(self.done):
            _keep(self.done, sid, [d for d in self.done[sid]
                                   if (d.batch_ids, d.turn_id, d.t) not in done])

    def forget(self, sid: str) -> None:
        self.unwritten.pop(sid, None)
        self.known.pop(sid, None)
        self.logged.pop(sid, None)
        self.done.pop(sid, None)

    def carry(self) -> list[Unwritten]:
        """Claims a failed release could not write, for the next hold (``adopt``)."""
        return [u for claims in self.unwritten.values() for u in claims]

    def adopt(self, carried: Sequence[Unwritten], leases: Mapping[str, Any]) -> None:
        """Keep the carried claims whose lease generation the new hold adopted (nobody took
        the session meanwhile, so nobody claimed their rows); they are written guarded."""
        for u in carried:
            row = leases.get(u.session_id)
            if row is not None and row.token is not None and row.fencing == u.generation:
                self.remember(dataclasses.replace(u, carried=True))


def _keep(by_session: dict[str, list[Any]], sid: str, keep: Sequence[Any]) -> None:
    """``sid``'s list in ``by_session`` becomes ``keep`` (dropped when empty)."""
    if keep:
        by_session[sid] = list(keep)
    else:
        by_session.pop(sid, None)


def _write_one(con: Any, u: Unwritten) -> Any:
    need_bindable()  # a list (arrow.py)
    return con.execute(_WRITE_SQL, {"claim": u.claim_id, "gen": u.generation,
                                    "t": u.claimed_at_ms, "ids": list(u.batch_ids)})


def remember(hold: Hold, c: QueueClaim, claimed_at_ms: int) -> None:
    hold.claims.remember(Unwritten(c.claim_id, c.session_id, c.lease_generation, claimed_at_ms,
                                   c.batch_ids))


def known_after_commit(hold: Hold, sid: str, claim_id: str, batch_ids: Sequence[str]) -> None:
    """A claim written in the current transaction: known once it committed."""
    hold.after_commit(lambda: hold.claims.known.setdefault(sid, {}).update(
        dict.fromkeys(batch_ids, claim_id)))


def gone_after_commit(hold: Hold, sid: str, batch_ids: Sequence[str]) -> None:
    """Rows completed, cancelled, abandoned or parked in the current transaction."""
    def drop() -> None:
        known = hold.claims.known.get(sid, {})
        for b in batch_ids:
            known.pop(b, None)
    hold.after_commit(drop)


def due(hold: Hold, c: RuntimeCommit) -> bool:
    """``c`` carries unwritten claims: its session has some under ``c``'s lease."""
    unwritten = hold.claims.unwritten.get(c.session_id)  # none: the common case, no scan
    if not unwritten or c.lease is None:
        return False
    return any(u.generation == c.lease.fencing for u in unwritten)


def due_carried(hold: Hold, c: RuntimeCommit) -> bool:
    """``c`` carries a claim a failed release left: it is written in a transaction, checked
    (``write``), not logged."""
    unwritten = hold.claims.unwritten.get(c.session_id)
    if not unwritten or c.lease is None:
        return False
    return any(u.generation == c.lease.fencing and u.carried for u in unwritten)


def log_due(hold: Hold, c: RuntimeCommit) -> list[list[Any]]:
    """The due claims of ``c`` as its log row carries them (``queue.claims``); once that row
    committed they are logged, no longer unwritten."""
    sid, gen = c.session_id, c.lease.fencing if c.lease else None
    claims = [u for u in hold.claims.unwritten.get(sid, []) if u.generation == gen]

    def logged() -> None:
        _keep(hold.claims.unwritten, sid, [u for u in hold.claims.unwritten.get(sid, [])
                                           if u not in claims])
        hold.claims.logged.setdefault(sid, []).extend(claims)
    hold.after_commit(logged)
    return [[u.claim_id, u.generation, u.claimed_at_ms, list(u.batch_ids)] for u in claims]


def log_done(hold: Hold, sid: str, batch_ids: Sequence[str], turn_id: str | None,
             t: int) -> dict[str, Any]:
    """A completion as the log row carries it (``queue.done``); overlaid once committed."""
    def overlay_done() -> None:
        marks = hold.claims
        mine = set(batch_ids)  # a logged claim of rows gone is nothing to overlay
        logged = marks.logged.get(sid, [])
        touched = tuple(u for u in logged if mine.intersection(u.batch_ids))
        marks.done.setdefault(sid, []).append(Done(tuple(batch_ids), turn_id, t, touched))
        _keep(marks.logged, sid, [u for u in logged if not mine.issuperset(u.batch_ids)])
    hold.after_commit(overlay_done)
    return {"ids": list(batch_ids), "turn": turn_id, "t": t}


_WRITE_MANY_SQL = (
    "UPDATE queued_work_batches q SET claim_id = c.claim, claim_generation = c.gen, "
    "claimed_at_ms = c.t, attempts = q.attempts + 1 FROM (SELECT unnest($ids::VARCHAR[]) AS id, "
    "unnest($claims::VARCHAR[]) AS claim, unnest($gens::BIGINT[]) AS gen, "
    "unnest($ts::BIGINT[]) AS t) c WHERE q.batch_id = c.id AND q.failed_at_ms IS NULL "
    "AND (q.claim_id IS NULL OR coalesce(q.claim_generation, -1) < c.gen)"
)
_FINISH_MANY_SQL = (
    f"INSERT INTO queue_history ({HISTORY_COLUMNS}) "
    "SELECT b.batch_id, b.session_id, source_key, delivery_policy, slot_policy, enqueue_seq, "
    "enqueued_at_ms, claimed_at_ms, d.t, 'completed', d.tid, "
    "epoch_ms(enqueued_at_ms), epoch_ms(d.t), attempts FROM queued_work_batches b JOIN "
    "(SELECT unnest($ids::VARCHAR[]) AS id, unnest($tids::VARCHAR[]) AS tid, "
    "unnest($ts::BIGINT[]) AS t) d ON b.batch_id = d.id"
)


def apply_logged(con: Any, parts: Sequence[Mapping[str, Any]]) -> None:
    """Write the logged queue parts of deltas, in log order, into the tables (fold and
    recover; idempotent): every claim, then every completion (a batch is claimed before it
    completes and never after), each as one statement."""
    claims = [c for p in parts for c in p.get("claims", ())]
    ids = [b for c in claims for b in c[3]]
    if len(ids) != len(set(ids)):  # a batch claimed twice (a dead runtime's claim, then
        for claim_id, gen, t, batch_ids in claims:  # the next): one claim after the other
            con.execute(_WRITE_SQL, {"claim": claim_id, "gen": gen, "t": t, "ids": batch_ids})
    elif ids:
        con.execute(_WRITE_MANY_SQL, {
            "ids": ids, "claims": [c[0] for c in claims for _ in c[3]],
            "gens": [c[1] for c in claims for _ in c[3]], "ts": [c[2] for c in claims for _ in c[3]]})
    done = [p["done"] for p in parts if p.get("done")]
    if done:
        gone = [b for d in done for b in d["ids"]]
        con.execute(_FINISH_MANY_SQL, {
            "ids": gone, "tids": [d["turn"] for d in done for _ in d["ids"]],
            "ts": [d["t"] for d in done for _ in d["ids"]]})
        con.execute("DELETE FROM queued_work_batches WHERE list_contains(?, batch_id)", [gone])


def apply_done(con: Any, hold: Hold, sid: str) -> None:
    """Write ``sid``'s logged completions now, in the caller's transaction (an enqueue that
    reuses a completed batch's source key needs its row gone); the fold repeats them
    harmlessly."""
    from .commit import finish_batches

    done = hold.claims.done.get(sid, [])
    for d in done:
        for u in d.claims:  # the attempt and claim time the history row reads
            _write_one(con, u)
        finish_batches(con, list(d.batch_ids), "completed", d.turn_id, d.t)
    hold.after_commit(lambda: _keep(hold.claims.done, sid, [
        d for d in hold.claims.done.get(sid, []) if d not in done]))


def write(con: Any, hold: Hold, sid: str, generation: int | None = None,
          *, strict: bool = True, other: bool = False) -> None:
    """Write ``sid``'s unwritten claims (those of ``generation`` when given; ``other``: those
    of any other generation) and the lease row naming their generation, in the caller's
    transaction."""
    claims = [u for u in hold.claims.unwritten.get(sid, [])
              if generation is None or (u.generation == generation) != other]
    if not claims:
        return
    for u in claims:
        row = _write_one(con, u).fetchone()
        if strict and (row is None or int(row[0]) != len(u.batch_ids)):
            raise ClaimSuperseded(
                f"queued batches {list(u.batch_ids)!r} changed before claim {u.claim_id!r} was "
                "written; the drain gives them back: run it again")

    hold.after_commit(lambda: _keep(hold.claims.unwritten, sid, [
        u for u in hold.claims.unwritten.get(sid, []) if u not in claims]))


def has_stale(hold: Hold, sid: str, generation: int) -> bool:
    """``sid`` has unwritten (or logged) claims of a generation that is not ``generation``:
    a runtime of this process lost its lease without completing them. They are written
    (each counts its attempt, as a written claim of a dead runtime does) before the next
    claim reads."""
    return any(u.generation != generation for u in
               (*hold.claims.unwritten.get(sid, ()), *hold.claims.logged.get(sid, ())))


def write_stale_logged(con: Any, hold: Hold, sid: str, generation: int) -> None:
    """Write ``sid``'s logged claims of a generation other than ``generation`` into the
    table now (the fold repeats them harmlessly: the update is guarded by generation)."""
    stale = [u for u in hold.claims.logged.get(sid, []) if u.generation != generation]
    for u in stale:
        _write_one(con, u)
    hold.after_commit(lambda: _keep(hold.claims.logged, sid, [
        u for u in hold.claims.logged.get(sid, []) if u not in stale]))


def write_all(con: Any, hold: Hold) -> None:
    """Every unwritten claim (``Hold.flush``): nothing can have changed their rows."""
    for sid in sorted(hold.claims.unwritten):
        write(con, hold, sid, strict=False)


def held(con: Any, hold: Hold, sid: str, batch_ids: list[str]) -> dict[str, str | None]:
    """The claim id holding each of ``batch_ids`` now: from memory when this hold claimed
    them all, else read."""
    known = hold.claims.known.get(sid, {})
    if all(b in known for b in batch_ids):
        return {b: known[b] for b in batch_ids}
    need_bindable()  # a list (arrow.py)
    found: dict[str, str | None] = dict(con.execute(
        "SELECT batch_id, claim_id FROM queued_work_batches WHERE list_contains(?, batch_id)",
        [batch_ids],
    ).fetchall())
    for u in hold.claims.logged.get(sid, ()):  # the table does not show them yet
        found.update((b, u.claim_id) for b in u.batch_ids if b in found)
    for b in hold.claims.done_ids(sid):  # completed in the log: gone
        found.pop(b, None)
    return found


def overlay(r: Sequence[Any], u: Unwritten) -> tuple[Any, ...]:
    """A ``BATCH_COLS`` row as it reads once ``u`` is written."""
    out = list(r)
    out[10:14] = [u.claim_id, u.generation, u.claimed_at_ms, int(r[13]) + 1]
    return tuple(out)


def is_early(b: QueuedWorkBatch) -> bool:
    """Counted in ``Hold.early_sizes``: claimable at a checkpoint, or a session command."""
    return b.delivery_policy is DeliveryPolicy.EARLIEST_SAFE_BOUNDARY or any(
        i.kind == "session_command" for i in b.items)


def early_count(claims: Sequence[QueueClaim]) -> int:
    return sum(1 for c in claims for b in c.batches if is_early(b))
