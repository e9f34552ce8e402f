"""A drain costs the commits of a plain turn (issue 21, ADR 0084; the statement count is in
``test_queue_pace.py``): its claim is written with the turn's first commit, not in a
transaction of its own, and that stays exactly-once.

The user's situation: a notebook queues follow-ups and a drain runs them one by one; every
drain used to pay one more fsync'd transaction than a plain turn (the claim). And the
operator's: the kernel is killed right after the drain claimed its batch, or another
process wants the file while the claim is only in memory. And a script that queues a burst
with ``gather``: one write, one wake-up of its loop per write. Counts, not times.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_queue_pace import _open, _statements_of

from lash_nb.stores import DuckDBStore


def test_a_drain_decodes_only_the_batch_it_runs_with_a_thousand_queued_behind_it(
        tmp_path: Path, monkeypatch: Any) -> None:
    from lash_nb._store.duckdb import rows

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        s = await _open(store)
        await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(1000)))
        decoded: list[str] = []
        inner = rows.decode_batch

        def decode_batch(r: Any) -> Any:
            decoded.append(r[0])
            return inner(r)

        monkeypatch.setattr(rows, "decode_batch", decode_batch)
        out = await s.queued_turn().run()
        monkeypatch.undo()
        assert out is not None and len(decoded) == 1  # was 64: the claim's read, all decoded
        assert decoded == list(out.result.queued_batch_ids)
        await store.close()

    asyncio.run(body())


def test_a_claim_kept_in_memory_is_in_the_file_before_anyone_else_can_read_it(tmp_path: Path) -> None:
    """Between the claim and the turn's first commit the file may be handed to another
    process, or a user may query it: the claim is written first, so the batch reads as
    claimed and nobody else can take it."""
    async def body() -> None:
        path = tmp_path / "nb.duckdb"
        store = DuckDBStore(path)
        s = await _open(store)
        batch = await s.enqueue("mine").send()
        lease = await store.try_acquire_lease("s", "host:1:me")
        claim = await store.claim_queued_work(lease)
        assert claim is not None and claim.batch_ids == (batch.batch_id,)
        [(claim_id, attempts)] = store.query(
            "SELECT claim_id, attempts FROM queued_work_batches").values.tolist()
        assert (claim_id, attempts) == (claim.claim_id, 1)
        await store.release_file()
        other = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", _OTHER_PROCESS, str(path)], capture_output=True, text=True,
            timeout=300, env={**os.environ, "PYTHONPATH": _pythonpath()})
        assert other.returncode == 0, other.stderr[-2000:]
        assert other.stdout.split() == ["busy", "claimed", "0"]
        assert (await store.list_queued_work("s", include_claimed=True))[0].claim_id == claim.claim_id
        await store.close()

    asyncio.run(body())


def test_a_claim_a_failed_release_could_not_write_is_written_by_the_next_commit(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The release that should write the claim fails (disk full, say): the claim and its
    lease ride into the next hold of this process and the turn's first commit writes them."""
    from lash_nb._store.base import RuntimeCommit, TurnStart
    from lash_nb._store.duckdb import claims
    from lash_nb.testing._conformance_kit import draft, turn_record

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        await store.enqueue(draft("s", "mine"))
        lease = await store.try_acquire_lease("s", "host:1:me")
        claim = await store.claim_queued_work(lease)
        assert claim is not None
        failed: list[int] = []

        def write_all(con: Any, hold: Any) -> None:
            failed.append(1)
            raise OSError("no space left on device")

        monkeypatch.setattr(claims, "write_all", write_all)
        await store.release_file()
        monkeypatch.undo()
        assert failed == [1] and not store.holding_file
        await store.commit(RuntimeCommit("s", lease, turn_started=TurnStart("t1", 1)))
        [(claim_id, attempts)] = store.query(
            "SELECT claim_id, attempts FROM queued_work_batches").values.tolist()
        assert (claim_id, attempts) == (claim.claim_id, 1)
        await store.commit(RuntimeCommit("s", lease, turn=turn_record("t1"),
                                         completed_claims=(claim,), release_lease=True))
        assert await store.list_queued_work("s", include_claimed=True) == []
        await store.close()

    asyncio.run(body())


_OTHER_PROCESS = """
import asyncio, sys
from lash_nb.stores import DuckDBStore

async def main():
    store = DuckDBStore(sys.argv[1])
    got = await store.try_acquire_lease("s", "host:2:other")
    print("busy" if type(got).__name__ == "LeaseBusy" else "leased")
    [b] = await store.list_queued_work("s", include_claimed=True)
    print(b.status)
    print(len(await store.sessions_with_ready_work()))
    await store.close()

asyncio.run(main())
"""

