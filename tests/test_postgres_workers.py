"""Queue workers in separate processes on one PostgreSQL store: 3 workers and 1 enqueuer
drain 300 batches over 30 sessions exactly once and in order; a worker killed mid-turn has
its claims run by the others; and a Stop from another process cancels a turn running in a worker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lash_nb._runtime.core import LashCore
from lash_nb.providers import OfflineProvider

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def _worker(dsn: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lash_nb", "worker", "--store", dsn, "--all", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def _wait_until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll a condition held in another process (the database) until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _core(dsn: str) -> LashCore:
    return LashCore.builder().provider(OfflineProvider(delay_s=0)).store(dsn).build()


async def _enqueue_round_robin(core: LashCore, sessions: int, per_session: int
                               ) -> dict[str, list[str]]:
    """One enqueuer feeding many sessions; returns each session's batch ids in order."""
    handles = [await core.session(f"s{k:02d}").open() for k in range(sessions)]
    order: dict[str, list[str]] = {s.session_id: [] for s in handles}
    for i in range(per_session):
        for s in handles:
            order[s.session_id].append((await s.enqueue(f"{s.session_id} batch {i}")).batch_id)
    return order


def _drained(store: Any) -> tuple[Any, Any, int]:
    turns = store.query("SELECT session_id, turn_id, status, outcome, stop_reason FROM turns "
                        "ORDER BY session_id, seq")
    history = store.query("SELECT batch_id, final_state FROM queue_history")
    pending = int(store.query("SELECT count(*) AS n FROM queued_work_batches")["n"][0])
    return turns, history, pending


def _batch_of(turn_id: str) -> str:
    """A drained turn's id is ``<first batch id>:g<lease generation>``."""
    return turn_id.rsplit(":g", 1)[0]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.kill()
            w.wait(10)


# ~20 streamed words at 4 ms: a turn takes ~0.1 s, long enough to be killed inside one
WORKER_ARGS = ("--delay", "0.004", "--concurrency", "2", "--lease-ttl-ms", "3000")


def test_three_workers_and_one_enqueuer_run_300_batches_once_each_in_session_order(
    pg_dsn: str, tmp_path: Path
) -> None:
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [_worker(pg_dsn, log, *WORKER_ARGS, "--exit-when-idle", "1.5") for log in logs]
    core = _core(pg_dsn)
    store = core.store
    try:
        enqueued = asyncio.run(_enqueue_round_robin(core, 30, 10))
        for w in workers:
            assert w.wait(120) == 0, "a worker failed"
        turns, history, pending = _drained(store)
    finally:
        _stop(workers)
        store.close_sync()
    all_batches = {b for ids in enqueued.values() for b in ids}
    assert len(all_batches) == 300
    # each batch ran exactly once to a terminal commit: one committed turn per batch
    assert len(turns) == 300 and {_batch_of(t) for t in turns["turn_id"]} == all_batches
    assert set(turns["status"]) == {"committed"}
    assert set(zip(turns["outcome"], turns["stop_reason"], strict=True)) == {("finished", "assistant_message")}
    assert sorted(history["batch_id"]) == sorted(all_batches)
    assert set(history["final_state"]) == {"completed"}
    assert pending == 0
    for sid, ids in enqueued.items():  # order within a session: committed in enqueue order
        assert [_batch_of(t) for t in turns[turns["session_id"] == sid]["turn_id"]] == ids, sid
    ran = [line for log in logs for line in log.read_text().splitlines() if " finished" in line]
    assert len(ran) == 300  # no worker ran a batch another one also ran
    assert all(log.read_text().count(" finished") > 0 for log in logs)  # all three took work


