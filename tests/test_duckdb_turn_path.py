"""What a durable DuckDB turn puts on its own path (issue 21), counted, not timed.

A data scientist runs cell after cell against a DuckDB file with nothing queued. Each trip
to the store's thread is two thread wake-ups; on a busy 2-core machine each costs about as
much as a statement, so a turn's path holds none: the progress commit and the final commit
run on the caller's thread while the store's thread is idle (ADR 131). The lease and the
checkpoint claims of a turn with nothing to claim (one before each answer) are answered from
what the store knows while it holds the file. What must not change: work queued for the
checkpoint is still claimed by that turn, and a claim with a lease that was lost still
fails. Speed is printed by ``benchmarks/durable_pace.py``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from statement_counter import count_statements

from lash_nb import LashCore
from lash_nb._errors import SessionExecutionLeaseLost
from lash_nb._store.base import ClaimBoundary, Lease, lease_owner_id
from lash_nb._store.duckdb import worker as worker_mod
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore


def _count_trips(store: DuckDBStore) -> list[str]:
    """The jobs handed to the store's thread from now on (by the name of the job)."""
    worker = store._worker
    submit = worker.submit
    seen: list[str] = []

    def counting(job: Any, **kw: Any) -> Any:
        seen.append(getattr(job, "__qualname__", repr(job)))
        return submit(job, **kw)

    worker.submit = counting  # type: ignore[method-assign]
    return seen


async def _open(store: DuckDBStore, model: Any = None) -> Any:
    core = LashCore.builder().provider(FunctionProvider(model or (lambda r: "ok"))).model("m") \
        .store(store).build()
    return await core.session("s").open()


def test_a_turn_with_nothing_queued_makes_no_trip_to_the_store_thread(
        tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)  # no idle fold in a count
        s = await _open(store)
        await s.turn("warm").run()
        trips = _count_trips(store)
        for i in range(3):
            out = await s.turn(f"cell {i}").run()
            assert out.result.assistant_message() == "ok"
        # the progress commit and the final commit run on the caller's thread while the
        # store's thread is idle (ADR 131; they were a trip each, the lease and each
        # checkpoint claim one more before ADR 90)
        assert trips == [], trips
        await store.close()
        reopened = DuckDBStore(tmp_path / "nb.duckdb", read_only=True)
        try:
            n = reopened.query("SELECT count(*) AS n FROM turns WHERE status = 'committed'")
            assert int(n["n"].iloc[0]) == 4  # every turn is in the file
        finally:
            reopened.close_sync()

    asyncio.run(body())


def test_a_lease_taken_in_memory_is_in_the_file_for_the_next_process(tmp_path: Path) -> None:
    """The acquire ran on the caller's thread; when the file is released (a worker process
    waits for it) the lease row must be there, or that process could take the session."""
    async def body() -> None:
        path = tmp_path / "nb.duckdb"
        store = DuckDBStore(path, fold_idle_s=None)
        first = await store.try_acquire_lease("s", lease_owner_id("a"))
        assert isinstance(first, Lease)
        await store.release_lease(first)
        trips = _count_trips(store)
        again = await store.try_acquire_lease("s", lease_owner_id("a"))
        assert isinstance(again, Lease) and again.fencing == first.fencing + 1
        assert trips == []  # answered from memory
        await store.release_file()
        con = duckdb.connect(str(path), read_only=True)
        try:
            row = con.execute("SELECT token, fencing FROM execution_leases WHERE session_id = 's'")
            assert row.fetchall() == [(again.token, again.fencing)]
        finally:
            con.close()
        other = await store.try_acquire_lease("s", lease_owner_id("b"))
        assert not isinstance(other, Lease)  # still held by "a" after the reopen
        await store.close()

    asyncio.run(body())


