"""One store job as one DuckDB transaction: ``run_in_transaction`` begins, runs the job,
commits, and rolls back on any failure, telling the hold what happened to its rows. A
transaction conflict runs the job again (up to ``attempts``); a lock conflict, a full disk and
an idle fold that gave way to other work do not."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from .hold import Hold
from .journal import GaveWay
from .lock import is_disk_full, is_lock_conflict

T = TypeVar("T")


def run_in_transaction(
    con: Any, job: Callable[[Any], T], *, attempts: int = 5, hold: Hold | None = None
) -> T:
    import duckdb

    for attempt in range(attempts):
        con.execute("BEGIN TRANSACTION")
        try:
            result = job(con)
            con.execute("COMMIT")
        except GaveWay:  # an idle fold's slice: it changed nothing the hold keeps
            if hold is not None:
                hold.dropped()
            _rollback(con)
            raise
        except duckdb.TransactionException as e:
            _rollback(con, hold)
            if attempt == attempts - 1 or is_lock_conflict(e) or is_disk_full(e):
                raise
            continue
        except BaseException:
            _rollback(con, hold)
            raise
        if hold is not None:
            hold.committed()
        return result
    raise AssertionError("unreachable")


def _rollback(con: Any, hold: Hold | None = None) -> None:
    if hold is not None:
        hold.rolled_back()
    with contextlib.suppress(Exception):
        con.execute("ROLLBACK")