def test_claims_of_a_worker_killed_mid_turn_are_run_by_the_others(
    pg_dsn: str, tmp_path: Path
) -> None:
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [_worker(pg_dsn, log, *WORKER_ARGS) for log in logs]
    victim = workers[0]
    core = _core(pg_dsn)
    store = core.store
    try:
        enqueued = asyncio.run(_enqueue_round_robin(core, 6, 10))

        def victim_turn() -> list[tuple[str, str]]:
            df = store.query(
                "SELECT t.session_id, t.turn_id FROM turns t JOIN execution_leases l "
                "USING (session_id) WHERE t.status = 'open' AND l.token IS NOT NULL "
                "AND split_part(l.owner_id, ':', 2) = ?", [str(victim.pid)])
            return list(zip(df["session_id"], df["turn_id"], strict=True))

        _wait_until("the victim worker to be inside a turn", victim_turn)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        # the turns open under the dead worker's leases: read after its death (a turn seen
        # before the kill may have committed in between and another begun)
        killed = victim_turn()

        def settled() -> bool:
            if "TurnCommitConflict" in "".join(log.read_text() for log in logs[1:]):
                raise AssertionError("a re-run batch cannot commit: TurnCommitConflict")
            return _drained(store)[2] == 0 and not len(store.query(
                "SELECT 1 FROM turns WHERE status = 'open'"))

        _wait_until("the survivors to drain the queue", settled, timeout=60)
        turns, history, _ = _drained(store)
    finally:
        _stop(workers)
        store.close_sync()
    all_batches = {b for ids in enqueued.values() for b in ids}
    finished = turns[turns["outcome"] == "finished"]
    assert sorted(history["batch_id"]) == sorted(all_batches)  # each batch completed once
    assert len(finished) == 60
    survivors_log = "".join(log.read_text() for log in logs[1:])
    lost = turns[turns["stop_reason"] == "runtime_error"]
    lost_turns = set(zip(lost["session_id"], lost["turn_id"], strict=True))
    # the victim may have been inside a turn on each of its two lanes when it was killed
    assert set(killed) == lost_turns and len(lost_turns) <= 2
    for sid, tid in lost_turns:  # each killed turn's batch was run again by a survivor,
        assert f"{sid} {_batch_of(tid)}:g" in survivors_log  # under a new lease generation
        assert f"{sid} {tid} " not in survivors_log


def test_stop_from_another_process_cancels_a_turn_running_in_a_worker(
    pg_dsn: str, tmp_path: Path
) -> None:
    core = _core(pg_dsn)
    store = core.store
    long_prompt = " ".join(f"word{i}" for i in range(200))  # ~210 words at 50 ms: ~10 s
    worker = _worker(pg_dsn, tmp_path / "worker.log", "--delay", "0.05")
    try:
        async def enqueue() -> str:
            session = await core.session("s1").open()
            return (await session.enqueue(long_prompt)).batch_id

        batch_id = asyncio.run(enqueue())
        started = _wait_until("the turn to start in the worker", lambda: list(store.query(
            "SELECT turn_id FROM turns WHERE session_id = 's1' AND status = 'open'")["turn_id"]))
        turn_id = started[0]
        assert _batch_of(turn_id) == batch_id

        async def stop() -> bool:
            other = _core(pg_dsn)
            try:
                session = await other.session("s1").open()
                return await session.request_turn_cancel(turn_id)
            finally:
                await other.store.close()

        assert asyncio.run(stop()) is True
        row = _wait_until("the turn's terminal commit", lambda: store.query(
            "SELECT outcome, stop_reason, duration_ms FROM turns WHERE turn_id = ? "
            "AND status = 'committed'", [turn_id]).to_dict("records"), timeout=120)
        # the user's Stop ends the batch for good (a worker's own stop would return it)
        left = store.query("SELECT batch_id FROM queued_work_batches")["batch_id"].tolist()
        history = store.query("SELECT final_state, turn_id FROM queue_history").values.tolist()
    finally:
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(30)
        store.close_sync()
    assert (row[0]["outcome"], row[0]["stop_reason"]) == ("stopped", "cancelled")
    assert left == [] and history == [["completed", turn_id]]
    log = (tmp_path / "worker.log").read_text()
    assert status == 0 and "returned to the queue" not in log, log
