"""The PostgreSQL queue's cost, counted in statements and transactions (issue 21), and the
exactly-once promises the cuts must keep (ADR 0121).

A data scientist queues 300 follow-ups from a notebook with ``gather`` while workers on other
machines wait for work: the burst must be one transaction and wake the workers once, and every
batch must be in the database, in call order, when the call returns. A worker drains a batch:
its claim must be committed (seen by every other process) before the turn runs, and a worker
whose lease was taken over must never overwrite the new holder's claim.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._core.queue import DeliveryPolicy, QueuedWorkDraft, SlotPolicy
from lash_nb._errors import SessionExecutionLeaseLost
from lash_nb.providers import FunctionProvider


class Sent:
    """Every statement psycopg's async connections send, and each transaction block opened
    (as ``BEGIN``), while counting."""

    def __init__(self, monkeypatch: Any) -> None:
        import psycopg

        self.sql: list[str] = []
        self._mp = monkeypatch
        self._execute = psycopg.AsyncConnection.execute
        self._transaction = psycopg.AsyncConnection.transaction

    def __enter__(self) -> list[str]:
        import psycopg

        execute, transaction, sql = self._execute, self._transaction, self.sql

        async def counted_execute(con: Any, query: Any, *a: Any, **kw: Any) -> Any:
            sql.append(" ".join(str(query).split()))
            return await execute(con, query, *a, **kw)

        def counted_transaction(con: Any, *a: Any, **kw: Any) -> Any:
            sql.append("BEGIN")
            return transaction(con, *a, **kw)

        self._mp.setattr(psycopg.AsyncConnection, "execute", counted_execute)
        self._mp.setattr(psycopg.AsyncConnection, "transaction", counted_transaction)
        return self.sql

    def __exit__(self, *exc: Any) -> None:
        self._mp.undo()


async def _open(store: Any, sid: str = "s") -> Any:
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \
        .store(store).build()
    return await core.session(sid).open()


def _draft(payload: dict[str, Any], sid: str = "s", key: str | None = None) -> QueuedWorkDraft:
    return QueuedWorkDraft(sid, key, DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT,
                           SlotPolicy.EXCLUSIVE, None, 0, (("turn_input", payload),))


def _text(text: str) -> dict[str, Any]:
    return {"items": [{"type": "text", "text": text}]}


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[Any]:
    from lash_nb.stores import PostgresStore

    made: list[Any] = []

    def make() -> Any:
        made.append(PostgresStore(pg_dsn))
        return made[-1]

    yield make
    for store in made:
        store.close_sync()


def test_postgres_a_burst_of_300_enqueues_is_one_transaction_one_insert_and_wakes_workers_once(
        pg: Any, monkeypatch: Any) -> None:
    async def body() -> None:
        store, worker = pg(), pg()  # ``worker``: another process's view of the same database
        await worker._io.run(worker._listener.start())
        s = await _open(store)
        with Sent(monkeypatch) as sql:
            sent = await asyncio.gather(*(s.enqueue(f"burst {i}").send() for i in range(300)))
        assert sum(q == "BEGIN" for q in sql) == 1  # was 300
        assert sum(q.startswith("INSERT INTO queued_work_batches") for q in sql) == 1
        assert len(sql) == 3  # BEGIN, the lock and the wake-up, the INSERT
        # durable and in call order when the calls return, for every other process
        listed = await worker.list_queued_work("s")
        assert [b.batch_id for b in listed] == [b.batch_id for b in sent]
        assert [b.enqueue_seq for b in listed] == sorted(b.enqueue_seq for b in listed)
        assert listed == sent  # what each call returned is what is stored
        # one lash_work for the burst: a later enqueue's notification (delivered in commit
        # order) arrives second
        await store.enqueue(_draft(_text("sentinel"), sid="other"))
        for _ in range(600):
            if worker._listener.work_notifications >= 2:
                break
            await asyncio.sleep(0.05)
        assert worker._listener.work_notifications == 2

    asyncio.run(body())


def test_postgres_enqueues_one_at_a_time_each_commit_before_returning(
        pg: Any, monkeypatch: Any) -> None:
    async def body() -> None:
        store, other = pg(), pg()
        s = await _open(store)
        for i in range(3):
            with Sent(monkeypatch) as sql:
                batch = await s.enqueue(f"alone {i}").send()
            assert sum(q == "BEGIN" for q in sql) == 1  # one commit per enqueue, at most
            assert [b.batch_id for b in await other.list_queued_work("s")][-1] == batch.batch_id

    asyncio.run(body())


def test_postgres_one_bad_enqueue_in_a_burst_fails_alone_and_keyed_ones_stay_idempotent(
        pg: Any) -> None:
    """Guard: a draft Python cannot encode, and one the server refuses (jsonb has no NUL),
    each fail alone; a key sent twice in one burst is one batch."""
    async def body() -> None:
        store = pg()
        loop_ref: dict[str, Any] = {}
        loop_ref["self"] = loop_ref  # cannot be written as JSON
        got = await asyncio.gather(
            store.enqueue(_draft(_text("first"))),
            store.enqueue(_draft(loop_ref)),
            store.enqueue(_draft(_text("nul \x00 inside"))),
            store.enqueue(_draft(_text("keyed"), key="host:k")),
            store.enqueue(_draft(_text("keyed again"), key="host:k")),
            store.enqueue(_draft(_text("last"))),
            return_exceptions=True)
        assert isinstance(got[1], Exception) and isinstance(got[2], Exception)
        assert got[3].batch_id == got[4].batch_id
        listed = await store.list_queued_work("s")
        assert [b.batch_id for b in listed] == [got[0].batch_id, got[3].batch_id, got[5].batch_id]
        assert listed[1].items[0].payload == _text("keyed")

    asyncio.run(body())


def test_postgres_bursts_from_two_threads_into_one_session_keep_each_ones_order(pg: Any) -> None:
    """Two event loops (a notebook and a script thread) burst into one session at once: all
    400 batches are stored once, and each loop's batches keep their call order."""
    from lash_nb.stores import PostgresStore

    first = pg()
    dsn = first.dsn
    results: dict[str, list[Any]] = {}

    def burst(name: str) -> None:
        async def body() -> None:
            store = PostgresStore(dsn)
            try:
                results[name] = await asyncio.gather(
                    *(store.enqueue(_draft(_text(f"{name} {i}"))) for i in range(200)))
            finally:
                await store.close()

        asyncio.run(body())

    threads = [threading.Thread(target=burst, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    listed = asyncio.run(_listed(first))
    assert len(listed) == 400 and len({b.batch_id for b in listed}) == 400
    for name in ("a", "b"):
        mine = [b.items[0].payload["items"][0]["text"] for b in listed
                if b.items[0].payload["items"][0]["text"].startswith(name)]
        assert mine == [f"{name} {i}" for i in range(200)]
        assert [b.batch_id for b in results[name]] == [
            b.batch_id for b in listed if b.batch_id in {r.batch_id for r in results[name]}]


async def _listed(store: Any) -> list[Any]:
    return list(await store.list_queued_work("s"))


def test_postgres_a_drain_claims_in_three_statements_and_finishes_in_one(
        pg: Any, monkeypatch: Any) -> None:
    """Beyond a plain turn, a drain sends: the command probe and the claim probe (each one
    statement), the claim's transaction (its ready rows locked, its UPDATE guarded by the
    lease: no lease lock), and in the final commit the held claims' check and one statement
    for history + delete + wake-up. 11 statements before; 7 now. Flat in depth."""
    async def body() -> None:
        store = pg()
        s = await _open(store)
        await s.turn("warm").run()
        with Sent(monkeypatch) as plain:
            await s.turn("plain").run()
        await s.enqueue("first").send()
        with Sent(monkeypatch) as shallow:
            await s.queued_turn().run()
        await asyncio.gather(*(s.enqueue(f"deep {i}").send() for i in range(1000)))
        with Sent(monkeypatch) as deep:
            await s.queued_turn().run()
        assert deep == shallow
        assert len(deep) == len(plain) + 7
        assert sum(q == "BEGIN" for q in deep) == sum(q == "BEGIN" for q in plain) + 1
        assert not any("FOR SHARE" in q for q in deep)
        claim = deep[deep.index("BEGIN", 1) + 1:][:2]
        assert claim[0].startswith("SELECT batch_id") and claim[0].endswith("FOR UPDATE SKIP LOCKED")
        assert claim[1].startswith("UPDATE queued_work_batches SET claim_id")
        assert sum("queue_history" in q or "DELETE FROM queued_work_batches" in q
                   for q in deep) == 1
        history = store.query("SELECT final_state, attempts FROM queue_history ORDER BY enqueue_seq")
        assert history.values.tolist() == [["completed", 1], ["completed", 1]]
        assert len(await s.queued_work()) == 999

    asyncio.run(body())


def test_postgres_a_drain_locks_only_the_batch_it_runs_however_deep_the_queue(pg: Any) -> None:
    """A worker drains one of a notebook's 200 queued follow-ups: its claim locks the head row
    alone, not the 63 rows behind it that it will not run (a row lock is a write: the row's
    ``xmax`` names the locker, a WAL record and a dirty page per row). Before ADR 200 the claim
    locked 64 rows at any depth past 63. A join head still takes the join batches behind it."""
    async def body() -> None:
        store = pg()
        s = await _open(store)
        await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(200)))
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids
        locked = store.query(
            "SELECT count(*) AS n FROM queued_work_batches WHERE xmax::text <> '0'")
        assert int(locked["n"][0]) == 0, "rows the drain did not run were locked"
        assert len(await s.queued_work()) == 199

        j = await _open(store, "j")
        joined = [await j.enqueue(f"part {i}").slot_policy("join").send() for i in range(3)]
        alone = await j.enqueue("alone").send()
        out = await j.queued_turn().run()
        assert out is not None
        assert sorted(out.result.queued_batch_ids) == sorted(b.batch_id for b in joined)
        assert [b.batch_id for b in await j.queued_work()] == [alone.batch_id]

    asyncio.run(body())


