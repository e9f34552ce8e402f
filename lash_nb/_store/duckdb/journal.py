"""The commit log: a turn commit is one row in ``commit_log``; typed tables catch up later.

Theory of operation
- DuckDB here costs ~0.5 ms per write statement plus ~0.06 ms per column written, and a
  turn commit touches seven tables (~90 columns): ~18 ms if written straight to the typed
  tables. So a commit is planned in Python as a :class:`Delta` (the exact rows it adds to
  each typed table, the new state of the turns it opens or closes, the new session head)
  and stored as **one JSON row** in ``commit_log`` by a single autocommit INSERT: atomic,
  durable at return, ~1.5 ms.
- **Folding** writes pending deltas into the typed tables in one transaction (one Arrow
  insert per table for all of them, one upsert for turns and one for sessions) and deletes
  their ``commit_log`` rows in the same transaction. The store folds: when the worker has
  been idle a moment (between turns), when the pending deltas grow past a large bound
  (1,024 commits without a pause), before any read of the typed tables (loads, ``query``,
  reports, deletes), and before the file is released. So whoever reads the typed tables --
  this process or another after the release -- sees every commit.
- **An idle fold gives way** (``fold_idle``, ADR 0122): it folds the oldest ``FOLD_SLICE``
  pending deltas per transaction and, before each statement, asks whether a job waits; if
  one does, the slice rolls back (it wrote nothing that counts) and the job runs: a commit
  that arrives mid-fold waits for one statement, not for the fold (~10-15 ms whatever the
  number of deltas). Committed slices stay folded (a prefix of ``pending``: their log rows
  are deleted by session and revision, their queue parts leave the hold's overlay). After
  ``FOLD_FIRM_AFTER`` idle folds in a row gave way without folding anything, the next one
  is *firm*: it folds everything pending, slice after slice, without giving way, so the log
  never holds more than what came since the last firm fold, however the turns and the idle
  moments interleave (one firm slice was not enough: 64 commits folded per 4 blocks of 10
  turns, 80 commits, let the log grow until the size bound folded it on a turn's path). The other
  folds (reads, releases, the bound) fold everything in one transaction.
- After a crash, rows left in ``commit_log`` are decoded and folded when the file is next
  opened for writing (``recover``). A read-only open of such a file is refused with a
  message saying how to recover it.
- A drain's claim and completion ride in its commits' log rows (``queue``) and fold after
  the typed tables, in log order (``claims.py``, ADR 0106). A commit that replaces the graph folds the
  log first and then writes its delta straight to the typed tables.
- Forbidden: reading a typed table while deltas are pending; a delta that is neither in the
  log nor in the typed tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..base import RuntimeCommit, process_lost_record
from . import quarantine, rows
from .arrow import importing, need_arrow

log = logging.getLogger("lash_nb.store")

# ``written_at`` is bound as a naive UTC datetime (``log_statement``), not as
# ``epoch_ms(?::BIGINT)``: the same TIMESTAMP, and DuckDB binds and runs the INSERT ~0.05-0.09
# ms faster without the cast and the function (two INSERTs a turn; ADR 0133); but while
# pandas is being imported a datetime waits for the import (arrow.py): the cast then
LOG_INSERT_SQL = ("INSERT INTO commit_log (session_id, head_revision, written_at, body) "
                  "VALUES (?, ?, ?, ?)")
_LOG_INSERT_MS_SQL = ("INSERT INTO commit_log (session_id, head_revision, written_at, body) "
                      "VALUES (?, ?, epoch_ms(?::BIGINT), ?)")
_EPOCH = datetime.datetime(1970, 1, 1)
_MS = datetime.timedelta(milliseconds=1)


def log_statement(sid: str, rev: int, t: int, body: str) -> tuple[str, list[Any]]:
    """The INSERT of a commit's log row and its parameters: ``written_at`` is ``t`` (ms since
    the epoch, UTC) as the TIMESTAMP ``epoch_ms(t)`` is, bound as a datetime unless pandas is
    being imported (then binding one would wait for the import, holding the file: ADR 0216)."""
    if importing():
        return _LOG_INSERT_MS_SQL, [sid, rev, t, body]
    return LOG_INSERT_SQL, [sid, rev, _EPOCH + t * _MS, body]


# a safety bound on memory and log size, not the usual trigger: the worker folds when it has
# been idle ``fold_idle_s`` (between turns); only a store committing without a 50 ms pause
# for this many commits folds inside one (ADR 0033)
FOLD_AFTER_DELTAS = 1024
FOLD_AFTER_ROWS = 100_000
# an idle fold writes at most this many deltas per transaction (a fold costs ~10 ms at 5
# deltas, ~14 ms at 20: small slices would only add statements), and after this many idle
# folds in a row gave way with nothing folded, the next folds everything without giving way
FOLD_SLICE = 64
FOLD_FIRM_AFTER = 3

_APPEND_TABLES = ("graph_nodes", "usage_deltas", "llm_calls", "tool_calls", "turn_events")
_TURN_UPSERT = "INSERT OR REPLACE INTO turns BY NAME SELECT * FROM batch"
# a later delta's provider/model/parent/policy/tool_state win only when set (None or ''
# keeps the stored value, like the memory store); the other columns are always the latest
_SESSION_UPSERT = """
INSERT INTO sessions BY NAME SELECT * FROM batch
ON CONFLICT (session_id) DO UPDATE SET
    provider_id = coalesce(nullif(excluded.provider_id, ''), sessions.provider_id),
    model = coalesce(nullif(excluded.model, ''), sessions.model),
    parent_session_id = coalesce(nullif(excluded.parent_session_id, ''), sessions.parent_session_id),
    policy = coalesce(excluded.policy, sessions.policy),
    tool_state = coalesce(excluded.tool_state, sessions.tool_state),
    head_revision = excluded.head_revision, leaf_node_id = excluded.leaf_node_id,
    turn_index = excluded.turn_index, updated_at = excluded.updated_at,
    next_seq = excluded.next_seq
