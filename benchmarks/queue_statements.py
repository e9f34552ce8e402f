"""Statements and transactions the store runs for a plain turn and a drain, by queue depth.

Counts, not times (they do not move with the machine's load): every statement the DuckDB
store thread executes, and every statement PostgreSQL connections send (``psycopg``'s
``AsyncConnection.execute``), during one plain turn with 0 / 1,000 batches queued for later
and during one drain with 1 / 1,000 queued. Run it on two checkouts to compare them:

    PYTHONPATH=. python benchmarks/queue_statements.py [--pg DSN]
    PYTHONPATH=/path/to/old python benchmarks/queue_statements.py [--pg DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/ holds scripts named like stdlib modules
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from statement_counter import count_statements

SEEN: list[str] = []


def count_duckdb(store: Any) -> None:
    count_statements(store, into=SEEN)


def count_postgres() -> None:
    import psycopg

    inner = psycopg.AsyncConnection.execute

    async def execute(self: Any, query: Any, *a: Any, **k: Any) -> Any:
        SEEN.append(" ".join(str(query).split()))
        return await inner(self, query, *a, **k)

    psycopg.AsyncConnection.execute = execute  # type: ignore[method-assign]
    opened = psycopg.AsyncConnection.transaction

    def transaction(self: Any, *a: Any, **k: Any) -> Any:
        SEEN.append("BEGIN (psycopg transaction block)")
        return opened(self, *a, **k)

    psycopg.AsyncConnection.transaction = transaction  # type: ignore[method-assign]


def durable(sql: list[str]) -> Any:
    """DuckDB: each BEGIN..COMMIT block, and each write run outside one (autocommitted)."""
    if any("psycopg" in q for q in sql):
        return "-"
    n, inside = 0, False
    for q in sql:
        if q.upper().startswith("BEGIN"):
            inside = True
        elif q.upper() == "COMMIT":
            inside, n = False, n + 1
        elif not inside and not q.upper().startswith("SELECT"):
            n += 1
    return n


async def measure(store: Any, label: str) -> None:
    from lash_nb import LashCore
    from lash_nb.providers import FunctionProvider

    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m").store(store).build()

    async def counted(coro: Any) -> tuple[int, int, int]:
        SEEN.clear()
        await coro
        begins = sum(1 for q in SEEN if q.upper().startswith("BEGIN"))
        return len(SEEN), begins, durable(SEEN)

    print(f"== {label}: statements, of them transactions opened (BEGIN; on PostgreSQL "
          "psycopg's transaction blocks), and durable writes (COMMITs plus writes outside a "
          "transaction, each synced on DuckDB; PostgreSQL: not counted, -)")
    for depth in (0, 1000):
        s = await core.session(f"plain-{depth}").open()
        await s.turn("warm").run()
        await asyncio.gather(*(s.enqueue(f"later {i}").send() for i in range(depth)))
        await s.turn("warm again").run()
        n, b, c = await counted(s.turn("plain").run())
        print(f"  plain turn, {depth:>5} queued for later: {n:3d} statements, {b} BEGIN, {c} durable")
    for depth in (1, 1000):
        s = await core.session(f"drain-{depth}").open()
        await s.turn("warm").run()
        await asyncio.gather(*(s.enqueue(f"later {i}").send() for i in range(depth)))
        n, b, c = await counted(s.queued_turn().run())
        print(f"  drain of one batch, {depth:>5} queued:      {n:3d} statements, {b} BEGIN, {c} durable")
    s = await core.session("burst").open()
    n, b, c = await counted(asyncio.gather(*(s.enqueue(f"burst {i}").send() for i in range(100))))
    print(f"  a burst of 100 enqueues:                {n:3d} statements, {b} BEGIN, {c} durable")
    await core.close()


async def main(args: argparse.Namespace) -> None:
    from lash_nb.stores import DuckDBStore

    # no idle fold inside a count (a loaded machine can pause 50 ms mid-drain)
    store = DuckDBStore(str(Path(tempfile.mkdtemp()) / "count.duckdb"), fold_idle_s=None)
    count_duckdb(store)
    await measure(store, "DuckDB")
    await store.close()
    if args.pg:
        import psycopg

        from lash_nb.stores import PostgresStore

        name = f"lash_count_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(args.pg, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        pg = PostgresStore(args.pg.rsplit("/", 1)[0] + "/" + name)
        count_postgres()
        await measure(pg, "PostgreSQL")
        await pg.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default=None, help="a PostgreSQL maintenance DSN (…/postgres)")
    asyncio.run(main(ap.parse_args()))
