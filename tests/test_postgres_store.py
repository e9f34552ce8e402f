"""The PostgreSQL store on a real server: the public conformance suite, schema gate, lease
races, LISTEN/NOTIFY wake-ups, cross-process cancel requests and query()."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pg_fixture import PgServer

from lash_nb._core.queue import DeliveryPolicy, QueuedWorkDraft, SlotPolicy
from lash_nb._errors import StoreError, StoreSchemaError
from lash_nb._store.base import Lease, LeaseBusy, RuntimeCommit, lease_owner_id
from lash_nb.testing.conformance import CHECKS, node, turn_record

pytestmark = pytest.mark.postgres


def _store(dsn: str) -> Any:
    from lash_nb._store.postgres import PostgresStore

    return PostgresStore(dsn)


def _draft(sid: str, text: str) -> QueuedWorkDraft:
    return QueuedWorkDraft(sid, None, DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT,
                           SlotPolicy.EXCLUSIVE, None, 0,
                           (("turn_input", {"items": [{"type": "text", "text": text}]}),))


@pytest.mark.parametrize("check", list(CHECKS))
def test_postgres_store_passes_conformance_check(check: str, pg_server: PgServer) -> None:
    dsn = pg_server.create_database()
    asyncio.run(CHECKS[check](lambda: _store(dsn)))


def test_database_with_another_schema_version_is_refused(pg_dsn: str) -> None:
    import psycopg

    asyncio.run(_store(pg_dsn).close())  # creates the schema
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute("UPDATE lash_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreSchemaError, match="version 99"):
        _store(pg_dsn)


def test_database_with_foreign_tables_of_the_same_names_is_refused(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute("CREATE TABLE sessions (id int)")
    with pytest.raises(StoreSchemaError, match="not a lash store"):
        _store(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        got = con.execute("SELECT count(*) FROM information_schema.tables "
                          "WHERE table_schema = 'public'").fetchone()
    assert got == (1,)  # nothing was created next to the foreign table


def test_unreachable_server_names_the_address_and_what_to_check(pg_server: PgServer) -> None:
    dsn = "postgresql://postgres:secret@127.0.0.1:1/nothing"
    with pytest.raises(StoreError) as info:
        _store(dsn)
    msg = str(info.value)
    assert "127.0.0.1:1/nothing" in msg and "check the DSN" in msg and "secret" not in msg


def test_concurrent_lease_attempts_from_many_connections_yield_one_holder(pg_dsn: str) -> None:
    async def main() -> list[Any]:
        stores = [_store(pg_dsn) for _ in range(4)]
        try:
            owners = [lease_owner_id(f"racer-{i}") for i in range(16)]
            return list(await asyncio.gather(*(
                stores[i % 4].try_acquire_lease("s1", owner) for i, owner in enumerate(owners))))
        finally:
            for s in stores:
                await s.close()

    got = asyncio.run(main())
    leases = [g for g in got if isinstance(g, Lease)]
    busy = [g for g in got if isinstance(g, LeaseBusy)]
    assert (len(leases), len(busy)) == (1, 15)
    assert leases[0].fencing == 1
    assert {b.holder_owner_id for b in busy} == {leases[0].owner_id}


def test_lease_of_an_owner_on_another_host_blocks_until_its_ttl_runs_out(pg_dsn: str) -> None:
    async def main() -> tuple[Any, Any, Any]:
        store = _store(pg_dsn)
        try:
            remote = "some-other-host:4242:worker"  # owner_is_dead can never prove it gone
            # long enough to outlast the next four calls on a loaded machine (300 ms did not)
            held = await store.try_acquire_lease("s1", remote, ttl_ms=3000)
            batch = await store.enqueue(_draft("s1", "work"))
            assert isinstance(held, Lease)
            assert await store.claim_queued_work(held) is not None
            busy = await store.try_acquire_lease("s1", lease_owner_id("here"))
            ready_while_held = await store.sessions_with_ready_work()
            while (await store.sessions_with_ready_work()) != ["s1"]:  # the TTL runs out
                await asyncio.sleep(0.05)
            mine = await store.try_acquire_lease("s1", lease_owner_id("here"))
            assert isinstance(mine, Lease)
            claim = await store.claim_queued_work(mine)
            return busy, ready_while_held, (mine.fencing, claim and claim.batch_ids, batch.batch_id)
        finally:
            await store.close()

    busy, ready_while_held, (fencing, claimed, batch_id) = asyncio.run(main())
    assert isinstance(busy, LeaseBusy) and busy.holder_owner_id == "some-other-host:4242:worker"
    assert ready_while_held == []
    assert (fencing, claimed) == (2, (batch_id,))


def test_enqueue_wakes_a_waiting_store_in_another_connection(pg_dsn: str) -> None:
    async def main() -> tuple[bool, bool]:
        waiter, sender = _store(pg_dsn), _store(pg_dsn)
        try:
            quiet = await waiter.wait_for_work(0.2)
            woke = asyncio.ensure_future(waiter.wait_for_work(30))
            while not waiter._listener._work_waiters:  # registered on the io loop
                await asyncio.sleep(0.01)
            await sender.enqueue(_draft("s1", "wake up"))
            return quiet, await woke
        finally:
            await waiter.close()
            await sender.close()

    assert asyncio.run(main()) == (False, True)


def test_a_store_closed_while_its_listener_starts_or_waits_closes_and_drops_it(pg_dsn: str) -> None:
    # psycopg 3.2.1 (the lowest we declare) could turn a cancelled notifies() wait into a wait
    # for the next notification: a store closed just after a turn hung (a whole CI run stuck)
    import psycopg

    async def open_listen_close(i: int) -> None:
        store = _store(pg_dsn)
        waiting = asyncio.ensure_future(store.wait_for_work(30))  # starts the listener
        await asyncio.sleep(0.001 * (i % 5))  # close while it connects, LISTENs or waits
        await asyncio.wait_for(store.close(), 60)  # a hang guard, not a timing check
        waiting.cancel()

    for i in range(40):
        asyncio.run(open_listen_close(i))
    # a server backend leaves pg_stat_activity a moment after its client hung up (under load,
    # after the loop above ended): wait for the count to reach 0, a hang guard, not a timing check
    deadline = time.monotonic() + 60
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        while True:
            left = con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND query LIKE 'LISTEN%'").fetchone()
            if left == (0,) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert left == (0,)


def test_cancel_request_reaches_a_watcher_in_another_store_and_one_made_later(pg_dsn: str) -> None:
    async def main() -> tuple[list[str], list[str], list[str]]:
        runner, stopper = _store(pg_dsn), _store(pg_dsn)
        fired: list[str] = []
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_cancel(name: str) -> Any:
            def cb() -> None:  # runs on the store's io thread
                fired.append(name)
                loop.call_soon_threadsafe(done.set)
            return cb

        try:
            unwatch = await runner.watch_turn_cancel("s1", "t-running", on_cancel("running"))
            await runner.watch_turn_cancel("s1", "t-other", on_cancel("other"))
            await stopper.request_turn_cancel("s1", "t-running")
            await asyncio.wait_for(done.wait(), 10)
            live = list(fired)
            unwatch()
            # a request sent before the turn starts is seen when its watch begins
            await stopper.request_turn_cancel("s1", "t-later")
            done.clear()
            await runner.watch_turn_cancel("s1", "t-later", on_cancel("later"))
            await asyncio.wait_for(done.wait(), 10)
            early = list(fired)
            # the terminal commit of a turn clears its request
            lease = await runner.try_acquire_lease("s1", lease_owner_id("x"))
            assert isinstance(lease, Lease)
            await runner.commit(RuntimeCommit("s1", lease, turn=turn_record("t-later")))
            left = list((await runner.query_async(
                "SELECT turn_id FROM turn_cancel_requests ORDER BY turn_id"))["turn_id"])
            return live, early, left
        finally:
            await runner.close()
            await stopper.close()

    live, early, left = asyncio.run(main())
    assert live == ["running"]
    assert early == ["running", "later"]
    assert left == ["t-running"]


def test_query_takes_duckdb_placeholders_and_returns_a_frame(pg_dsn: str) -> None:
    async def setup() -> None:
        store = _store(pg_dsn)
        lease = await store.try_acquire_lease("s1", lease_owner_id("q"))
        assert isinstance(lease, Lease)
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(
            node("a", None, "50% off"), node("b", "a", "more")), leaf_node_id="b"))
        await store.close()

    asyncio.run(setup())
    store = _store(pg_dsn)
    try:
        df = store.query("SELECT node_id, content->>'id' AS msg FROM graph_nodes "
                         "WHERE session_id = ? AND node_id LIKE '%' ORDER BY seq", ["s1"])
        assert list(df.columns) == ["node_id", "msg"]
        assert list(df["node_id"]) == ["a", "b"]
        named = store.query("SELECT count(*) AS n, sum(seq) AS total FROM graph_nodes "
                            "WHERE session_id = $sid", {"sid": "s1"})
        assert (int(named["n"][0]), int(named["total"][0])) == (2, 3)  # seq 1 + 2
        assert str(named["total"].dtype) == "int64"
    finally:
        store.close_sync()


def test_tables_and_columns_match_the_duckdb_store(pg_dsn: str, tmp_path: Path) -> None:
    from lash_nb._store.duckdb import DuckDBStore

    sql = ("SELECT table_name, column_name FROM information_schema.columns "
           "WHERE table_schema = {} ORDER BY table_name, ordinal_position")
    duck = DuckDBStore(tmp_path / "x.duckdb", idle_release_s=None)
    try:
        d = duck.query(sql.format("'main'"))
    finally:
        duck.close_sync()
    pg = _store(pg_dsn)
    try:
        p = pg.query(sql.format("current_schema()"))
    finally:
        pg.close_sync()
    # commit_log is DuckDB's write-behind log (empty once folded), not a table to query
    duck_cols = {(t, c) for t, c in zip(d["table_name"], d["column_name"], strict=True) if t != "commit_log"}
    pg_cols = {(t, c) for t, c in zip(p["table_name"], p["column_name"], strict=True)}
    assert {t for t, _ in duck_cols} >= {"sessions", "graph_nodes", "turns", "turn_events"}
    assert duck_cols <= pg_cols
    assert {t for t, _ in pg_cols - duck_cols} == {"turn_cancel_requests"}