_KILLED_AFTER_THE_CLAIM = """
import asyncio, os, signal, sys
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb._store.duckdb import commit as commits

inner = commits.commit

def commit(con, hold, c, in_txn):
    if c.turn_started is not None:  # claimed, and about to write the turn's first commit
        os.kill(os.getpid(), signal.SIGKILL)
    return inner(con, hold, c, in_txn)

commits.commit = commit

def model(request):
    raise AssertionError("the model is never called in this process")

async def main():
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").store(sys.argv[1]).build()
    s = await core.session("s").open()
    await s.queued_turn().run()

asyncio.run(main())
"""


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH"))
                           if p)


def _killed(path: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` on the store at ``path`` in a process that kills itself with -9."""
    victim = subprocess.run([sys.executable, "-c", script, path],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": _pythonpath()})
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
    return victim


def _one_batch_queued(path: str) -> tuple[list[str], Any, str]:
    """A file with one batch queued; a model that records the prompts it is shown."""
    seen: list[str] = []

    def model(request: Any) -> str:
        seen.append(request.messages[-1].text())
        return "answered"

    async def enqueue() -> str:
        store = DuckDBStore(path)
        s = await _open(store, model)
        batch = await s.enqueue("the prompt").send()
        await store.close()
        return str(batch.batch_id)

    return seen, model, asyncio.run(enqueue())


def test_a_drain_killed_between_its_claim_and_its_first_commit_runs_the_batch_once_after_reopen(
        tmp_path: Path) -> None:
    path = str(tmp_path / "nb.duckdb")
    seen, model, batch_id = _one_batch_queued(path)
    _killed(path, _KILLED_AFTER_THE_CLAIM)

    async def reopen() -> None:
        store = DuckDBStore(path)
        s = await _open(store, model)
        [pending] = await s.queued_work()
        # nothing of the killed drain reached the file: no attempt counted, no turn
        assert (pending.batch_id, pending.status, pending.attempts) == (batch_id, "pending", 0)
        assert await store.load_turns("s") == []
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (batch_id,)
        assert await s.queued_turn().run() is None  # once
        assert seen == ["the prompt"]
        await _ran_once_then_close(store, batch_id)

    asyncio.run(reopen())


async def _ran_once_then_close(store: DuckDBStore, batch_id: str) -> None:
    """One finished turn and one completed history row, first attempt; then close."""
    assert [t.outcome for t in await store.load_turns("s")] == ["finished"]
    history = store.query("SELECT batch_id, final_state, attempts FROM queue_history")
    assert history.values.tolist() == [[batch_id, "completed", 1]]
    await store.close()


# ---------------------------------------------------------------------- enqueue bursts
def test_a_burst_of_enqueues_wakes_the_waiting_loop_once_per_write_not_once_per_batch(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A script queues 300 follow-ups with ``gather``: the store thread hands the results back
    to the loop together (each cross-thread wake-up is a syscall and a GIL hand-off)."""
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb")
        s = await _open(store)
        loop = asyncio.get_running_loop()
        woken = []
        inner = loop.call_soon_threadsafe

        def call_soon_threadsafe(*a: Any, **kw: Any) -> Any:
            woken.append(a[0])
            return inner(*a, **kw)

        monkeypatch.setattr(loop, "call_soon_threadsafe", call_soon_threadsafe)
        got = await asyncio.gather(*(s.enqueue(f"burst {i}").send() for i in range(300)))
        monkeypatch.undo()
        assert [b.text for b in got] == [f"burst {i}" for i in range(300)]
        assert len(woken) < 30, len(woken)  # one per write of the burst (was one per batch)
        await store.close()

    asyncio.run(body())


def test_the_batches_a_burst_returns_are_the_ones_stored_with_or_without_arrow(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The burst builds its batches from the drafts instead of reading them back: they must
    equal what a listing (and a fresh process) reads, field by field, on both insert paths."""
    from lash_nb._store.duckdb import arrow, queued_work

    async def body(path: Path) -> None:
        store = DuckDBStore(path)
        s = await _open(store)
        got = await asyncio.gather(
            *(s.enqueue(f"burst {i}").send() for i in range(50)),
            s.enqueue("soon").delivery_policy("earliest_safe_boundary").merge_key("m").send())
        assert len({b.enqueue_seq for b in got}) == 51
        listed = await store.list_queued_work("s")
        assert sorted(got, key=lambda b: b.enqueue_seq) == listed
        await store.close()
        again = DuckDBStore(path)
        assert await again.list_queued_work("s") == listed
        await again.close()

    arrow.import_arrow()
    asyncio.run(body(tmp_path / "arrow.duckdb"))
    monkeypatch.setattr(queued_work, "arrow_ready", lambda: False)
    asyncio.run(body(tmp_path / "lists.duckdb"))


# ---------------------------------------------------------------------- PostgreSQL
def test_postgres_a_drain_costs_a_plain_turn_plus_its_claim_flat_in_depth(
        pg_dsn: str, monkeypatch: Any) -> None:
    """On PostgreSQL other processes share the database, so the claim stays a transaction of
    its own; everything else of a drain is a plain turn's (the lease is taken once, not
    again when no session command ran)."""
    import psycopg

    from lash_nb.stores import PostgresStore

    sent: list[str] = []
    execute, transaction = psycopg.AsyncConnection.execute, psycopg.AsyncConnection.transaction

    async def counted_execute(self: Any, query: Any, *a: Any, **kw: Any) -> Any:
        sent.append(" ".join(str(query).split()))
        return await execute(self, query, *a, **kw)

    def counted_transaction(self: Any, *a: Any, **kw: Any) -> Any:
        sent.append("BEGIN")
        return transaction(self, *a, **kw)

    async def body() -> None:
        store = PostgresStore(pg_dsn)
        try:
            s = await _open(store)
            await s.turn("warm").run()
            monkeypatch.setattr(psycopg.AsyncConnection, "execute", counted_execute)
            monkeypatch.setattr(psycopg.AsyncConnection, "transaction", counted_transaction)
            plain = await _statements_of(sent, s.turn("plain").run())
            await s.enqueue("first").send()
            shallow = await _statements_of(sent, s.queued_turn().run())
            monkeypatch.undo()
            await asyncio.gather(*(s.enqueue(f"deep {i}").send() for i in range(1000)))
            monkeypatch.setattr(psycopg.AsyncConnection, "execute", counted_execute)
            monkeypatch.setattr(psycopg.AsyncConnection, "transaction", counted_transaction)
            deep = await _statements_of(sent, s.queued_turn().run())
            monkeypatch.undo()
            assert deep == shallow  # flat in depth
            begins = [q for q in deep if q == "BEGIN"]
            assert len(begins) == sum(q == "BEGIN" for q in plain) + 1  # + the claim
            leases = [q for q in deep if q.startswith("UPDATE execution_leases SET owner_id = %s")]
            assert len(leases) == 1  # taken once
            assert len(await s.queued_work()) == 999
        finally:
            await store.close()

    asyncio.run(body())


_KILLED_IN_THE_MODEL_CALL = """
import asyncio, sys, time
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider

async def model(request):
    with open(sys.argv[2], "w") as f:  # the claim is written by now, with the progress commit
        f.write("in the model call")
    await asyncio.sleep(3600)

async def main():
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").store(sys.argv[1]).build()
    s = await core.session("s").open()
    await s.queued_turn().run()

asyncio.run(main())
"""


def test_a_drain_killed_in_its_model_call_leaves_a_claim_the_next_lease_does_not_mistake_for_its_own(
        tmp_path: Path) -> None:
    """The claim reached the file with the progress commit, the lease row did not (it is
    written at the release, which never came): the next process's lease must not take the
    dead claim's generation, or the batch would look claimed by the new holder and never run."""
    from browser_harness import wait_until

    path, flag = str(tmp_path / "nb.duckdb"), tmp_path / "in-model-call"
    seen, model, batch_id = _one_batch_queued(path)
    victim = subprocess.Popen([sys.executable, "-c", _KILLED_IN_THE_MODEL_CALL, path, str(flag)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": _pythonpath()})
    try:
        wait_until(lambda: flag.exists() or victim.poll() is not None, timeout=120,
                   what="the drain to reach its model call")
        assert victim.poll() is None
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)

    async def reopen() -> None:
        store = DuckDBStore(path)
        # a worker's first move on the session: its lease, then a claim (no turn between)
        lease = await store.try_acquire_lease("s", "host:1:worker")
        [stale] = await store.list_queued_work("s")  # the dead claim does not hold it
        assert (stale.batch_id, stale.status, stale.attempts) == (batch_id, "pending", 1)
        claim = await store.claim_queued_work(lease)
        assert claim is not None and claim.batch_ids == (batch_id,)
        await store.abandon_claim(claim)
        await store.release_lease(lease)
        s = await _open(store, model)
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (batch_id,)
        assert seen == ["the prompt"]
        history = store.query("SELECT final_state, attempts FROM queue_history")
        assert history.values.tolist() == [["completed", 3]]  # killed, given back, completed
        await store.close()

    asyncio.run(reopen())


# ---------------------------------------------------------------------- logged queue rows (ADR 0106)
def test_before_the_fold_every_reader_sees_a_drained_batch_gone_and_its_key_free(
        tmp_path: Path) -> None:
    """A drain's claim and completion ride in its commits' log rows and fold later: until
    then the listing, a cancel, the ready sessions, a recount and a keyed enqueue must all
    read the batch as gone, as they did when the rows were deleted with the commit."""
    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)  # no fold in between
        s = await _open(store)
        done = await s.enqueue("keyed").id("k").send()
        behind = await s.enqueue("behind").send()
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (done.batch_id,)
        assert store.unfolded_commits > 0  # still only in the log
        assert [b.batch_id for b in await s.queued_work()] == [behind.batch_id]
        assert await store.cancel_queued_work_batch("s", done.batch_id) is None
        hold = store._worker.hold
        hold.queue_sizes.clear()  # a recount (after a rolled-back job, say)
        hold.early_sizes.clear()
        assert [b.batch_id for b in await s.queued_work()] == [behind.batch_id]
        assert await store.sessions_with_ready_work() == ["s"]  # for `behind` only
        again = await s.enqueue("keyed again").id("k").send()  # the key is free
        assert again.batch_id != done.batch_id
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (behind.batch_id,)
        out = await s.queued_turn().run()
        assert out is not None and out.result.queued_batch_ids == (again.batch_id,)
        assert await s.queued_turn().run() is None
        assert await store.sessions_with_ready_work() == []
        history = store.query(  # folds: each batch completed once, its first attempt
            "SELECT batch_id, final_state, attempts FROM queue_history ORDER BY enqueue_seq")
        assert history.values.tolist() == [[done.batch_id, "completed", 1],
                                           [behind.batch_id, "completed", 1],
                                           [again.batch_id, "completed", 1]]
        assert store.query("SELECT count(*) FROM queued_work_batches").values.tolist() == [[0]]
        await store.close()

    asyncio.run(body())


_KILLED_AFTER_THE_DRAIN = """
import asyncio, os, signal, sys
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

async def main():
    store = DuckDBStore(sys.argv[1], fold_idle_s=None)  # the drain's rows stay in the log
    core = LashCore.builder().provider(FunctionProvider(lambda r: "answered")).model("m") \\
        .store(store).build()
    s = await core.session("s").open()
    out = await s.queued_turn().run()
    assert out is not None and store.unfolded_commits >= 2
    print("drained", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_a_process_killed_after_its_drain_committed_but_before_the_fold_ran_the_batch_once(
        tmp_path: Path) -> None:
    """The completion is only in ``commit_log`` when the kernel dies: the next open folds it,
    so the batch is completed once (history row, attempt 1), not run again."""
    path = str(tmp_path / "nb.duckdb")
    seen, model, batch_id = _one_batch_queued(path)
    victim = _killed(path, _KILLED_AFTER_THE_DRAIN)
    assert victim.stdout.split() == ["drained"]

    async def reopen() -> None:
        store = DuckDBStore(path)
        s = await _open(store, model)
        assert await s.queued_work() == []
        assert await s.queued_turn().run() is None  # nothing to run again
        assert seen == []
        await _ran_once_then_close(store, batch_id)

    asyncio.run(reopen())


def test_a_logged_claim_of_a_runtime_that_lost_its_lease_counts_its_attempt_before_the_fold(
        tmp_path: Path) -> None:
    """The drain's progress commit logged its claim, then its lease was lost (taken over by
    another runtime of this process): the batch reads pending with that attempt counted, the
    next claim takes it as its second attempt, and the fold does not count either twice."""
    from lash_nb._store.base import RuntimeCommit, TurnStart
    from lash_nb.testing._conformance_kit import draft, turn_record

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)
        batch = await store.enqueue(draft("s", "mine"))
        first = await store.try_acquire_lease("s", "host:1:first")
        claim = await store.claim_queued_work(first)
        assert claim is not None
        await store.commit(RuntimeCommit("s", first, turn_started=TurnStart("t1", 1)))
        assert store.unfolded_commits > 0  # the claim is only in the log
        await store.release_lease(first)  # lost without completing
        second = await store.try_acquire_lease("s", "host:1:second")
        [pending] = await store.list_queued_work("s", include_claimed=True)
        assert (pending.batch_id, pending.status, pending.attempts) == (batch.batch_id, "pending", 1)
        again = await store.claim_queued_work(second)
        assert again is not None and again.batch_ids == (batch.batch_id,)
        assert again.batches[0].attempts == 2
        await store.commit(RuntimeCommit("s", second, turn=turn_record("t2"),
                                         completed_claims=(again,), release_lease=True))
        history = store.query("SELECT final_state, attempts FROM queue_history")
        assert history.values.tolist() == [["completed", 2]]
        await store.close()

    asyncio.run(body())


def test_a_memory_drain_looks_at_the_same_rows_at_depth_one_and_a_thousand(monkeypatch: Any) -> None:
    """A notebook on the memory store queues a thousand follow-ups: each drain's claim looks
    at its exclusive head, not at the 63 rows behind it (ADR 200), unless one of them was
    claimed before and may have used up its attempts: then it is parked as before."""
    from lash_nb._store import memory
    from lash_nb.stores import MemoryStore

    looked: list[int] = []
    inner = memory.attempts_exhausted

    def attempts_exhausted(attempts: int, max_attempts: int) -> bool:
        looked.append(attempts)
        return inner(attempts, max_attempts)

    async def looks_per_drain(depth: int) -> int:
        s = await _open(MemoryStore())
        await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(depth)))
        monkeypatch.setattr(memory, "attempts_exhausted", attempts_exhausted)
        looked.clear()
        out = await s.queued_turn().run()
        monkeypatch.undo()
        assert out is not None and len(await s.queued_work()) == depth - 1
        return len(looked)

    async def body() -> None:
        assert await looks_per_drain(1000) == await looks_per_drain(2)  # 66 against 4 before ADR 200

        store = MemoryStore()  # a batch behind the head that runtimes died holding is parked
        s = await _open(store)
        head, spent = await s.enqueue("head").send(), await s.enqueue("spent").send()
        for owner in ("host:1:a", "host:1:b"):
            lease = await store.try_acquire_lease("s", owner)
            claim = await store.claim_queued_work(lease, batch_ids=[spent.batch_id])
            assert claim is not None and claim.batch_ids == (spent.batch_id,)
            await store.renew_lease(lease, ttl_ms=0)  # its process died
        lease = await store.try_acquire_lease("s", "host:1:c")
        claim = await store.claim_queued_work(lease, max_attempts=2)
        assert claim is not None and claim.batch_ids == (head.batch_id,)
        listed = {b.batch_id: b.status for b in await store.list_queued_work("s", include_claimed=True)}
        assert listed[spent.batch_id] == "failed"

    asyncio.run(body())


def test_a_duckdb_drain_reads_the_same_rows_at_depth_twenty_and_a_thousand(tmp_path: Path) -> None:
    """A notebook queues a thousand follow-ups on DuckDB: each drain's claim read the first 64
    ready rows of the session, sorting every queued row of it to find them (~0.9 ms at 1,000).
    Now it reads a window of the hold's queue index (ADR 200): as many rows at any depth."""
    from lash_nb._store.duckdb.rows import BATCH_COLS

    async def matched(depth: int) -> int:
        store = DuckDBStore(tmp_path / f"d{depth}.duckdb", fold_idle_s=None)
        s = await _open(store)
        await s.turn("warm").run()
        await asyncio.gather(*(s.enqueue(f"q {i}").send() for i in range(depth)))
        seen: list[tuple[str, Any]] = []

        def install(con: Any) -> None:
            inner = con.execute

            class Recording:
                def execute(self, sql: str, *args: Any) -> Any:
                    seen.append((sql, args))
                    return inner(sql, *args)

                def __getattr__(self, name: str) -> Any:
                    return getattr(con, name)

            store._worker._con = Recording()

        store._worker.submit(install).result()
        out = await s.queued_turn().run()
        assert out is not None and len(await s.queued_work()) == depth - 1
        [(sql, args)] = [(q, a) for q, a in seen  # the claim's read (not the listing's)
                         if q.startswith(f"SELECT {BATCH_COLS} FROM") and "$sid" in q]
        where = sql[len(f"SELECT {BATCH_COLS} FROM"):].split(" ORDER BY")[0]
        params = {k: v for k, v in args[0].items() if f"${k}" in where}  # not the LIMIT's
        rows = store._worker.submit(
            lambda con: con.execute(f"SELECT count(*) FROM {where}", params).fetchone()[0]).result()
        await store.close()
        return int(rows)

    async def body() -> None:
        assert await matched(1000) == await matched(20)  # 1000 against 20 before ADR 200

    asyncio.run(body())
