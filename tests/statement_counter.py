"""Record the statements a DuckDB store's thread runs (tests and ``benchmarks/`` count them:
counts do not move with the machine's load).

``count_statements(store)`` wraps the store's open connection and every connection it opens
later (after a release); it returns the list the statements are appended to (``into``, or
a new one), whitespace collapsed.
"""

from __future__ import annotations

import sys
from typing import Any


class Counting:
    def __init__(self, con: Any, seen: list[str]) -> None:
        self._con = con
        self._seen = seen

    def execute(self, sql: str, *args: Any, **kw: Any) -> Any:
        self._seen.append(" ".join(str(sql).split()))
        # the fold inserts a local ``batch`` by DuckDB's replacement scan, which looks in the
        # frame that calls execute: this one
        batch = sys._getframe(1).f_locals.get("batch")  # noqa: F841
        return self._con.execute(sql, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def count_statements(store: Any, into: list[str] | None = None) -> list[str]:
    seen: list[str] = [] if into is None else into
    worker = store._worker
    connect = worker._connect
    worker._connect = lambda *args: Counting(connect(*args), seen)

    def install(con: Any) -> None:
        if worker._con is not None:
            worker._con = Counting(con, seen)

    worker.submit(install).result()
    return seen
