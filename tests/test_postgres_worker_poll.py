"""Idle workers on PostgreSQL ask which sessions have ready work: the question reads the
sessions' queue heads, not every queued row of the database (issue 21, ADR 218).

A team runs a few ``lash_nb worker`` processes on one PostgreSQL database. Over the weeks its
queue holds reports scheduled for tomorrow, a bulk job whose thousands of follow-ups one worker
is draining, a batch parked after it failed; a few sessions have work ready now. Every idle
worker asks the database several times a second which sessions have ready work
(``sessions_with_ready_work``). That question grouped every queued row of the table, so each
poll of each worker read the whole queue. Opened by this lash_nb, an older database gains the
indexes the poll reads, and the poll visits as many rows with 10,000 queued batches as with
1,000; its answer is the same as before (a claim whose worker died counts as ready, a live
claim does not, oldest ready work first).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pg_plans import older_database, rows_visited

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider

pytestmark = pytest.mark.postgres

# the queue's partial indexes: ADR 207's three and this ADR's two
INDEXES = ("queued_work_pending", "queued_work_claimed", "queued_work_early",
           "queued_work_at_once", "queued_work_scheduled")
DAY_MS = 86_400_000


async def _poll_measured(store: Any, dsn: str) -> tuple[list[str], int]:
    """What the worker's poll answers, and the rows of the queue its statement visits (the
    statement it sends, run under ``EXPLAIN ANALYZE`` on a connection of its own: a read)."""
    import psycopg

    execute = psycopg.AsyncConnection.execute
    sent: list[tuple[str, Any]] = []

    async def recorded(con: Any, query: Any, params: Any = None, *a: Any, **kw: Any) -> Any:
        sent.append((str(query), params))
        return await execute(con, query, params, *a, **kw)

    psycopg.AsyncConnection.execute = recorded  # type: ignore[method-assign]
    try:
        answer = await store.sessions_with_ready_work()
    finally:
        psycopg.AsyncConnection.execute = execute  # type: ignore[method-assign]
    reads = [(q, p) for q, p in sent if "queued_work_batches" in q]
    assert len(reads) == 1, sent
    with psycopg.connect(dsn) as con:
        (got,) = con.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + reads[0][0],
                             reads[0][1]).fetchone()
        con.rollback()
    plan = got if isinstance(got, list) else json.loads(got)
    return answer, rows_visited(plan[0]["Plan"])


async def _a_teams_queue(pg_server: Any, queued: int) -> tuple[list[str], int, set[str]]:
    """The team's database with ``queued`` batches that are not ready or stand behind a
    session's head; returns the poll's answer, the rows it visited and the queue's indexes."""
    import psycopg

    from lash_nb.stores import PostgresStore

    dsn = older_database(pg_server, INDEXES)
    store = PostgresStore(dsn)  # this lash_nb opens the older database
    core = (LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m")
            .store(store).max_batch_attempts(1).build())
    s = {sid: await core.session(sid).open()
         for sid in ("bulk", "dead", "c", "due", "a", "b", "live", "parked",
                     *(f"report{i}" for i in range(20)))}
    tomorrow = int(time.time() * 1000) + DAY_MS
    # in this order: the answer lists the sessions by their oldest ready batch
    bulk = await asyncio.gather(*(s["bulk"].enqueue(f"doc {i}").send()
                                  for i in range(queued // 2)))
    await asyncio.gather(*(s[f"report{i % 20}"].enqueue(f"report {i}")
                           .available_at_ms(tomorrow).send() for i in range(queued // 2)))
    await s["dead"].enqueue("left by a worker that died").send()
    await s["c"].enqueue("c").send()
    soon = int(time.time() * 1000) + 300
    await s["due"].enqueue("scheduled a moment ago").available_at_ms(soon).send()
    await s["a"].enqueue("a").send()
    await s["live"].enqueue("running on another worker").send()
    await s["b"].enqueue("b").send()
    await s["parked"].enqueue("failed").send()
    # another worker drains the bulk job: its head is claimed under a live lease
    for sid, owner in (("bulk", "host:2:w"), ("live", "host:3:w"), ("dead", "host:4:w"),
                       ("parked", "host:5:w")):
        lease = await store.try_acquire_lease(sid, owner, ttl_ms=600_000)
        claim = await store.claim_queued_work(lease, max_batches=1)
        assert claim is not None, sid
        if sid == "bulk":
            assert claim.batch_ids == (bulk[0].batch_id,)
        if sid == "dead":
            await store.renew_lease(lease, ttl_ms=0)  # its process died holding the claim
        if sid == "parked":
            await store.abandon_claim(claim, error="boom", max_attempts=1)
            await store.release_lease(lease)
    while int(time.time() * 1000) <= soon + 50:
        await asyncio.sleep(0.05)
    with psycopg.connect(dsn, autocommit=True) as con:  # as autovacuum does after a burst
        con.execute("VACUUM ANALYZE queued_work_batches")
    answer, visited = await _poll_measured(store, dsn)
    await core.close()
    with psycopg.connect(dsn) as con:
        have = {r[0] for r in con.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'queued_work_batches'")}
    return answer, visited, have


def test_postgres_an_idle_workers_poll_reads_as_many_rows_with_10000_queued_batches_as_with_1000(
        pg_server: Any) -> None:
    async def body() -> None:
        small_answer, small, _ = await _a_teams_queue(pg_server, 1_000)
        large_answer, large, indexes = await _a_teams_queue(pg_server, 10_000)
        # oldest ready batch first: the bulk job's second batch (its head is claimed by a
        # live worker), the claim of the worker that died, c, the scheduled batch now due,
        # a, b; not the live claim, the parked batch, nor tomorrow's reports
        expected = ["bulk", "dead", "c", "due", "a", "b"]
        assert small_answer == expected, small_answer
        assert large_answer == expected, large_answer
        # main's poll grouped every queued row: 1,007 rows visited with 1,000 queued and
        # 10,007 with 10,000
        assert large == small, (small, large)
        assert set(INDEXES) <= indexes, "the older database did not gain the queue indexes"

    asyncio.run(body())
