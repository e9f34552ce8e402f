"""A worker drains a deep queue on PostgreSQL: its claim reads the rows it may take, not every
queued row of the session (issue 21, ADR 207).

A data scientist queues a thousand follow-ups from a notebook into a PostgreSQL database that
an older lash_nb made; a worker drains them one by one. Each drain's claim looked for batches
that runtimes died holding (to park them) and, at a checkpoint, for commands and
``earliest_safe_boundary`` batches, by reading every queued row of the session: the drain got
slower the deeper the queue. Opened by this lash_nb, the database gains the partial indexes
those probes use, and a batch deep in the queue that used up its attempts is still parked.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pg_plans import older_database, rows_visited

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider

pytestmark = pytest.mark.postgres

INDEXES = ("queued_work_pending", "queued_work_claimed", "queued_work_early")


def _core(store: Any, max_attempts: int = 3) -> Any:
    return (LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m")
            .store(store).max_batch_attempts(max_attempts).build())


def _older_database(pg_server: Any) -> str:
    """A database as a lash_nb before ADR 207 left it: schema version 3, no partial indexes."""
    return older_database(pg_server, INDEXES)


def _reads_measured(monkeypatch: Any) -> list[int]:
    """Every read of ``queued_work_batches`` sent while this is installed is first run under
    ``EXPLAIN ANALYZE`` on its own connection and transaction (a read: nothing changes); the
    rows each visited are appended."""
    import psycopg

    execute = psycopg.AsyncConnection.execute
    scanned: list[int] = []

    async def measured(con: Any, query: Any, params: Any = None, *a: Any, **kw: Any) -> Any:
        sql = str(query)
        if sql.lstrip().startswith("SELECT") and "queued_work_batches" in sql:
            cur = await execute(con, "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            (got,) = await cur.fetchone()
            plan = got if isinstance(got, list) else json.loads(got)
            scanned.append(rows_visited(plan[0]["Plan"]))
        return await execute(con, query, params, *a, **kw)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", measured)
    return scanned


def test_postgres_an_older_database_gains_the_queue_indexes_and_a_drain_reads_as_many_rows_at_any_depth(
        pg_server: Any, monkeypatch: Any) -> None:
    import psycopg

    from lash_nb.stores import PostgresStore

    async def drain_reads(depth: int) -> int:
        dsn = _older_database(pg_server)
        store = PostgresStore(dsn)  # this lash_nb opens the older database
        core = _core(store)
        s = await core.session("s").open()
        await s.turn("warm").run()
        sent = await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(depth)))
        with psycopg.connect(dsn, autocommit=True) as con:  # as autovacuum does after a burst
            con.execute("ANALYZE queued_work_batches")
        scanned = _reads_measured(monkeypatch)
        out = await s.queued_turn().run()
        monkeypatch.undo()
        assert out is not None and out.result.queued_batch_ids == (sent[0].batch_id,)
        assert [b.batch_id for b in await s.queued_work()] == [b.batch_id for b in sent[1:]]
        await core.close()
        with psycopg.connect(dsn) as con:
            have = {r[0] for r in con.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'queued_work_batches'")}
        assert set(INDEXES) <= have, "the older database did not gain the queue indexes"
        assert scanned, "no read of the queue was measured"
        return sum(scanned)

    async def body() -> None:
        shallow, deep = await drain_reads(200), await drain_reads(1000)
        # before ADR 207 the probes read every queued row of the session: 5,003 rows at
        # depth 1,000 against 1,003 at depth 200 (now 4 and 4). (Not at depth 20: a table
        # of one page is rightly read whole.)
        assert deep == shallow, (deep, shallow)

    asyncio.run(body())


def test_postgres_a_batch_deep_in_the_queue_that_used_up_its_attempts_is_still_parked(
        pg_server: Any) -> None:
    """Guard of the parking's meaning: runtimes died twice holding batch 70 of 80 (claimed
    by its id); the next drain (``max_batch_attempts(2)``) parks it and runs the head, and no
    later drain runs it. Nothing else is parked."""
    from lash_nb.stores import PostgresStore

    async def body() -> None:
        store = PostgresStore(_older_database(pg_server))
        core = _core(store, max_attempts=2)
        s = await core.session("s").open()
        sent = await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(80)))
        spent = sent[70]
        for owner in ("host:1:a", "host:1:b"):
            lease = await store.try_acquire_lease("s", owner)
            claim = await store.claim_queued_work(lease, batch_ids=[spent.batch_id])
            assert claim is not None and claim.batch_ids == (spent.batch_id,)
            await store.renew_lease(lease, ttl_ms=0)  # its process died
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (sent[0].batch_id,)
        listed = {b.batch_id: (b.status, b.attempts)
                  for b in await store.list_queued_work("s", include_claimed=True)}
        assert listed[spent.batch_id] == ("failed", 2)
        assert sum(status == "failed" for status, _ in listed.values()) == 1
        ran = []
        while (out := await s.queued_turn().run()) is not None:
            ran += out.result.queued_batch_ids
        assert ran == [b.batch_id for b in sent[1:] if b is not spent]
        assert [b.batch_id for b in await s.queued_work()] == [spent.batch_id]
        await core.close()

    asyncio.run(body())
