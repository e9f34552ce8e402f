"""``EXPLAIN (ANALYZE, BUFFERS)`` of every statement a PostgreSQL drain sends (ADR 207).

A fresh database: 1,000 batches of an older session, then DEPTH + 1 of the drained one; one
drain to warm up, then the statements and parameters of the next drain are recorded, the
table analyzed (as autovacuum does after a burst), and each statement that touches the queue
or the lease is explained in a transaction rolled back (the queue as that drain left it).

    python benchmarks/queue_explain.py DSN_OF_THE_postgres_DATABASE [DEPTH] [--brief]

``--brief``: each statement's execution time and its scans only.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import psycopg

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import PostgresStore


async def recorded_drain(dsn: str, depth: int) -> list[tuple[str, Any]]:
    store = PostgresStore(dsn)
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \
        .store(store).build()
    s = await core.session("s").open()
    for _ in range(3):
        await s.turn("warm").run()
    other = await core.session("o").open()
    await asyncio.gather(*(other.enqueue(f"o {i}").send() for i in range(1000)))
    await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(depth + 1)))
    await s.queued_turn().run()
    sent: list[tuple[str, Any]] = []
    execute = psycopg.AsyncConnection.execute

    async def record(con: Any, query: Any, params: Any = None, *a: Any, **kw: Any) -> Any:
        sent.append((" ".join(str(query).split()), params))
        return await execute(con, query, params, *a, **kw)

    psycopg.AsyncConnection.execute = record  # type: ignore[method-assign]
    try:
        await s.queued_turn().run()
    finally:
        psycopg.AsyncConnection.execute = execute  # type: ignore[method-assign]
    await core.close()
    return sent


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    brief = "--brief" in sys.argv
    admin, depth = args[0], int(args[1]) if len(args) > 1 else 1000
    name = f"lash_explain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = admin.rsplit("/", 1)[0] + "/" + name
    try:
        sent = asyncio.run(recorded_drain(dsn, depth))
        with psycopg.connect(dsn) as c:
            c.execute("ANALYZE")
            c.commit()
            for q, p in sent:
                if "queued_work" not in q and "execution_leases" not in q:
                    continue
                plan = [r[0] for r in c.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q, p).fetchall()]
                c.rollback()
                if brief:
                    took = plan[-1].split(":")[1].strip()
                    print(f"{took:>10s}  {q[:90]}")
                    for line in plan:
                        if ("Scan" in line and "queued_work" in line) or "Removed" in line:
                            print(f"{'':12s}{line.strip()[:100]}")
                else:
                    print("=" * 100, q[:400], p, *("    " + line for line in plan), sep="\n")
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