def test_postgres_a_worker_whose_lease_was_taken_over_mid_claim_never_overwrites_the_new_claim(
        pg: Any, monkeypatch: Any) -> None:
    """Worker A checked its lease; before its claim transaction, its lease expires and worker B
    takes the session over and claims the batch. A's claim must fail (lease lost) and leave
    B's claim as it was: the batch runs once, by B. (Guard: the lease lock this replaced
    held it too; without the lease guard on the claim's UPDATE, A overwrites B's claim.)"""
    import psycopg

    async def body() -> None:
        a_store, b_store = pg(), pg()
        batch = await a_store.enqueue(_draft(_text("once")))
        a = await a_store.try_acquire_lease("s", "worker-a", ttl_ms=60_000)
        # A's probe runs; then, before A's transaction, B takes over and claims
        inner = psycopg.AsyncConnection.transaction
        took_over: list[Any] = []
        started: list[bool] = []

        def transaction(con: Any, *args: Any, **kw: Any) -> Any:
            if not started:  # A's first transaction: its claim (B's own pass straight through)
                started.append(True)
                with psycopg.connect(a_store.dsn, autocommit=True) as raw:
                    raw.execute("UPDATE execution_leases SET expires_at_ms = 0 "
                                "WHERE session_id = 's'")
                took_over.append(asyncio.run_coroutine_threadsafe(
                    _take_over_and_claim(b_store), b_loop).result(60))
            return inner(con, *args, **kw)

        monkeypatch.setattr(psycopg.AsyncConnection, "transaction", transaction)
        with pytest.raises(SessionExecutionLeaseLost):
            await a_store.claim_queued_work(a)
        monkeypatch.undo()
        b_claim = took_over[0]
        assert b_claim is not None and b_claim.batch_ids == (batch.batch_id,)
        with psycopg.connect(a_store.dsn, autocommit=True) as raw:
            row = raw.execute("SELECT claim_id, attempts FROM queued_work_batches").fetchone()
        assert row == (b_claim.claim_id, 1)  # B's claim, counted once

    b_loop = asyncio.new_event_loop()
    runner = threading.Thread(target=b_loop.run_forever, daemon=True)
    runner.start()
    try:
        asyncio.run(body())
    finally:
        b_loop.call_soon_threadsafe(b_loop.stop)
        runner.join(30)


