"""The queue's cost to the turns around it (issue 21), counted in statements, not time, and
what ``await_queued_work_batch`` promises: the batch is done (committed), not just claimed.

A notebook user queues a pile of follow-ups for later and keeps chatting: every plain turn
must cost what it costs with an empty queue. A script queues a burst with ``gather``: one
write for the burst. Someone awaiting a batch reads its answer next: it must be committed.
Speed itself is printed by ``benchmarks/queue_pace.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from statement_counter import count_statements

from lash_nb import DeliveryPolicy, LashCore
from lash_nb._core.queue import QueuedWorkDraft, SlotPolicy
from lash_nb._runtime import session as session_mod
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore, MemoryStore


async def _open(store: Any, model: Any = None, sid: str = "s") -> Any:
    core = LashCore.builder().provider(FunctionProvider(model or (lambda r: "ok"))).model("m") \
        .store(store).build()
    return await core.session(sid).open()


async def _statements_of(counting: list[str], coro: Any) -> list[str]:
    start = len(counting)
    await coro
    return counting[start:]


def _txns(sql: list[str]) -> int:
    return sum(1 for q in sql if q.startswith("BEGIN"))


def _durable_writes(sql: list[str]) -> int:
    """Transactions that reach the disk: each BEGIN..COMMIT block, and each write statement
    run outside one (DuckDB autocommits it)."""
    n, inside = 0, False
    for q in sql:
        if q.startswith("BEGIN"):
            inside = True
        elif q == "COMMIT":
            inside, n = False, n + 1
        elif not inside and not q.startswith("SELECT"):
            n += 1
    return n


def test_a_plain_turn_costs_the_same_statements_with_a_thousand_batches_queued(tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)  # no idle fold inside a count
        s = await _open(store)
        await s.turn("warm").run()
        counting = count_statements(store)
        empty = await _statements_of(counting, s.turn("with an empty queue").run())
        await asyncio.gather(*(s.enqueue(f"later {i}").send() for i in range(1000)))
        assert len(await s.queued_work()) == 1000
        deep = await _statements_of(counting, s.turn("with 1,000 queued").run())
        assert deep == empty  # no read of the queue, no extra transaction
        assert not any("queued_work_batches" in q for q in deep)
        # a batch for the next checkpoint that is not due yet: one read, still no transaction
        await s.enqueue("not yet").delivery_policy(DeliveryPolicy.EARLIEST_SAFE_BOUNDARY) \
            .available_at_ms(2**62).send()
        waiting = await _statements_of(counting, s.turn("one early batch, not due").run())
        assert _txns(waiting) == _txns(empty)
        assert len(await s.queued_work()) == 1001  # nothing lost, nothing claimed
        await store.close()

    asyncio.run(body())


def test_a_drain_costs_the_same_statements_at_depth_one_and_a_thousand(tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)  # no idle fold inside a count
        rec: list[str] = []
        s = await _open(store, lambda r: rec.append(r.messages[-1].text()) or "done")
        await s.turn("warm").run()
        counting = count_statements(store)
        plain = await _statements_of(counting, s.turn("plain").run())
        await s.enqueue("first").send()
        shallow = await _statements_of(counting, s.queued_turn().run())
        await asyncio.gather(*(s.enqueue(f"deep {i}").send() for i in range(1000)))
        deep = await _statements_of(counting, s.queued_turn().run())
        assert _durable_writes(plain) == 2  # the progress commit and the final one
        assert _durable_writes(shallow) == 2  # no transaction of its own for the claim
        assert deep == shallow  # flat in depth
        # beyond the plain turn's statements only the read of the queue's head (a window of
        # the session's rows, ADR 200): the claim rides in the first commit's log row, the
        # completion in the last's (ADR 0106)
        assert not any(q.startswith("BEGIN") for q in deep), deep
        extra = [q for q in deep if q not in plain]
        assert len(extra) == 1 and extra[0].startswith(
            "SELECT batch_id, session_id, enqueue_seq, source_key, delivery_policy, slot_policy, "
            "merge_key, available_at_ms, enqueued_at_ms, items, claim_id, claim_generation, "
            "claimed_at_ms, attempts, error, failed_at_ms FROM queued_work_batches WHERE "
            "session_id = $sid AND enqueue_seq BETWEEN $lo AND $hi"), extra
        # before any fold: the listing already shows both batches gone
        assert len(await s.queued_work()) == 999
        assert store.unfolded_commits > 0
        assert rec[-2:] == ["first", "deep 0"]
        history = store.query("SELECT final_state, attempts FROM queue_history ORDER BY enqueue_seq")
        assert history.values.tolist() == [["completed", 1], ["completed", 1]]
        assert len(await s.queued_work()) == 999
        await store.close()

    asyncio.run(body())


def test_a_burst_of_enqueues_is_written_together_and_kept_in_order(tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        s = await _open(store)
        counting = count_statements(store)
        sent = await _statements_of(counting, asyncio.gather(
            *(s.enqueue(f"burst {i}").send() for i in range(300))))
        inserts = [q for q in sent if q.startswith("INSERT INTO queued_work_batches")]
        assert len(inserts) < 300 and sum(q == "COMMIT" for q in sent) < 300
        listed = await s.queued_work()
        assert [b.text for b in listed] == [f"burst {i}" for i in range(300)]
        assert len({b.batch_id for b in listed}) == 300
        one_by_one = []
        for i in range(3):
            one_by_one += await _statements_of(counting, s.enqueue(f"alone {i}").send())
        assert sum(q == "COMMIT" for q in one_by_one) == 3  # one commit per enqueue, at most
        await store.close()
        again = DuckDBStore(tmp_path / "nb.duckdb")  # durable: all there after a reopen
        assert len(await again.list_queued_work("s")) == 303
        await again.close()

    asyncio.run(body())


def test_one_bad_enqueue_in_a_burst_fails_alone(tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")

        def draft(payload: dict[str, Any]) -> QueuedWorkDraft:
            return QueuedWorkDraft("s", None, DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT,
                                   SlotPolicy.EXCLUSIVE, None, 0, (("turn_input", payload),))

        good = {"items": [{"type": "text", "text": "fine"}]}
        bad: dict[str, Any] = {}
        bad["itself"] = bad  # cannot be written as JSON
        results = await asyncio.gather(
            store.enqueue(draft(good)), store.enqueue(draft(bad)),
            store.enqueue(draft(good)), return_exceptions=True)
        assert isinstance(results[1], Exception)
        assert [type(r).__name__ for r in (results[0], results[2])] == ["QueuedWorkBatch"] * 2
        assert len(await store.list_queued_work("s")) == 2
        await store.close()

    asyncio.run(body())


# ---------------------------------------------------------------------- await_queued_work_batch
@pytest.fixture(params=["memory", "duckdb"])
def any_store(request: Any, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStore
    return lambda: DuckDBStore(tmp_path / "q.duckdb")


class Reads:
    """Counts the waiter's reads of the queue (a read's result is acted on before the test
    task runs again: single loop)."""

    def __init__(self, store: Any) -> None:
        self.n = 0
        self.event = asyncio.Event()
        inner = store.list_queued_work

        async def list_queued_work(*a: Any, **kw: Any) -> Any:
            got = await inner(*a, **kw)
            self.n += 1
            self.event.set()
            return got

        store.list_queued_work = list_queued_work

    async def next(self) -> None:
        self.event.clear()
        await asyncio.wait_for(self.event.wait(), 30)


def test_awaiting_a_batch_returns_at_its_commit_not_at_its_claim(any_store: Any,
                                                                    monkeypatch: Any) -> None:
    """The batch is claimed and its turn is waiting for the model: the wait goes on. It
    returns once the turn committed, woken in-process (the re-read is a minute away)."""
    monkeypatch.setattr(session_mod, "AWAIT_FIRST_READ_S", 60.0, raising=False)
    monkeypatch.setattr(session_mod, "AWAIT_READ_CAP_S", 60.0, raising=False)

    async def body() -> None:
        store = any_store()
        gate, reached = asyncio.Event(), asyncio.Event()

        async def model(request: Any) -> str:
            reached.set()
            await gate.wait()
            return "the answer"

        s = await _open(store, model)
        batch = await s.enqueue("work for later").send()
        drain = asyncio.ensure_future(s.queued_turn().run())
        await asyncio.wait_for(reached.wait(), 30)
        [claimed] = await store.list_queued_work("s", include_claimed=True)
        assert claimed.status == "claimed"
        reads = Reads(store)

        async def wait_then_read() -> Any:
            await s.await_queued_work_batch(batch.batch_id, timeout=30)
            return await store.load_turns("s")

        waiter = asyncio.ensure_future(wait_then_read())
        await reads.next()
        assert not waiter.done()  # claimed is not done (it returned here before)
        gate.set()
        turns = await asyncio.wait_for(waiter, 30)
        assert [t.outcome for t in turns] == ["finished"]  # committed when the wait returned
        out = await drain
        assert out.result.assistant_message() == "the answer"
        assert await s.queued_work() == []
        await store.close()

    asyncio.run(body())


def test_a_cancel_ends_the_wait_at_once_and_an_unknown_id_returns_at_once(
        any_store: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(session_mod, "AWAIT_FIRST_READ_S", 60.0, raising=False)
    monkeypatch.setattr(session_mod, "AWAIT_READ_CAP_S", 60.0, raising=False)

    async def body() -> None:
        store = any_store()
        s = await _open(store)
        await s.await_queued_work_batch("qwb:never-seen", timeout=30)
        batch = await s.enqueue("changed my mind").send()
        reads = Reads(store)
        waiter = asyncio.ensure_future(s.await_queued_work_batch(batch.batch_id, timeout=30))
        await reads.next()
        assert not waiter.done()
        assert await s.cancel_queued_work_batch(batch.batch_id) is not None
        await asyncio.wait_for(waiter, 30)  # woken by the cancel, not by a re-read
        with pytest.raises(TimeoutError, match="still queued"):
            other = await s.enqueue("nobody drains this").send()
            await s.await_queued_work_batch(other.batch_id, timeout=0.05)
        await store.close()

    asyncio.run(body())


def test_postgres_a_wait_in_one_process_wakes_on_the_commit_of_another(
        pg_dsn: str, monkeypatch: Any) -> None:
    """Two stores on one database stand for two processes: the waiter's re-read is a minute
    away, so only the ``lash_queue`` notification can end its wait (no poll)."""
    from lash_nb.stores import PostgresStore

    monkeypatch.setattr(session_mod, "AWAIT_FIRST_READ_S", 60.0, raising=False)
    monkeypatch.setattr(session_mod, "AWAIT_READ_CAP_S", 60.0, raising=False)

    async def body() -> None:
        here, there = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
        try:
            waiting = await _open(here, sid="shared")
            batch = await waiting.enqueue("do this elsewhere").send()
            reads = Reads(here)
            waiter = asyncio.ensure_future(
                waiting.await_queued_work_batch(batch.batch_id, timeout=30))
            await reads.next()
            assert not waiter.done()
            worker = await _open(there, sid="shared")
            out = await worker.queued_turn().run()
            assert out is not None and out.result.queued_batch_ids == (batch.batch_id,)
            await asyncio.wait_for(waiter, 30)
            assert reads.n == 2  # one read before, one after the notification
            assert [t.outcome for t in await here.load_turns("shared")] == ["finished"]
        finally:
            await here.close()
            await there.close()

    asyncio.run(body())


def test_an_enqueue_on_a_closed_store_fails_with_one_line_and_the_next_store_works(
        tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        s = await _open(store)
        await s.enqueue("kept").send()
        await store.close()
        with pytest.raises(Exception, match="closed") as err:
            await s.enqueue("too late").send()
        assert "\n" not in str(err.value)
        again = DuckDBStore(tmp_path / "nb.duckdb")
        s2 = await _open(again)
        await asyncio.wait_for(s2.enqueue("after").send(), 30)  # no burst left hanging
        assert [b.text for b in await s2.queued_work()] == ["kept", "after"]
        await again.close()

    asyncio.run(body())


def test_a_listing_of_the_queue_is_freed_by_its_caller_not_by_the_next_drain(tmp_path: Path) -> None:
    """A notebook lists its 1,000 queued batches (the queue panel does) and then drains one:
    the store's thread kept the listing until its next job, so the drain paid for freeing
    1,000 batches (~0.3 ms, ADR 200). Once the caller lets the listing go, it is gone."""
    import time
    import weakref

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        s = await _open(store)
        await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(1000)))
        listing = await s.queued_work()
        assert len(listing) == 1000
        first = weakref.ref(listing[0])
        del listing
        deadline = time.monotonic() + 10
        while first() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert first() is None, "the store's thread still holds the listing"
        await store.close()

    asyncio.run(body())
