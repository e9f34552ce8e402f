"""``commit``: one :class:`RuntimeCommit`, atomically.

The checks are the one admission rule (``_store/admission.py``: stamp, lease, CAS, claims);
the head they need comes from memory while this process holds the file (``hold.py``). Then the
commit's rows are planned as one delta (``journal.py``) and written as one ``commit_log``
row (a single autocommit INSERT; a drain's claim and completion ride in that row and fold
later, ``claims.py``; in one transaction with the queue rows only for a claim a failed
release carried over), or, when it replaces the graph, straight into the typed tables. Either way the
in-memory head advances only once the write has succeeded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..admission import Admission, LeaseRow, admit, anchors, completed_batch_ids
from ..base import CommitResult, Lease, RuntimeCommit
from . import claims as deferred
from . import journal
from .arrow import need_bindable
from .hold import Hold
from .schema import HISTORY_COLUMNS


def now_ms() -> int:
    return int(time.time() * 1000)


def _release_after_commit(con: Any, hold: Hold, lease: Lease) -> None:
    from .leases import release

    hold.lease(con, lease.session_id)  # loaded now: the release runs after COMMIT
    hold.after_commit(lambda: release(hold, con, lease))


def commit(
    con: Any, hold: Hold, c: RuntimeCommit,
    in_txn: Callable[[Callable[[Any], CommitResult]], CommitResult],
) -> CommitResult:
    """Commit ``c`` as one ``commit_log`` row: alone (one autocommit INSERT), or in one
    transaction with the queue rows of the claims it completes. A commit that replaces the
    graph folds the log first and writes straight into the typed tables. Past the log's
    size bound, the caller folds it (``fold_at_bound``)."""
    if c.replace_graph is not None:
        journal.fold(con, hold)
        return in_txn(lambda cc: _apply(cc, hold, c, direct=True))
    if deferred.due_carried(hold, c):  # claims.py: a carried claim is written, checked
        result = in_txn(lambda cc: _apply(cc, hold, c, direct=False))
    else:
        try:
            result = _apply(con, hold, c, direct=False)
        except BaseException:
            hold.dropped()
            raise
        hold.committed()
    return result


def over_bound(hold: Hold) -> bool:
    """The pending deltas passed the size bound: fold them now (``journal.py``)."""
    return len(hold.pending) >= journal.FOLD_AFTER_DELTAS or hold.pending_rows >= journal.FOLD_AFTER_ROWS


def fold_at_bound(con: Any, hold: Hold) -> None:
    """Fold the log once it passed the size bound (on the store's thread)."""
    if over_bound(hold):
        with contextlib.suppress(Exception):  # the commit is durable in the log; the next fold retries
            journal.fold(con, hold)


def _apply(con: Any, hold: Hold, c: RuntimeCommit, *, direct: bool) -> CommitResult:
    t = now_ms()
    sid = c.session_id
    tid = c.turn.turn_id if c.turn is not None else None
    head = hold.head(con, sid)
    rev = head.rev
    claimed_ids = completed_batch_ids(c) if c.completed_claims else []
    held = deferred.held(con, hold, sid, claimed_ids) if claimed_ids else {}
    live = hold.lease(con, sid) if c.lease is not None else None
    verdict = admit(
        c, revision=rev, prior_hash=head.committed.get(tid) if tid is not None else None,
        lease=None if live is None else LeaseRow(live.token, live.fencing, live.expires_at_ms),
        now_ms=t, held_claims=held,
        started_committed=c.turn_started is not None and c.turn_started.turn_id in head.committed,
        missing_anchors=rev is not None and not head.nodes.issuperset(anchors(c, head.leaf)),
    )
    if verdict is Admission.DUPLICATE:
        if c.release_lease and c.lease is not None:
            _release_after_commit(con, hold, c.lease)
        return CommitResult(int(rev or 0), duplicate=True)
    current = rev if rev is not None else 0
    # ---- write (checks are done; an error below leaves nothing behind)
    wrote = head.logged_tools if head.logged_tools and head.logged_tools[0] == rev else None
    delta = journal.plan(
        c, exists=rev is not None, rev=current + 1, next_seq=head.next_seq,
        stored_nodes=head.nodes, open_turns=head.open_turns, committed=head.committed, t=t,
        tools_unchanged=wrote is not None and c.tool_state is wrote[1],
    )
    tools_now = c.tool_state if c.tool_state is not None else (wrote[1] if wrote else None)
    done_tid = tid or (c.turn_started.turn_id if c.turn_started else None)
    # a drain's claim rides with its turn's first commit, its completion with the last: in
    # the log row (folded later, claims.py), or written here when the commit is not logged
    logged = not direct and not deferred.due_carried(hold, c)
    if deferred.due(hold, c):
        if logged:
            delta.queue["claims"] = deferred.log_due(hold, c)
        else:
            deferred.write(con, hold, sid, c.lease.fencing if c.lease else None)
    if claimed_ids and logged:
        delta.queue["done"] = deferred.log_done(hold, sid, claimed_ids, done_tid, t)
    if direct:
        journal.write(con, [delta])
    else:
        con.execute(*journal.log_statement(sid, delta.head_revision, t, delta.body()))
        hold.after_commit(lambda: hold.pending.append(delta))
    if claimed_ids:
        if not logged:
            finish_batches(con, claimed_ids, "completed", done_tid, t)
        hold.bump_queue(sid, -len(claimed_ids), early_left=deferred.early_count(c.completed_claims))
        deferred.gone_after_commit(hold, sid, claimed_ids)
        hold.unindexed(sid, claimed_ids)
    if c.release_lease and c.lease is not None:
        _release_after_commit(con, hold, c.lease)

    def advance() -> None:
        head.rev, head.next_seq, head.leaf = delta.head_revision, delta.next_seq, c.leaf_node_id
        head.logged_tools = (delta.head_revision, tools_now) if tools_now is not None else None
        if c.replace_graph is not None:
            head.nodes = set()
        head.nodes.update(delta.nodes)
        for turn_id in delta.closed:
            head.open_turns.pop(turn_id, None)
        head.open_turns.update(delta.opened)
        if c.turn is not None:
            head.committed[c.turn.turn_id] = c.turn.commit_hash
        for turn_id in delta.closed:
            head.committed.setdefault(turn_id, "process_lost")

    hold.after_commit(advance)
    return CommitResult(delta.head_revision)


def finish_batches(con: Any, batch_ids: list[str], state: str, turn_id: str | None, t: int) -> None:
    need_bindable()  # a list (arrow.py)
    con.execute(
        f"INSERT INTO queue_history ({HISTORY_COLUMNS}) "
        "SELECT batch_id, session_id, source_key, delivery_policy, slot_policy, enqueue_seq, "
        "enqueued_at_ms, claimed_at_ms, $t, $state, $tid, "
        "epoch_ms(enqueued_at_ms), epoch_ms($t::BIGINT), attempts FROM queued_work_batches "
        "WHERE list_contains($ids, batch_id)",
        {"t": t, "state": state, "tid": turn_id, "ids": batch_ids},
    )
    con.execute("DELETE FROM queued_work_batches WHERE list_contains(?, batch_id)", [batch_ids])