async def _take_over_and_claim(store: Any) -> Any:
    lease = await store.try_acquire_lease("s", "worker-b", ttl_ms=60_000)
    return await store.claim_queued_work(lease)


_BURSTING = """
import asyncio, sys
from lash_nb._core.queue import DeliveryPolicy, QueuedWorkDraft, SlotPolicy
from lash_nb.stores import PostgresStore

async def main():
    store = PostgresStore(sys.argv[1])
    out = open(sys.argv[2], "a", buffering=1)  # one write per returned call
    n = 0

    async def one(i):
        b = await store.enqueue(QueuedWorkDraft(
            "s", None, DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT, SlotPolicy.EXCLUSIVE, None, 0,
            (("turn_input", {"items": [{"type": "text", "text": str(i)}]}),)))
        out.write(b.batch_id + "\\n")

    while True:
        await asyncio.gather(*(one(n + i) for i in range(250)))
        n += 250

asyncio.run(main())
"""


def test_postgres_a_process_killed_mid_burst_keeps_every_batch_its_calls_returned(
        pg: Any, tmp_path: Any) -> None:
    """kill -9 while bursts are being written: every enqueue whose call returned is stored,
    once; a burst is all or nothing (the calls of the burst cut short never returned)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    store = pg()
    script, returned = tmp_path / "burst.py", tmp_path / "returned.txt"
    script.write_text(_BURSTING)
    returned.touch()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    os.environ.get("PYTHONPATH")) if p))
    child = subprocess.Popen([sys.executable, str(script), store.dsn, str(returned)], env=env,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a wait for a condition, not a timed assertion
        while returned.read_text().count("\n") < 600 and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    got = [line for line in returned.read_text().splitlines() if line]
    assert len(got) >= 600
    stored = [b.batch_id for b in asyncio.run(_listed(store))]
    assert len(stored) == len(set(stored))
    assert set(got) <= set(stored)  # returned means committed
    assert len(stored) % 250 == 0  # whole bursts only (each burst: one transaction)


def test_postgres_an_abandon_and_a_release_are_one_statement_each_and_still_wake_workers(
        pg: Any, monkeypatch: Any) -> None:
    """A drain whose turn failed gives its claim back and lets the session go: each is one
    autocommitted statement now (a transaction of 2 and of 3 before), the batch is pending
    again with its error, and an idle worker elsewhere is woken by each."""
    async def body() -> None:
        store, worker = pg(), pg()
        await worker._io.run(worker._listener.start())
        batch = await store.enqueue(_draft(_text("fails once")))
        for _ in range(600):  # the enqueue's own wake-up first: counted late, it made 3 of 2
            if worker._listener.work_notifications >= 1:
                break
            await asyncio.sleep(0.05)
        assert worker._listener.work_notifications == 1
        lease = await store.try_acquire_lease("s", "worker-a")
        claim = await store.claim_queued_work(lease)
        assert claim is not None
        before = worker._listener.work_notifications
        with Sent(monkeypatch) as sql:
            await store.abandon_claim(claim, error="model down")
            await store.release_lease(lease)
        assert len(sql) == 2 and "BEGIN" not in sql
        [again] = await worker.list_queued_work("s")
        assert (again.batch_id, again.attempts, again.error) == (batch.batch_id, 1, "model down")
        other = await worker.try_acquire_lease("s", "worker-b")
        assert other.fencing == lease.fencing + 1  # the lease was released, not expired
        for _ in range(600):
            if worker._listener.work_notifications >= before + 2:
                break
            await asyncio.sleep(0.05)
        assert worker._listener.work_notifications == before + 2

    asyncio.run(body())