"""


class GaveWay(Exception):
    """An idle fold rolled its slice back: a job waits (``fold_idle``)."""


@dataclasses.dataclass
class FoldCounts:
    """What the folds of one store did (benchmarks print it; tests read it)."""

    full: int = 0  # folds of everything at once: reads, releases, the bound, replaced graphs
    idle: int = 0  # idle folds that emptied the log
    slices: int = 0  # transactions idle folds committed
    gave_way: int = 0  # idle folds that stopped for a job (a slice rolled back, or between two)
    firm: int = 0  # idle slices run without giving way, after FOLD_FIRM_AFTER gave way in a row
    seconds: float = 0.0  # wall time spent folding, slices that gave way included


@dataclasses.dataclass
class Delta:
    """What one commit adds to the typed tables (JSON-able: it is also the log row)."""

    session_id: str
    head_revision: int
    tables: dict[str, dict[str, list[Any]]]  # append-only rows, as insert columns
    turns: list[dict[str, Any]]  # the new full state of each turn row it touches
    session: dict[str, Any]  # the session row after it (None fields: unchanged)
    replace_graph: bool = False
    # derived for the in-memory head, not stored
    nodes: list[str] = dataclasses.field(default_factory=list)
    opened: dict[str, int] = dataclasses.field(default_factory=dict)
    closed: list[str] = dataclasses.field(default_factory=list)
    next_seq: int = 0
    # queue rows the commit changes, folded after its tables (claims.py): "claims" (a
    # drain's claim, with its turn's first commit) and "done" (the batches it completes)
    queue: dict[str, Any] = dataclasses.field(default_factory=dict)

    def body(self) -> str:  # a replaced graph is never logged (see DuckDBStore.commit)
        data = {"tables": self.tables, "turns": self.turns, "session": self.session}
        if self.queue:
            data["queue"] = self.queue
        return rows.dumps_built(data)

    def row_count(self) -> int:
        return sum(len(cols["seq"]) for cols in self.tables.values()) + len(self.turns) + 1


def plan(
    c: RuntimeCommit, *, exists: bool, rev: int, next_seq: int, stored_nodes: set[str],
    open_turns: dict[str, int], committed: dict[str, str], t: int, tools_unchanged: bool = False,
) -> Delta:
    """The delta of commit ``c`` on a head (checks are the caller's, already done).
    ``tools_unchanged``: the session row already holds ``c.tool_state`` (not written again)."""
    sid = c.session_id
    seq = next_seq
    tables: dict[str, dict[str, list[Any]]] = {}
    nodes = _new_nodes(c, stored_nodes)
    if nodes:
        tables["graph_nodes"] = rows.node_columns(sid, seq, nodes)
        seq += len(nodes)
    if c.usage_deltas:
        tables["usage_deltas"] = rows.usage_columns(sid, seq, t, c.usage_deltas)
        seq += len(c.usage_deltas)
    if c.llm_calls:
        cols = rows.llm_call_columns(sid, seq, c.llm_calls)
        if cols["seq"]:
            tables["llm_calls"] = cols
            seq += len(cols["seq"])
    if c.tool_calls:
        tables["tool_calls"] = rows.tool_call_columns(sid, seq, c.tool_calls)
        seq += len(c.tool_calls)
    if c.events:
        tables["turn_events"] = rows.event_columns(sid, seq, t, c.events)
        seq += len(c.events)

    turns: list[dict[str, Any]] = []
    opened: dict[str, int] = {}
    closed: list[str] = []
    keep = c.turn_started.turn_id if c.turn_started else None
    ending = c.turn.turn_id if c.turn is not None else None
    if c.close_open_turns:
        for tid, started in sorted(open_turns.items(), key=lambda kv: kv[1]):
            if tid != keep and tid != ending:
                turns.append(_terminal_row(sid, process_lost_record(tid, started, t), seq, t))
                closed.append(tid)
                seq += 1
    if (keep is not None and c.turn_started is not None and keep != ending
            and keep not in open_turns and keep not in committed):
        turns.append({
            "session_id": sid, "turn_id": keep, "status": "open", "outcome": None,
            "stop_reason": None, "started_at": c.turn_started.started_at_ms,
            "duration_ms": None, "commit_hash": None, "result": None, "seq": seq,
            "committed_at": None,
        })
        opened[keep] = c.turn_started.started_at_ms
        seq += 1
    if c.turn is not None:
        turns.append(_terminal_row(sid, c.turn, seq, t))
        closed.append(c.turn.turn_id)
        seq += 1

    session = {
        "session_id": sid, "provider_id": c.provider_id, "model": c.model,
        "parent_session_id": c.parent_session_id,
        "policy": rows.dumps(dict(c.policy)) if c.policy else ("{}" if not exists else None),
        "head_revision": rev, "leaf_node_id": c.leaf_node_id, "turn_index": c.turn_index,
        "tool_state": (rows.dumps(c.tool_state) if c.tool_state is not None and not tools_unchanged
                       else None),
        "created_at": t, "updated_at": t, "next_seq": seq,
    }
    return Delta(sid, rev, tables, turns, session, c.replace_graph is not None,
                 [n.node_id for n in nodes], opened, closed, seq)


def _new_nodes(c: RuntimeCommit, stored: set[str]) -> list[Any]:
    """The nodes to insert: each id once; an appended node already stored (a retried
    commit) is skipped."""
    seen = set() if c.replace_graph is not None else stored
    fresh: set[str] = set()
    out = []
    for n in (*(c.replace_graph or ()), *c.append_nodes):
        if n.node_id not in seen and n.node_id not in fresh:
            fresh.add(n.node_id)
            out.append(n)
    return out


def _terminal_row(sid: str, turn: Any, seq: int, t: int) -> dict[str, Any]:
    return {
        "session_id": sid, "turn_id": turn.turn_id, "status": "committed",
        "outcome": turn.outcome, "stop_reason": turn.stop_reason,
        "started_at": turn.started_at_ms, "duration_ms": float(turn.duration_ms),
        "commit_hash": turn.commit_hash, "result": rows.dumps(dict(turn.result)), "seq": seq,
        "committed_at": t,
    }


# ---------------------------------------------------------------------------- writing


def write(con: Any, deltas: Sequence[Delta], step: Callable[[], None] | None = None) -> None:
    """Apply deltas, in order, to the typed tables (inside the caller's transaction);
    ``step()`` runs before each statement (an idle fold's chance to give way)."""
    if not deltas:
        return
    need_arrow()  # its Arrow inserts and list parameters: never waiting for the import holding the file
    step = step or _no_step
    for d in deltas:
        if d.replace_graph:  # only ever alone in ``deltas`` (see DuckDBStore.commit)
            con.execute("DELETE FROM graph_nodes WHERE session_id = ?", [d.session_id])
    for table in _APPEND_TABLES:
        merged: dict[str, list[Any]] = {}
        for d in deltas:
            cols = d.tables.get(table)
            if cols:
                for name, values in cols.items():
                    merged.setdefault(name, []).extend(values)
        if merged:
            step()
            rows.insert(con, table, merged)
    turns: dict[tuple[str, str], dict[str, Any]] = {}
    sessions: dict[str, dict[str, Any]] = {}
    for d in deltas:
        for row in d.turns:
            turns[(row["session_id"], row["turn_id"])] = row  # the latest state wins
        prior = sessions.get(d.session_id)
        sessions[d.session_id] = _merge_session(prior, d.session) if prior else dict(d.session)
    if turns:
        step()
        rows.insert(con, "turns", _columns(list(turns.values())), _TURN_UPSERT)
    step()
    rows.insert(con, "sessions", _columns(list(sessions.values())), _SESSION_UPSERT)
    parts = [d.queue for d in deltas if d.queue]
    if parts:  # in log order: a claim before the completion of its batches (claims.py)
        from .claims import apply_logged

        step()
        apply_logged(con, parts)


def _no_step() -> None:
    pass


def _merge_session(prior: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    out = dict(later)
    for key in ("provider_id", "model", "parent_session_id", "policy", "tool_state"):
        if later[key] in (None, ""):
            out[key] = prior[key]
    out["created_at"] = prior["created_at"]
    return out


def _columns(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Row dicts (each with every column of its table) as insert columns."""
    return {k: [r[k] for r in items] for k in items[0]}


def fold(con: Any, hold: Any) -> None:
    """Write the pending deltas to the typed tables and empty the log, in one transaction
    (one at a time, quarantining any that cannot be written, if that fails: quarantine.py)."""
    if not hold.pending:
        return
    log.debug("folding %d commit(s) of session(s) %s into the tables", len(hold.pending),
              ", ".join(sorted({d.session_id for d in hold.pending})))
    hold.counts.full += 1
    t0 = time.perf_counter()
    try:
        _fold_all(con, hold)
    finally:
        hold.counts.seconds += time.perf_counter() - t0


def _fold_all(con: Any, hold: Any) -> None:
    from .transaction import run_in_transaction

    def job(c: Any) -> None:
        write(c, hold.pending)
        c.execute("DELETE FROM commit_log")
        hold.after_commit(hold.pending.clear)
        hold.after_commit(hold.claims.folded)

    try:
        run_in_transaction(con, job, hold=hold)
    except quarantine.data_errors() as e:
        if quarantine.python_is_shutting_down(e):  # not the data's fault: the log keeps them
            raise
        quarantine.fold_each(lambda j: run_in_transaction(con, j, hold=hold), list(hold.pending))
        hold.pending.clear()
        hold.claims.folded()
        hold.queue_index.clear()  # a quarantined completion's batch is pending again
    checkpoint_if_large(con, hold)


def fold_idle(con: Any, hold: Any, work_waits: Callable[[], bool], *, firm: bool = False,
              size: int = 0) -> tuple[int, bool]:
    """Fold the pending deltas oldest first, at most ``size`` (``FOLD_SLICE``) per
    transaction, giving way as soon as ``work_waits()``: between slices, and between the
    statements of a slice, which then rolls back (``firm``: never; every slice runs).
    Returns (slices committed, gave way)."""
    t0 = time.perf_counter()
    try:
        return _fold_slices(con, hold, work_waits, firm, size or FOLD_SLICE)
    finally:
        hold.counts.seconds += time.perf_counter() - t0


def _fold_slices(con: Any, hold: Any, work_waits: Callable[[], bool], firm: bool,
                 size: int) -> tuple[int, bool]:
    from .transaction import run_in_transaction

    done = 0

    def step() -> None:
        if not firm and work_waits():
            raise GaveWay

    while hold.pending:
        part = hold.pending[:size]
        whole = len(part) == len(hold.pending)

        def job(c: Any, part: list[Delta] = part, whole: bool = whole) -> None:
            write(c, part, step)
            step()
            _delete_logged(c, part, whole)
            step()
            hold.after_commit(lambda: _folded(hold, part))

        if firm:
            hold.counts.firm += 1
        try:
            run_in_transaction(con, job, hold=hold)
        except GaveWay:
            hold.counts.gave_way += 1
            return done, True
        except quarantine.data_errors() as e:
            if quarantine.python_is_shutting_down(e):  # not the data's fault: the log keeps them
                raise
            quarantine.fold_each(lambda j: run_in_transaction(con, j, hold=hold), part)
            _folded(hold, part)
            hold.queue_index.clear()  # a quarantined completion's batch is pending again
        done += 1
        hold.counts.slices += 1
        if hold.pending and not firm and work_waits():
            hold.counts.gave_way += 1
            return done, True
    hold.counts.idle += 1
    checkpoint_if_large(con, hold)
    return done, False


def _delete_logged(con: Any, part: Sequence[Delta], whole: bool) -> None:
    """Delete the log rows of the deltas ``part`` (every row when it is all of them)."""
    if whole:
        con.execute("DELETE FROM commit_log")
        return
    con.execute(
        "DELETE FROM commit_log USING (SELECT unnest($s::VARCHAR[]) AS s, "
        "unnest($r::BIGINT[]) AS r) d WHERE commit_log.session_id = d.s "
        "AND commit_log.head_revision = d.r",
        {"s": [d.session_id for d in part], "r": [d.head_revision for d in part]})


def _folded(hold: Any, part: Sequence[Delta]) -> None:
    """After COMMIT: the deltas ``part`` (the oldest pending) are in the tables."""
    n = len(part)
    assert all(a is b for a, b in zip(hold.pending[:n], part, strict=True)), "not a prefix"
    del hold.pending[:n]
    if hold.pending:
        hold.claims.folded([d.queue for d in part if d.queue])
    else:
        hold.claims.folded()


def checkpoint_if_large(con: Any, hold: Any) -> None:
    """Checkpoint now, with the log empty, once the .wal is large (``lock.py``: DuckDB's own
    threshold would catch log rows in the file and leave their blocks free for good)."""
    from .lock import CHECKPOINT_WAL_BYTES

    path = getattr(hold, "wal_path", "")
    try:
        if not path or hold.pending or os.path.getsize(path) < CHECKPOINT_WAL_BYTES:
            return
    except OSError:
        return
    # nothing is lost if it fails: the .wal still holds it; the next fold tries again
    with contextlib.suppress(Exception):
        con.execute("CHECKPOINT")


def recover(con: Any) -> int:
    """Fold the rows a process left in ``commit_log`` when it died; how many there were."""
    from .transaction import run_in_transaction

    found = con.execute(
        "SELECT session_id, head_revision, body FROM commit_log "
        "ORDER BY session_id, head_revision"
    ).fetchall()
    if not found:
        return 0
    log.info("folding %d commit(s) a process left unfolded in commit_log", len(found))
    deltas = []
    for sid, rev, body in found:
        try:
            data = json.loads(body)
            deltas.append(Delta(sid, int(rev), data["tables"], data["turns"], data["session"],
                                queue=data.get("queue") or {}))
        except quarantine.data_errors(from_disk=True) as e:  # a row that does not decode
            quarantine.quarantine(lambda j: run_in_transaction(con, j), sid, int(rev),
                                  quarantine.turn_ids_of_body(body), e)

    def job(c: Any) -> None:
        write(c, deltas)
        c.execute("DELETE FROM commit_log")

    try:
        run_in_transaction(con, job)
    except quarantine.data_errors(from_disk=True):
        quarantine.fold_each(lambda j: run_in_transaction(con, j), deltas, from_disk=True)
    return len(found)
