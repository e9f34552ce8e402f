"""Helpers of the tests (and benchmarks) that count what PostgreSQL's queue statements read:
a database as an older lash_nb left it, and the rows a plan's scans visited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def older_database(pg_server: Any, indexes: Sequence[str]) -> str:
    """A fresh database as a lash_nb before these indexes left it: schema version 3, the
    schema made, ``indexes`` dropped; returns its DSN."""
    import psycopg

    from lash_nb.stores import PostgresStore

    dsn = str(pg_server.create_database())
    PostgresStore(dsn).close_sync()  # the schema made
    with psycopg.connect(dsn, autocommit=True) as con:
        for name in indexes:
            con.execute(f"DROP INDEX IF EXISTS {name}")
    return dsn


def rows_visited(plan: dict[str, Any], table: str = "queued_work_batches") -> int:
    """Rows of ``table`` that the plan's scans (``EXPLAIN (ANALYZE, FORMAT JSON)``) visited
    over all their loops: those they returned and those their filters threw away (EXPLAIN
    gives both per loop)."""
    own = 0
    if plan.get("Relation Name") == table:
        loops = plan.get("Actual Loops", 1)
        own = round(loops * (plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
                             + plan.get("Rows Removed by Index Recheck", 0)))
    return own + sum(rows_visited(p, table) for p in plan.get("Plans", []))
