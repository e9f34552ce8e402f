"""A logged commit that cannot be folded is quarantined; it never blocks the file.

Theory of operation
- Folding writes every pending delta in one transaction (``journal.fold``, ``recover``). If
  that transaction fails because of the data (a value DuckDB refuses: malformed JSON, a
  constraint, a type; or a log row that does not decode), :func:`fold_each` folds the deltas
  again one at a time in commit order, each in its own transaction (its rows, and its log row
  deleted). A delta that still fails is **quarantined**: its ``commit_log`` row, exactly as
  written, moves to ``commit_quarantine`` with the error, and one WARNING line on the
  ``lash_nb.store`` logger names the session, the turn and the head revision. Every other
  delta folds, so reads and later commits of every session go on.
- ``commit_quarantine`` is created by the first quarantine (``CREATE TABLE IF NOT EXISTS`` in
  that transaction): schema 2 files without it stay valid, no migration step is needed, and
  an older lash_nb opening the file ignores the extra table.
- Failures that are not about the data (lock conflicts, I/O, a full disk, DuckDB refusing
  Python scans while the interpreter shuts down) are not quarantined: they propagate, and
  the log keeps the commits for the next fold.
- Forbidden: dropping a log row without moving it; quarantining on an I/O error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .arrow import arrow_ready

log = logging.getLogger("lash_nb.store")

DDL = """CREATE TABLE IF NOT EXISTS commit_quarantine (
    session_id VARCHAR NOT NULL,
    head_revision BIGINT NOT NULL,
    written_at TIMESTAMP NOT NULL,
    body VARCHAR NOT NULL,
    turn_ids VARCHAR,
    error VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
)"""
COLUMNS = ("session_id", "head_revision", "turn_ids", "error", "written_at", "quarantined_at",
           "body")


def data_errors(*, from_disk: bool = False) -> tuple[type[BaseException], ...]:
    """Exceptions that say a delta's data cannot be written (never I/O or lock trouble).
    Rows read back from the log (``from_disk``: another version, a damaged row) may also
    fail to decode in Python; a delta this process planned may not -- that is a bug, and
    it propagates rather than quarantining every commit."""
    import duckdb

    found: tuple[type[BaseException], ...] = (
        duckdb.ConversionException, duckdb.InvalidInputException, duckdb.ConstraintException,
        duckdb.TypeMismatchException, duckdb.OutOfRangeException)
    if arrow_ready():  # else no pyarrow error was possible: never import it here (ADR 0213)
        import pyarrow as pa

        found += (pa.ArrowInvalid, pa.ArrowTypeError)
    if from_disk:
        found += (ValueError, TypeError, KeyError, AttributeError)
    return found


def fold_each(
    run: Callable[[Callable[[Any], None]], None], deltas: Sequence[Any], *,
    from_disk: bool = False,
) -> int:
    """Fold ``deltas`` one transaction each (``run(job)`` runs ``job(con)`` in one);
    quarantine the ones that fail. Returns how many were quarantined."""
    from .journal import write

    bad = 0
    for d in deltas:
        def one(con: Any, d: Any = d) -> None:
            write(con, [d])
            con.execute("DELETE FROM commit_log WHERE session_id = ? AND head_revision = ?",
                        [d.session_id, d.head_revision])
        try:
            run(one)
        except data_errors(from_disk=from_disk) as e:
            if python_is_shutting_down(e):
                raise  # not the data: the log keeps the commit for the next open's fold
            quarantine(run, d.session_id, d.head_revision, turn_ids(d), e)
            bad += 1
    return bad


def python_is_shutting_down(error: BaseException) -> bool:
    """DuckDB refuses Python scans while the interpreter exits (a kernel shut down, a
    script that ended without ``close()``): an ``InvalidInputException`` about the moment,
    not about the data."""
    import sys

    return sys.is_finalizing() or "interpreter is shutting down" in str(error)


def quarantine(
    run: Callable[[Callable[[Any], None]], None], sid: str, rev: int, turns: Sequence[str],
    error: BaseException,
) -> None:
    """Move the log row of (``sid``, ``rev``) to ``commit_quarantine``; one warning line."""
    detail = (str(error).strip().splitlines() or [""])[0][:300]
    reason = f"{type(error).__name__}: {detail}"

    def move(con: Any) -> None:
        con.execute(DDL)
        con.execute(
            "INSERT INTO commit_quarantine (session_id, head_revision, written_at, body, "
            "turn_ids, error, quarantined_at) SELECT session_id, head_revision, written_at, body, "
            "?, ?, now()::TIMESTAMP FROM commit_log WHERE session_id = ? AND head_revision = ?",
            [",".join(turns) or None, reason, sid, rev])
        con.execute("DELETE FROM commit_log WHERE session_id = ? AND head_revision = ?",
                    [sid, rev])

    run(move)
    log.warning(
        "lash_nb: the commit of session %r turn %s (head revision %d) could not be written to "
        "the store's tables and is kept in commit_quarantine (%s); other commits are not "
        "affected; see DuckDBStore.quarantined_commits()",
        sid, ", ".join(repr(t) for t in turns) or "(unknown)", rev, reason)


def turn_ids(delta: Any) -> list[str]:
    """The turns a delta writes (its turn rows, else the turn ids of its rows)."""
    out: list[str] = []
    try:  # a damaged row read back from the log may have any shape
        out.extend(str(r["turn_id"]) for r in delta.turns if r.get("turn_id"))
        for cols in delta.tables.values():
            for tid in cols.get("turn_id") or ():
                if tid and str(tid) not in out:
                    out.append(str(tid))
    except (AttributeError, TypeError, KeyError):
        pass
    return out


def turn_ids_of_body(body: str) -> list[str]:
    """Best effort for a log row that did not decode into a delta."""
    try:
        data = json.loads(body)
        return [str(r["turn_id"]) for r in data.get("turns", ()) if r.get("turn_id")]
    except Exception:
        return []
