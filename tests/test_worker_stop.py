"""A queue worker asked to stop in the middle of a user's queued turn: ``systemctl stop`` or a
container stop (SIGTERM), Ctrl-C in the terminal running ``python -m lash_nb worker``
(SIGINT). The user expects what ``kill -9`` already gave: the batch is back in the queue
and the next worker runs it to completion, once, and the prompt is answered. Before
(docs/adr/0158) the cut turn committed ``stopped: cancelled`` and that completed the batch:
the prompt was never answered and nothing ran it again.

Real worker processes on a DuckDB file and on PostgreSQL; the turn is long (the offline
model streams a word every 0.2 s: ~30 s) and ``--grace 0`` cuts it at once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import test_notebook_magics
from notebook_harness import wait_until

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider

pytestmark = pytest.mark.slow  # a few worker processes each
sh = test_notebook_magics.sh  # the IPython shell fixture, shared

ROOT = Path(__file__).resolve().parents[1]
LONG = " ".join(f"word{i}" for i in range(150))
EX_TEMPFAIL = 75  # the exit status a worker whose stop returned work to the queue gives


def _worker(store: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", store, "--all", "--poll", "0.05",
         *extra], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


class _Reader:
    """SQL on the store from this process: DuckDB only while no worker holds the file."""

    def __init__(self, store: str) -> None:
        self.store = store
        self._pg: Any = None

    def query(self, sql: str) -> list[dict[str, Any]] | None:
        if self.store.startswith("postgresql://"):
            if self._pg is None:
                from lash_nb.stores import PostgresStore

                self._pg = PostgresStore(self.store)
            return list(self._pg.query(sql).to_dict("records"))
        from lash_nb._errors import StoreLockedError
        from lash_nb.stores import DuckDBStore

        try:
            duck = DuckDBStore(self.store, lock_timeout_s=0.3, idle_release_s=0)
        except StoreLockedError:
            return None
        try:
            return list(duck.query(sql).to_dict("records"))
        except StoreLockedError:
            return None
        finally:
            duck.close_sync()

    def settled(self, sql: str) -> list[dict[str, Any]]:
        """``sql`` once the file is free (no worker runs any more when this is called)."""
        got: list[list[dict[str, Any]] | None] = [None]

        def probe() -> bool:
            got[0] = self.query(sql)
            return got[0] is not None

        wait_until(f"the store to answer {sql!r}", probe)
        return list(got[0] or [])

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close_sync()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return str(tmp_path / "queue.duckdb")


@pytest.fixture
def reader(store: str) -> Any:
    r = _Reader(store)
    yield r
    r.close()


def _enqueue(store: str, text: str) -> str:
    async def go() -> str:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        try:
            session = await core.session("s").open()
            return (await session.enqueue(text)).batch_id
        finally:
            await core.store.close()

    return asyncio.run(go())


def _stop_mid_turn(store: str, reader: _Reader, log: Path, sig: signal.Signals,
                   *extra: str) -> tuple[int, str]:
    """Start a worker, wait until it is inside the turn, send ``sig``; its exit status and log."""
    worker = _worker(store, log, "--delay", "0.2", "--grace", "0", *extra)
    try:
        wait_until("the worker to be inside the turn", lambda: reader.query(
            "SELECT turn_id FROM turns WHERE status = 'open'"))
        worker.send_signal(sig)
        status = worker.wait(120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
    return status, log.read_text()


def _result(row: dict[str, Any]) -> dict[str, Any]:
    value = row["result"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _check_back_in_the_queue(reader: _Reader, batch_id: str, stops: int) -> None:
    queued = reader.settled("SELECT batch_id, claim_id, attempts, failed_at_ms, error "
                            "FROM queued_work_batches")
    assert [(r["batch_id"], r["attempts"]) for r in queued] == [(batch_id, 0)]  # uncounted
    for column in ("claim_id", "failed_at_ms", "error"):  # pending, not parked, no error
        assert pd.isna(queued[0][column]), (column, queued[0][column])
    turns = reader.settled("SELECT turn_id, status, outcome, stop_reason, result FROM turns")
    assert len(turns) == stops
    for t in turns:  # the cut turns are committed and say what stopped them
        assert (t["status"], t["outcome"], t["stop_reason"]) == ("committed", "stopped", "cancelled")
        assert t["turn_id"].startswith(f"{batch_id}:g")
        cancellation = _result(t)["cancellation"]
        assert cancellation["origin"] == "worker_shutdown"
        assert "went back to the queue" in cancellation["reason"]
        assert _result(t)["queued_batch_ids"] == []  # it completed nothing


def _check_ran_once_and_answered(store: str, reader: _Reader, batch_id: str) -> None:
    assert reader.settled("SELECT batch_id FROM queued_work_batches") == []
    history = reader.settled("SELECT batch_id, final_state, attempts, turn_id FROM queue_history")
    assert [(h["batch_id"], h["final_state"], h["attempts"]) for h in history] == [
        (batch_id, "completed", 1)]  # one counted claim: the one that ran it to completion
    turns = reader.settled("SELECT turn_id, outcome, stop_reason, result FROM turns")
    finished = [t for t in turns if t["outcome"] == "finished"]
    assert len(finished) == 1 and finished[0]["turn_id"] == history[0]["turn_id"]
    assert finished[0]["turn_id"].startswith(f"{batch_id}:g")
    answer = _result(finished[0])["assistant_output"]["safe_text"]
    assert answer.startswith(f"You said: {LONG}"), answer[:200]

    async def path() -> list[tuple[str, str]]:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        try:
            session = await core.session("s").open()
            return [(m.role.value, m.text()) for m in session.state.graph.view()]
        finally:
            await core.store.close()

    # the active path holds the prompt once and its answer: the cut turns are side branches
    active = asyncio.run(path())
    assert [role for role, _ in active] == ["user", "assistant"], active
    assert active[0][1] == LONG and active[1][1] == answer


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_stopped_mid_turn_returns_the_batch_and_the_next_worker_answers_it(
        store: str, reader: _Reader, sig: signal.Signals, tmp_path: Path) -> None:
    batch_id = _enqueue(store, LONG)
    status, log = _stop_mid_turn(store, reader, tmp_path / "stopped.log", sig)
    _check_back_in_the_queue(reader, batch_id, stops=1)
    assert status == EX_TEMPFAIL, log
    returned = [line for line in log.splitlines() if "returned to the queue" in line]
    assert any(batch_id in line and line.startswith("worker stopped:") for line in returned), log
    assert any(line.startswith("worker done:") and batch_id in line for line in returned), log

    survivor = _worker(store, tmp_path / "next.log", "--exit-when-idle", "1")
    assert survivor.wait(180) == 0, (tmp_path / "next.log").read_text()
    _check_ran_once_and_answered(store, reader, batch_id)


def test_three_restarts_of_the_worker_do_not_park_the_batch(tmp_path: Path) -> None:
    """A deploy that restarts the worker three times in the middle of the same turn, with
    ``--max-attempts 2``: the batch is not parked failed, and the fourth worker answers it."""
    store = str(tmp_path / "deploy.duckdb")
    reader = _Reader(store)
    batch_id = _enqueue(store, LONG)
    for i in range(3):
        status, log = _stop_mid_turn(store, reader, tmp_path / f"stop{i}.log", signal.SIGTERM,
                                     "--max-attempts", "2")
        _check_back_in_the_queue(reader, batch_id, stops=i + 1)
        assert status == EX_TEMPFAIL, log
    last = _worker(store, tmp_path / "last.log", "--max-attempts", "2", "--exit-when-idle", "1")
    assert last.wait(180) == 0, (tmp_path / "last.log").read_text()
    _check_ran_once_and_answered(store, reader, batch_id)


def test_a_worker_stopped_while_idle_exits_0_and_says_nothing_returned(tmp_path: Path) -> None:
    store = str(tmp_path / "idle.duckdb")
    reader = _Reader(store)
    batch_id = _enqueue(store, "short")
    worker = _worker(store, tmp_path / "idle.log")
    try:
        wait_until("the batch to run", lambda: reader.query(
            "SELECT 1 FROM queue_history WHERE final_state = 'completed'"))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(120) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
    log = (tmp_path / "idle.log").read_text()
    assert "returned to the queue" not in log
    assert f"s {batch_id}:g" in log


def test_after_ctrl_c_of_the_worker_the_notebook_sees_the_batch_queued_and_drain_answers_it(
        sh: Any, tmp_path: Path) -> None:
    """The user's side: Ctrl-C in the worker's terminal; then in the notebook ``%lash queue
    --df`` lists the prompt as waiting (not claimed) and ``%lash drain`` answers it."""
    path = tmp_path / "shared.duckdb"
    reader = _Reader(str(path))
    batch_id = _enqueue(str(path), LONG)
    status, log = _stop_mid_turn(str(path), reader, tmp_path / "ctrl-c.log", signal.SIGINT)
    sh.run_cell(f"%config LashMagics.store = '{path}'")
    sh.run_cell("%lash open s")
    queued = sh.run_cell("%lash queue --df")
    assert queued[["batch_id", "text", "claimed"]].values.tolist() == [[batch_id, LONG, False]]
    assert status == EX_TEMPFAIL, log
    sh.run_cell("r = %lash drain")
    [answered] = sh.user_ns["r"]
    assert str(answered.outcome) == "finished: assistant_message"
    assert answered.queued_batch_ids == (batch_id,)
    assert answered.assistant_output.safe_text.startswith(f"You said: {LONG}")
    assert sh.run_cell("%lash queue --df").values.tolist() == []
