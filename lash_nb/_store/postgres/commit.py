"""``commit``: one :class:`RuntimeCommit` in one PostgreSQL transaction.

The checks are the one admission rule (``_store/admission.py``: stamp, lease, CAS, claims),
on rows locked for the transaction: the ``sessions`` row and the lease row ``FOR UPDATE``, the completed batches
``FOR UPDATE``. Then each table's rows go in as one ``INSERT ... SELECT FROM unnest(...)``
(arrays as parameters: one statement per table, never one per row). Any error rolls the
whole transaction back, so a store never holds part of a commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..._errors import HeadRevisionConflict
from ..admission import Admission, LeaseRow, admit, anchors, completed_batch_ids
from ..base import CommitResult, RuntimeCommit, TurnRecord, process_lost_record
from ..duckdb import rows
from .leases import RELEASE_SQL
from .queued_work import FINISH_SQL

_BUCKETS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
            "cache_write_input_tokens", "reasoning_output_tokens")
# column -> element type of the array parameter; "ts" columns arrive as epoch ms
_INSERTS: dict[str, tuple[tuple[str, str], ...]] = {
    "graph_nodes": (("session_id", "text"), ("seq", "int8"), ("node_id", "text"),
                    ("parent_node_id", "text"), ("kind", "text"), ("role", "text"),
                    ("content", "jsonb"), ("created_at", "ts"), ("turn_id", "text")),
    "usage_deltas": (("session_id", "text"), ("turn_id", "text"), ("seq", "int8"),
                     ("source", "text"), ("model", "text"),
                     *((b, "int8") for b in _BUCKETS), ("created_at", "ts"),
                     ("estimated", "bool")),
    "llm_calls": (("session_id", "text"), ("turn_id", "text"), ("call_id", "text"),
                  ("model", "text"), ("protocol_iteration", "int8"), ("attempt", "int8"),
                  ("started_at", "ts"), ("duration_ms", "float8"), ("outcome", "text"),
                  ("request_id", "text"), ("served_model", "text"), ("error", "text"),
                  ("error_kind", "text"), *((b, "int8") for b in _BUCKETS), ("seq", "int8"),
                  ("estimated", "bool")),
    "tool_calls": (("session_id", "text"), ("turn_id", "text"), ("call_id", "text"),
                   ("name", "text"), ("args", "jsonb"), ("output", "jsonb"),
                   ("success", "bool"), ("duration_ms", "float8"), ("started_at", "ts"),
                   ("interrupted", "bool"), ("seq", "int8"), ("printed", "text")),
    "turn_events": (("session_id", "text"), ("turn_id", "text"), ("seq", "int8"),
                    ("activity_id", "text"), ("correlation_id", "text"), ("type", "text"),
                    ("payload", "jsonb"), ("created_at", "ts")),
}


def _insert_sql(table: str) -> str:
    cols = _INSERTS[table]
    params = ", ".join(
        "%s::int8[]" if t == "ts" else "%s::text[]" if t == "jsonb" else f"%s::{t}[]"
        for _, t in cols)
    exprs = ", ".join(
        f"epoch_ms(c{i})" if t == "ts" else f"c{i}::jsonb" if t == "jsonb" else f"c{i}"
        for i, (_, t) in enumerate(cols))
    names = ", ".join(c for c, _ in cols)
    aliases = ", ".join(f"c{i}" for i in range(len(cols)))
    return f"INSERT INTO {table} ({names}) SELECT {exprs} FROM unnest({params}) AS u({aliases})"


_SQL = {table: _insert_sql(table) for table in _INSERTS}


async def insert(con: Any, table: str, columns: Mapping[str, Sequence[Any]]) -> int:
    cols = _INSERTS[table]
    n = len(columns[cols[0][0]])
    if n:
        await con.execute(_SQL[table], [list(columns[c]) for c, _ in cols])
    return n


@dataclasses.dataclass
class _Head:
    rev: int | None
    next_seq: int
    t: int
    lease: tuple[str | None, int, int] | None  # token, fencing, expires_at_ms
    open_turns: list[tuple[int, str, int]]  # seq, turn id, started_at_ms
    committed: dict[str, str]  # turn id -> commit hash
    stored_nodes: set[str]
    missing_anchors: bool = False


async def _read_head(con: Any, c: RuntimeCommit) -> _Head:
    sid = c.session_id
    cur = await con.execute(
        "SELECT head_revision, next_seq, lash_now_ms(), leaf_node_id FROM sessions "
        "WHERE session_id = %s FOR UPDATE", [sid])
    srow = await cur.fetchone()
    if srow is None:
        cur = await con.execute("SELECT NULL, 1, lash_now_ms(), NULL")
        srow = await cur.fetchone()
    lease = None
    if c.lease is not None or c.release_lease:
        cur = await con.execute(
            "SELECT token, fencing, expires_at_ms FROM execution_leases WHERE session_id = %s "
            "FOR UPDATE", [sid])
        lrow = await cur.fetchone()
        lease = (lrow[0], int(lrow[1]), int(lrow[2])) if lrow else None
    head = _Head(None if srow[0] is None else int(srow[0]), int(srow[1]), int(srow[2]),
                 lease, [], {}, set())
    tids = [x.turn_id for x in (c.turn, c.turn_started) if x is not None]
    if tids or c.close_open_turns:
        cur = await con.execute(
            "SELECT seq, epoch_ms(started_at), turn_id, status, commit_hash FROM turns "
            "WHERE session_id = %s AND (status = 'open' OR turn_id = ANY(%s)) ORDER BY seq",
            [sid, tids])
        for seq, started, tid, status, chash in await cur.fetchall():
            if status == "open":
                head.open_turns.append((int(seq), tid, int(started)))
            else:
                head.committed[tid] = chash or ""
    # the appended nodes already stored (a retried commit), and the nodes the commit hangs
    # from (admission ``anchors``), in the one query
    hung = anchors(c, srow[3]) if head.rev is not None else []
    if (c.append_nodes or hung) and c.replace_graph is None:
        cur = await con.execute(
            "SELECT node_id FROM graph_nodes WHERE session_id = %s AND node_id = ANY(%s)",
            [sid, [n.node_id for n in c.append_nodes] + hung])
        head.stored_nodes = {r[0] for r in await cur.fetchall()}
    head.missing_anchors = not head.stored_nodes.issuperset(hung)
    return head


WROTE_TOOLS_MAX = 256


async def apply_again(con: Any, c: RuntimeCommit,
                      wrote_tools: dict[str, tuple[int, Any]] | None = None) -> CommitResult:
    """``c`` again, on a new connection, after the connection died under ``apply_commit``:
    its COMMIT may have reached the server with only the answer lost (docs/adr/0170). A
    commit found stored is answered with the stored head (``duplicate``) and not written
    twice: a turn's terminal commit by its commit hash (admission's DUPLICATE), any other by
    its appended nodes (fresh ids) or, with none, its started turn's row. Else it is
    applied now, under the same checks (the head revision CAS among them)."""
    if c.turn is None and await _stored_already(con, c):
        if wrote_tools is not None:
            wrote_tools.pop(c.session_id, None)  # not known what it holds: write it whole next
        cur = await con.execute("SELECT head_revision FROM sessions WHERE session_id = %s",
                                [c.session_id])
        row = await cur.fetchone()
        return CommitResult(int(row[0]) if row else 0, duplicate=True)
    return await apply_commit(con, c, wrote_tools)


async def _stored_already(con: Any, c: RuntimeCommit) -> bool:
    sid = c.session_id
    if c.append_nodes:
        ids = list({n.node_id for n in c.append_nodes})
        cur = await con.execute(
            "SELECT count(*) FROM graph_nodes WHERE session_id = %s AND node_id = ANY(%s)",
            [sid, ids])
        row = await cur.fetchone()
        return int(row[0]) == len(ids)
    if c.turn_started is not None:
        cur = await con.execute("SELECT 1 FROM turns WHERE session_id = %s AND turn_id = %s",
                                [sid, c.turn_started.turn_id])
        return await cur.fetchone() is not None
    return False


async def apply_commit(con: Any, c: RuntimeCommit,
                       wrote_tools: dict[str, tuple[int, Any]] | None = None) -> CommitResult:
    """Commit ``c`` in one transaction. ``wrote_tools``: session id -> (revision, tool state)
    this store wrote, kept here: a commit on that very revision with that very tool state
    object (``ToolRegistry.shared_state_json``) leaves the stored one as it is (ADR 164)."""
    known: list[tuple[int, Any]] = []
    async with con.transaction():
        result = await _apply(con, c, (wrote_tools or {}).get(c.session_id), known)
    if wrote_tools is not None and not result.duplicate:
        # committed: the map is only a saving, and a store shared by threads may change it
        # meanwhile; whatever goes wrong here writes the state whole next time
        with contextlib.suppress(Exception):
            wrote_tools.pop(c.session_id, None)
            if known:
                wrote_tools[c.session_id] = known[0]
                if len(wrote_tools) > WROTE_TOOLS_MAX:  # a worker's many sessions: oldest go
                    del wrote_tools[next(iter(wrote_tools))]
    return result


async def _apply(con: Any, c: RuntimeCommit, wrote: tuple[int, Any] | None = None,
                 known: list[tuple[int, Any]] | None = None) -> CommitResult:
    sid = c.session_id
    head = await _read_head(con, c)
    if wrote is not None and wrote[0] != head.rev:  # another process committed since
        wrote = None
    t, exists = head.t, head.rev is not None
    current = head.rev or 0
    tid = c.turn.turn_id if c.turn is not None else None
    claimed = completed_batch_ids(c)
    held: dict[str, str | None] = {}
    if claimed:
        cur = await con.execute(
            "SELECT batch_id, claim_id FROM queued_work_batches WHERE batch_id = ANY(%s) "
            "ORDER BY enqueue_seq FOR UPDATE", [claimed])
        held = dict(await cur.fetchall())
    verdict = admit(
        c, revision=head.rev, prior_hash=head.committed.get(tid) if tid is not None else None,
        lease=None if head.lease is None else LeaseRow(*head.lease), now_ms=t, held_claims=held,
        started_committed=c.turn_started is not None and c.turn_started.turn_id in head.committed,
        missing_anchors=head.missing_anchors,
    )
    if verdict is Admission.DUPLICATE:
        if c.release_lease and c.lease is not None:
            await con.execute(RELEASE_SQL, [sid, c.lease.token, c.lease.fencing])
        return CommitResult(current, duplicate=True)
    # ---- apply (checks done; an error below rolls the whole transaction back)
    seq = await _write_graph(con, c, head.next_seq, head.stored_nodes)
    seq += await insert(con, "usage_deltas", rows.usage_columns(sid, seq, t, c.usage_deltas))
    seq += await insert(con, "llm_calls", rows.llm_call_columns(sid, seq, c.llm_calls))
    seq += await insert(con, "tool_calls", rows.tool_call_columns(sid, seq, c.tool_calls))
    seq += await insert(con, "turn_events", rows.event_columns(sid, seq, t, c.events))
    seq = await _write_turns(con, c, head, seq, t)
    if claimed:
        done_by = tid or (c.turn_started.turn_id if c.turn_started else None)
        await con.execute(FINISH_SQL, {"t": t, "state": "completed", "tid": done_by,
                                       "ids": claimed, "sid": sid})
    if tid is not None:
        await con.execute("DELETE FROM turn_cancel_requests WHERE session_id = %s AND turn_id = %s",
                          [sid, tid])
    same_tools = wrote is not None and c.tool_state is wrote[1]
    await _write_session(con, c, exists, seq, t, tools_unchanged=same_tools)
    if c.release_lease and c.lease is not None:
        await con.execute(RELEASE_SQL, [sid, c.lease.token, c.lease.fencing])
    tools_now = c.tool_state if c.tool_state is not None else (wrote[1] if wrote else None)
    if known is not None and tools_now is not None:
        known.append((current + 1, tools_now))
    return CommitResult(current + 1)


async def _write_graph(con: Any, c: RuntimeCommit, seq: int, stored: set[str]) -> int:
    nodes = []
    seen = set(stored)  # a node already stored (a retried commit) is kept once
    if c.replace_graph is not None:
        await con.execute("DELETE FROM graph_nodes WHERE session_id = %s", [c.session_id])
        for n in c.replace_graph:
            if n.node_id not in seen:
                seen.add(n.node_id)
                nodes.append(n)
    for n in c.append_nodes:
        if n.node_id not in seen:
            seen.add(n.node_id)
            nodes.append(n)
    return seq + await insert(con, "graph_nodes", rows.node_columns(c.session_id, seq, nodes))


async def _write_turns(con: Any, c: RuntimeCommit, head: _Head, seq: int, t: int) -> int:
    sid = c.session_id
    keep = c.turn_started.turn_id if c.turn_started else None
    ending = c.turn.turn_id if c.turn is not None else None
    open_ids = {tid for _, tid, _ in head.open_turns}
    if c.close_open_turns:
        for _, tid, started in head.open_turns:
            if tid != keep and tid != ending:
                await _terminal(con, sid, process_lost_record(tid, started, t), seq, t, True)
                open_ids.discard(tid)
                seq += 1
    if (c.turn_started is not None and (c.turn is None or c.turn.turn_id != keep)
            and keep not in open_ids and keep not in head.committed):
        await con.execute(
            "INSERT INTO turns (session_id, turn_id, status, started_at, seq) "
            "VALUES (%s, %s, 'open', epoch_ms(%s::bigint), %s)",
            [sid, keep, c.turn_started.started_at_ms, seq])
        seq += 1
    if c.turn is not None:
        await _terminal(con, sid, c.turn, seq, t, c.turn.turn_id in open_ids)
        seq += 1
    return seq


async def _terminal(con: Any, sid: str, turn: TurnRecord, seq: int, t: int, update: bool) -> None:
    p = [turn.outcome, turn.stop_reason, turn.started_at_ms, float(turn.duration_ms),
         turn.commit_hash, rows.dumps(dict(turn.result)), seq, t, sid, turn.turn_id]
    if update:
        await con.execute(
            "UPDATE turns SET status = 'committed', outcome = %s, stop_reason = %s, "
            "started_at = epoch_ms(%s::bigint), duration_ms = %s, commit_hash = %s, "
            "result = %s::jsonb, seq = %s, committed_at = epoch_ms(%s::bigint) "
            "WHERE session_id = %s AND turn_id = %s", p)
    else:
        await con.execute(
            "INSERT INTO turns (outcome, stop_reason, started_at, duration_ms, commit_hash, "
            "result, seq, committed_at, session_id, turn_id, status) VALUES (%s, %s, "
            "epoch_ms(%s::bigint), %s, %s, %s::jsonb, %s, epoch_ms(%s::bigint), %s, %s, "
            "'committed')", p)


async def _write_session(con: Any, c: RuntimeCommit, exists: bool, next_seq: int, t: int,
                         tools_unchanged: bool = False) -> None:
    p = {
        "sid": c.session_id, "provider_id": c.provider_id, "model": c.model,
        "parent": c.parent_session_id,
        "policy": rows.dumps(dict(c.policy)) if c.policy else None,
        "tool_state": (rows.dumps(c.tool_state) if c.tool_state is not None and not tools_unchanged
                       else None),
        "turn_index": c.turn_index, "leaf": c.leaf_node_id, "t": t, "next_seq": next_seq,
    }
    if exists:
        await con.execute(
            "UPDATE sessions SET provider_id = coalesce(nullif(%(provider_id)s, ''), provider_id), "
            "model = coalesce(nullif(%(model)s, ''), model), "
            "parent_session_id = coalesce(nullif(%(parent)s, ''), parent_session_id), "
            "policy = coalesce(%(policy)s::jsonb, policy), "
            "tool_state = coalesce(%(tool_state)s::jsonb, tool_state), "
            "turn_index = %(turn_index)s, leaf_node_id = %(leaf)s, "
            "head_revision = head_revision + 1, updated_at = epoch_ms(%(t)s::bigint), "
            "next_seq = %(next_seq)s WHERE session_id = %(sid)s", p)
        return
    cur = await con.execute(
        "INSERT INTO sessions VALUES (%(sid)s, %(provider_id)s, %(model)s, %(parent)s, "
        "coalesce(%(policy)s::jsonb, '{}'::jsonb), 1, %(leaf)s, %(turn_index)s, "
        "%(tool_state)s::jsonb, epoch_ms(%(t)s::bigint), epoch_ms(%(t)s::bigint), %(next_seq)s) "
        "ON CONFLICT (session_id) DO NOTHING", p)
    if cur.rowcount != 1:  # another process created the session since our head read
        raise HeadRevisionConflict(
            f"session {c.session_id!r} was created by another process meanwhile; reopen the "
            "session and retry")
