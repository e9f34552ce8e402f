"""A queue worker (``python -m lash_nb worker --store postgresql://...``) while its
PostgreSQL server restarts: it keeps going, and every queued batch is answered exactly once
(docs/adr/0170). Each test runs a server of its own (``own_pg_server``) so it can restart it.

The worker's idle lanes sleep on LISTEN/NOTIFY: before ADR 0170 a lane that was waiting when
the server restarted slept its whole poll interval (the listener's connection was gone and
nothing woke it), however much work came in meanwhile.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from notebook_harness import wait_until

from lash_nb._runtime.core import LashCore
from lash_nb.providers import OfflineProvider

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def _worker(dsn: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lash_nb", "worker", "--store", dsn, "--all", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def _rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows read on a connection of the test's own; none while the server is away."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as con:
            return con.execute(sql).fetchall()
    except psycopg.OperationalError:
        return []


def _completed(dsn: str) -> int:
    got = _rows(dsn, "SELECT count(*) FROM queue_history WHERE final_state = 'completed'")
    return int(got[0][0]) if got else -1


async def _enqueue(dsn: str, texts: list[tuple[str, str]]) -> list[str]:
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(dsn).build()
    try:
        ids = []
        for sid, text in texts:
            session = await core.session(sid).open()
            ids.append((await session.enqueue(text)).batch_id)
        return ids
    finally:
        await core.store.close()


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.send_signal(signal.SIGTERM)
    return worker.wait(60)


def _assert_each_batch_answered_once(dsn: str, batch_ids: list[str]) -> None:
    turns = _rows(dsn, "SELECT turn_id, status, outcome, stop_reason FROM turns")
    # <first batch id>:g<generation>: an attempt cut on its way (its lease lost while a loaded
    # machine could not renew it in time) is committed stopped and the batch runs again
    answered = [t.rsplit(":g", 1)[0] for t, _, o, _ in turns if o == "finished"]
    assert sorted(answered) == sorted(batch_ids), turns  # every batch once, none twice
    assert {s for _, s, _, _ in turns} == {"committed"}, turns
    assert {o for _, _, o, _ in turns} <= {"finished", "stopped"}, turns
    history = _rows(dsn, "SELECT batch_id, final_state FROM queue_history")
    assert sorted(b for b, _ in history) == sorted(batch_ids)
    assert {f for _, f in history} == {"completed"}
    assert _rows(dsn, "SELECT count(*) FROM queued_work_batches") == [(0,)]


@pytest.mark.parametrize("how", ["restart", "terminate"])
def test_a_worker_answers_every_batch_once_across_server_restarts(
        own_pg_server, tmp_path, how):
    dsn = own_pg_server.create_database()
    db = dsn.rsplit("/", 1)[1]
    first = asyncio.run(_enqueue(dsn, [(f"s{i % 3}", f"before {i}") for i in range(12)]))
    log = tmp_path / "worker.log"
    worker = _worker(dsn, log, "--delay", "0.02", "--concurrency", "2",
                     "--lease-ttl-ms", "3000")
    try:
        for round_ in range(3):  # the server goes away three times while turns run
            wait_until("the worker to answer some batches",
                       lambda r=round_: _completed(dsn) >= 3 * (r + 1), timeout=120)
            if how == "restart":
                own_pg_server.restart()
            else:
                own_pg_server.terminate_backends(db)
        later = asyncio.run(_enqueue(dsn, [(f"s{i % 3}", f"after {i}") for i in range(6)]))
        wait_until("every batch to be answered", lambda: _completed(dsn) == 18, timeout=180)
        assert worker.poll() is None, log.read_text()  # it kept going
    finally:
        status = _stop(worker)
    assert status == 0, log.read_text()
    _assert_each_batch_answered_once(dsn, first + later)


def test_an_idle_worker_wakes_for_work_enqueued_after_a_restart(own_pg_server, tmp_path):
    """``--poll 600``: the lane sleeps on LISTEN/NOTIFY. The server restarts while it sleeps;
    then a batch is enqueued. The listener connects again and the lane runs it (before, it
    slept the 600 s out)."""
    dsn = own_pg_server.create_database()
    first = asyncio.run(_enqueue(dsn, [("s", "before the restart")]))
    log = tmp_path / "worker.log"
    worker = _worker(dsn, log, "--poll", "600")
    try:
        wait_until("the first batch to be answered", lambda: _completed(dsn) == 1, timeout=60)
        own_pg_server.restart()
        later = asyncio.run(_enqueue(dsn, [("s", "after the restart")]))
        wait_until("the batch enqueued after the restart to be answered",
                   lambda: _completed(dsn) == 2, timeout=90)
        assert worker.poll() is None, log.read_text()
    finally:
        status = _stop(worker)
    assert status == 0, log.read_text()
    _assert_each_batch_answered_once(dsn, first + later)


def test_a_stop_sent_after_a_restart_reaches_the_turn_running_in_a_worker(
        own_pg_server, tmp_path):
    """The server restarts while a worker streams a long turn; then the user stops it from
    another process. The worker's listener is back (or finds the request once it is), so
    the turn ends ``stopped: cancelled`` (before, the Stop never arrived and the turn ran
    to its end)."""
    dsn = own_pg_server.create_database()
    long_prompt = " ".join(f"word{i}" for i in range(400))  # ~400 words at 50 ms: ~20 s
    (batch_id,) = asyncio.run(_enqueue(dsn, [("s", long_prompt)]))
    log = tmp_path / "worker.log"
    worker = _worker(dsn, log, "--delay", "0.05")
    try:
        (turn_id,) = wait_until("the turn to start in the worker", lambda: [r[0] for r in _rows(
            dsn, "SELECT turn_id FROM turns WHERE status = 'open'")], timeout=60)
        own_pg_server.restart()

        async def stop() -> bool:
            core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(dsn).build()
            try:
                session = await core.session("s").open()
                return await session.request_turn_cancel(turn_id)
            finally:
                await core.store.close()

        assert asyncio.run(stop()) is True
        wait_until("the turn's terminal commit", lambda: _rows(
            dsn, "SELECT 1 FROM turns WHERE status = 'committed'"), timeout=120)
    finally:
        status = _stop(worker)
    assert _rows(dsn, "SELECT turn_id, outcome, stop_reason FROM turns") == [
        (turn_id, "stopped", "cancelled")]
    assert turn_id.startswith(batch_id)
    assert status == 0, log.read_text()