def test_two_threads_acquiring_one_session_never_both_win(tmp_path: Path) -> None:
    """Sync code runs on a private loop thread beside the kernel's loop (ADR 1): two loops may
    ask for the same session's lease at once. Each round exactly one of them gets it."""
    store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)
    rounds = 300
    barrier = threading.Barrier(2)
    wins: dict[str, list[Any]] = {"a": [], "b": []}

    def contender(name: str) -> None:
        async def go() -> None:
            for _ in range(rounds):
                barrier.wait(timeout=60)
                got = await store.try_acquire_lease("s", lease_owner_id(name))
                wins[name].append(got if isinstance(got, Lease) else None)
                barrier.wait(timeout=60)
                if isinstance(got, Lease):
                    await store.release_lease(got)
                barrier.wait(timeout=60)
        asyncio.run(go())

    threads = [threading.Thread(target=contender, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    try:
        assert [len(w) for w in wins.values()] == [rounds, rounds]
        for a, b in zip(wins["a"], wins["b"], strict=True):
            assert (a is None) != (b is None)  # one winner, one busy, every round
        fencings = [(a or b).fencing for a, b in zip(wins["a"], wins["b"], strict=True)]
        assert fencings == list(range(1, rounds + 1))  # each new holder fences the last out
    finally:
        store.close_sync()


def test_work_queued_for_the_checkpoint_is_still_claimed_by_the_next_turn(tmp_path: Path) -> None:
    """The store knew the queue was empty; then someone queued input for the next checkpoint:
    the next turn's model must see it (the memory answer may not hide it)."""
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)
        seen: list[list[str]] = []

        def model(request: Any) -> str:
            seen.append([m.text() for m in request.messages if m.role.value == "user"])
            return "ok"

        s = await _open(store, model)
        await s.turn("warm").run()  # the store now knows: nothing queued
        steer = await s.enqueue("also this").delivery_policy("earliest_safe_boundary").send()
        out = await s.turn("go").run()
        assert steer.batch_id in out.result.queued_batch_ids
        assert seen[-1][-2:] == ["go", "also this"]
        assert await s.queued_work() == []
        await store.close()

    asyncio.run(body())


def test_a_checkpoint_claim_with_a_lost_lease_still_fails(tmp_path: Path) -> None:
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)
        lease = await store.try_acquire_lease("s", lease_owner_id("a"))
        assert isinstance(lease, Lease)
        boundary = ClaimBoundary.ACTIVE_TURN_CHECKPOINT
        assert await store.claim_queued_work(lease, boundary=boundary) is None  # empty: known now
        await store.release_lease(lease)
        with pytest.raises(SessionExecutionLeaseLost):
            await store.claim_queued_work(lease, boundary=boundary)
        taken = await store.try_acquire_lease("s", lease_owner_id("b"))
        assert isinstance(taken, Lease)
        with pytest.raises(SessionExecutionLeaseLost):
            await store.claim_queued_work(lease)
        await store.close()

    asyncio.run(body())


async def _until(cond: Any, timeout_s: float) -> bool:
    """Wait (polling the event loop, no thread blocked) until ``cond()`` or the timeout."""
    end = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() >= end:
            return False
        await asyncio.sleep(0.01)
    return True


def test_a_turn_whose_model_answers_slowly_is_folded_once_after_it(tmp_path: Path) -> None:
    """The notebook with a real model: the store is idle for seconds inside each turn. A fold
    there used to write the turn's ``open`` row, which the final commit then replaced (a
    ``turns`` row rewritten every turn: the file grew ~50% faster) and the final commit could
    arrive while that fold ran. Now the turn is folded once, after its final commit."""
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=0.01)
        seen_in_turn: list[int] = []

        async def model(request: Any) -> str:
            # a slow answer: 1 s, or until a fold emptied the log (the old behaviour)
            await _until(lambda: store.unfolded_commits == 0, 1.0)
            seen_in_turn.append(store.unfolded_commits)
            return "ok"

        s = await _open(store, model)
        await s.turn("warm").run()
        assert await _until(lambda: store.unfolded_commits == 0, 60.0)
        sql = count_statements(store)
        await s.turn("a question the model thinks about").run()
        assert seen_in_turn[-1] == 1  # the progress commit was still in the log, unfolded
        assert await _until(lambda: store.unfolded_commits == 0, 60.0)  # folded after the turn
        log_rows = [i for i, q in enumerate(sql) if q.startswith("INSERT INTO commit_log")]
        folds = [i for i, q in enumerate(sql) if q == "DELETE FROM commit_log"]
        assert len(log_rows) == 2 and len(folds) == 1 and folds[0] > log_rows[1], sql
        assert not any(q.startswith("INSERT OR REPLACE INTO turns") for q in sql[:log_rows[1]])
        await store.close()

    asyncio.run(body())


def test_a_turn_in_flight_past_the_bound_is_folded_while_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound: a turn that stays open long (a model thinking for minutes) does not keep
    the log growing; after ``FOLD_IN_TURN_S`` idle the store folds anyway."""
    monkeypatch.setattr(worker_mod, "FOLD_IN_TURN_S", 0.05)

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=0.01)
        folded_in_turn: list[bool] = []

        async def model(request: Any) -> str:
            folded_in_turn.append(await _until(lambda: store.unfolded_commits == 0, 60.0))
            return "ok"

        s = await _open(store, model)
        out = await s.turn("a long think").run()
        assert folded_in_turn == [True]
        assert out.result.assistant_message() == "ok"
        assert await _until(lambda: store.unfolded_commits == 0, 60.0)
        rows = store.query("SELECT status FROM turns")
        assert rows["status"].tolist() == ["committed"]
        await store.close()

    asyncio.run(body())
