"""``commit``: one :class:`RuntimeCommit` in one DuckDB transaction.

The checks and their order are those of ``base.py`` (stamp, lease, CAS, claims); the head
they need comes from memory while this process holds the file (``hold.py``), then the rows
go in as one Arrow batch per table. The caller (``run_in_transaction``) rolls everything
back when a check raises, and the in-memory head advances only after COMMIT.
"""

from __future__ import annotations

import time
from typing import Any

from ..._errors import (
    ClaimSuperseded,
    HeadRevisionConflict,
    SessionExecutionLeaseLost,
    TurnCommitConflict,
)
from ..base import CommitResult, Lease, RuntimeCommit, process_lost_record
from . import rows
from .hold import Head, Hold

_TERMINAL_SQL = """
UPDATE turns SET status = 'committed', outcome = $outcome, stop_reason = $stop_reason,
    started_at = epoch_ms($started_at::BIGINT), duration_ms = $duration_ms,
    commit_hash = $commit_hash, result = $result, seq = $seq,
    committed_at = epoch_ms($t::BIGINT)
WHERE session_id = $sid AND turn_id = $tid
"""

_TERMINAL_INSERT_SQL = """
INSERT INTO turns VALUES ($sid, $tid, 'committed', $outcome, $stop_reason,
    epoch_ms($started_at::BIGINT), $duration_ms, $commit_hash, $result, $seq,
    epoch_ms($t::BIGINT))
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def _release_after_commit(con: Any, hold: Hold, lease: Lease) -> None:
    from .leases import release

    hold.lease(con, lease.session_id)  # loaded now: the release runs after COMMIT
    hold.after_commit(lambda: release(hold, con, lease))


def apply_commit(con: Any, hold: Hold, c: RuntimeCommit) -> CommitResult:
    t = now_ms()
    sid = c.session_id
    tid = c.turn.turn_id if c.turn is not None else None
    head = hold.head(con, sid)
    rev, exists = head.rev, head.rev is not None
    prior_hash = head.committed.get(tid) if tid is not None else None
    if c.turn is not None and exists and prior_hash is not None:
        if prior_hash == c.turn.commit_hash:
            if c.release_lease and c.lease is not None:
                _release_after_commit(con, hold, c.lease)
            return CommitResult(int(rev or 0), duplicate=True)
        raise TurnCommitConflict(
            f"turn {c.turn.turn_id!r} of session {sid!r} was already committed with "
            "different content; use a new turn id"
        )
    live = hold.lease(con, sid) if c.lease is not None else None
    if c.lease is not None and not (
        live is not None and live.token == c.lease.token
        and live.fencing == c.lease.fencing and live.expires_at_ms > t
    ):
        raise SessionExecutionLeaseLost(
            f"the execution lease on session {sid!r} expired or was taken over; the turn was "
            "not committed"
        )
    current = rev if rev is not None else 0
    if c.expected_head_revision is not None and c.expected_head_revision != current:
        raise HeadRevisionConflict(
            f"session {sid!r} head moved to {current} (expected {c.expected_head_revision}); "
            "reopen the session and retry"
        )
    claimed_ids = [b for claim in c.completed_claims for b in claim.batch_ids]
    if claimed_ids:
        held = dict(con.execute(
            "SELECT batch_id, claim_id FROM queued_work_batches WHERE list_contains(?, batch_id)",
            [claimed_ids],
        ).fetchall())
        for claim in c.completed_claims:
            for bid in claim.batch_ids:
                if held.get(bid) != claim.claim_id:
                    raise ClaimSuperseded(
                        f"queued batch {bid!r} is no longer held by claim {claim.claim_id!r}"
                    )
    # ---- apply (checks are done; an error below rolls the whole transaction back)
    seq, written = _write_graph(con, c, head.next_seq, head.nodes)
    if c.usage_deltas:
        rows.insert(con, "usage_deltas", rows.usage_columns(sid, seq, t, c.usage_deltas))
        seq += len(c.usage_deltas)
    if c.llm_calls:
        cols = rows.llm_call_columns(sid, seq, c.llm_calls)
        if cols["seq"]:
            rows.insert(con, "llm_calls", cols)
            seq += len(cols["seq"])
    if c.tool_calls:
        rows.insert(con, "tool_calls", rows.tool_call_columns(sid, seq, c.tool_calls))
        seq += len(c.tool_calls)
    if c.events:
        rows.insert(con, "turn_events", rows.event_columns(sid, seq, t, c.events))
        seq += len(c.events)
    seq, opened, closed = _write_turns(con, c, head, seq, t)
    if claimed_ids:
        finish_batches(con, claimed_ids, "completed", tid or (
            c.turn_started.turn_id if c.turn_started else None), t)
        hold.bump_queue(sid, -len(claimed_ids))
    _write_session(con, c, exists, seq, t)
    if c.release_lease and c.lease is not None:
        _release_after_commit(con, hold, c.lease)

    def advance() -> None:
        head.rev, head.next_seq = current + 1, seq
        if c.replace_graph is not None:
            head.nodes = set()
        head.nodes.update(written)
        for turn_id in closed:
            head.open_turns.pop(turn_id, None)
        head.open_turns.update(opened)
        if c.turn is not None:
            head.committed[c.turn.turn_id] = c.turn.commit_hash
        for turn_id in closed:
            head.committed.setdefault(turn_id, "process_lost")

    hold.after_commit(advance)
    return CommitResult(current + 1)


def _write_graph(con: Any, c: RuntimeCommit, seq: int, stored: set[str]) -> tuple[int, list[str]]:
    sid = c.session_id
    nodes = []
    # an appended node already stored (a retried commit) is kept once
    seen = set() if c.replace_graph is not None else stored
    fresh: set[str] = set()
    if c.replace_graph is not None:
        con.execute("DELETE FROM graph_nodes WHERE session_id = ?", [sid])
        for n in c.replace_graph:
            if n.node_id not in fresh:  # a node id is stored once, like the memory store
                fresh.add(n.node_id)
                nodes.append(n)
    for n in c.append_nodes:
        if n.node_id not in seen and n.node_id not in fresh:
            fresh.add(n.node_id)
            nodes.append(n)
    if not nodes:
        return seq, []
    rows.insert(con, "graph_nodes", rows.node_columns(sid, seq, nodes))
    return seq + len(nodes), [n.node_id for n in nodes]


def _write_turns(
    con: Any, c: RuntimeCommit, head: Head, seq: int, t: int
) -> tuple[int, dict[str, int], list[str]]:
    """Returns the next seq, the turns opened and the turns closed by this commit."""
    sid = c.session_id
    keep = c.turn_started.turn_id if c.turn_started else None
    ending = c.turn.turn_id if c.turn is not None else None
    open_ids = set(head.open_turns)
    opened: dict[str, int] = {}
    closed: list[str] = []
    if c.close_open_turns:
        for tid, started in sorted(head.open_turns.items(), key=lambda kv: kv[1]):
            if tid != keep and tid != ending:
                _terminal(con, sid, process_lost_record(tid, started, t), seq, t, update=True)
                open_ids.discard(tid)
                closed.append(tid)
                seq += 1
    if keep is not None and c.turn_started is not None and (c.turn is None or c.turn.turn_id != keep):
        if keep not in open_ids and keep not in head.committed:
            con.execute(
                "INSERT INTO turns (session_id, turn_id, status, started_at, seq) "
                "VALUES (?, ?, 'open', epoch_ms(?::BIGINT), ?)",
                [sid, keep, c.turn_started.started_at_ms, seq],
            )
            opened[keep] = c.turn_started.started_at_ms
            seq += 1
    if c.turn is not None:
        _terminal(con, sid, c.turn, seq, t, update=c.turn.turn_id in open_ids)
        closed.append(c.turn.turn_id)
        seq += 1
    return seq, opened, closed


def _terminal(con: Any, sid: str, turn: Any, seq: int, t: int, *, update: bool) -> None:
    params = {
        "sid": sid, "tid": turn.turn_id, "outcome": turn.outcome,
        "stop_reason": turn.stop_reason, "started_at": turn.started_at_ms,
        "duration_ms": float(turn.duration_ms), "commit_hash": turn.commit_hash,
        "result": rows.dumps(dict(turn.result)), "seq": seq, "t": t,
    }
    con.execute(_TERMINAL_SQL if update else _TERMINAL_INSERT_SQL, params)


def finish_batches(con: Any, batch_ids: list[str], state: str, turn_id: str | None, t: int) -> None:
    con.execute(
        "INSERT INTO queue_history SELECT batch_id, session_id, source_key, delivery_policy, "
        "slot_policy, enqueue_seq, enqueued_at_ms, claimed_at_ms, $t, $state, $tid, "
        "epoch_ms(enqueued_at_ms), epoch_ms($t::BIGINT) FROM queued_work_batches "
        "WHERE list_contains($ids, batch_id)",
        {"t": t, "state": state, "tid": turn_id, "ids": batch_ids},
    )
    con.execute("DELETE FROM queued_work_batches WHERE list_contains(?, batch_id)", [batch_ids])


def _write_session(con: Any, c: RuntimeCommit, exists: bool, next_seq: int, t: int) -> None:
    p = {
        "sid": c.session_id, "provider_id": c.provider_id, "model": c.model,
        "parent": c.parent_session_id,
        "policy": rows.dumps(dict(c.policy)) if c.policy else None,
        "tool_state": rows.dumps(c.tool_state) if c.tool_state is not None else None,
        "turn_index": c.turn_index, "leaf": c.leaf_node_id, "t": t, "next_seq": next_seq,
    }
    if exists:
        con.execute(
            "UPDATE sessions SET provider_id = coalesce(nullif($provider_id, ''), provider_id), "
            "model = coalesce(nullif($model, ''), model), "
            "parent_session_id = coalesce(nullif($parent, ''), parent_session_id), "
            "policy = coalesce($policy::JSON, policy), "
            "tool_state = coalesce($tool_state::JSON, tool_state), turn_index = $turn_index, "
            "leaf_node_id = $leaf, head_revision = head_revision + 1, "
            "updated_at = epoch_ms($t::BIGINT), next_seq = $next_seq WHERE session_id = $sid",
            p,
        )
    else:
        con.execute(
            "INSERT INTO sessions VALUES ($sid, $provider_id, $model, $parent, "
            "coalesce($policy::JSON, '{}'), 1, $leaf, $turn_index, $tool_state::JSON, "
            "epoch_ms($t::BIGINT), epoch_ms($t::BIGINT), $next_seq)",
            p,
        )
