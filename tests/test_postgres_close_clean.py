"""Closing a PostgreSQL store, and stopping a PostgreSQL queue worker, leaves nothing behind
that Python reports at exit: a worker's log once ended with "Task was destroyed but it is
pending!" after its stop. A store's connections live on a private io loop (``_store/postgres/
io.py``); closing stopped that loop with any job still on it (a query in flight, a listener
started as the store closed) and never closed the loop, so the pending task and the loop were
reported when collected. A wait for work started after the close was submitted to the stopped
loop and never ended.

Each case runs in a child Python in development mode (``-X dev``: asyncio debug, resource
warnings shown), and its stderr is read."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import test_worker_stop as ws
from notebook_harness import wait_until

pytestmark = pytest.mark.postgres

LEFT_BEHIND = ("Task was destroyed but it is pending", "was never awaited",
               "unclosed event loop", "was deleted while still open", "Exception ignored")

CLOSES = textwrap.dedent('''
    import asyncio, gc, sys
    from lash_nb.stores import PostgresStore

    async def main(dsn):
        # a query still running when the store is closed
        store = PostgresStore(dsn)
        query = asyncio.ensure_future(store.query_async("SELECT pg_sleep(2)"))
        await asyncio.sleep(0.5)
        await store.close()
        query.cancel()
        # a worker's wait for work in flight, then the close
        store = PostgresStore(dsn)
        wait = asyncio.ensure_future(store.wait_for_work(5))
        await asyncio.sleep(0.2)
        await store.close()
        wait.cancel()
        # the same wait started just as the store closes
        store = PostgresStore(dsn)
        wait = asyncio.ensure_future(store.wait_for_work(5))
        await asyncio.sleep(0)
        await store.close()
        wait.cancel()
        # a wait for work started after the close returns (no work: False)
        store = PostgresStore(dsn)
        await store.close()
        print("after close:", await store.wait_for_work(0.1))
        # the queue watch's listener, then the close
        store = PostgresStore(dsn)
        await store.queue_changes()
        await store.close()
        gc.collect()

    asyncio.run(main(sys.argv[1]))
    gc.collect()
    print("closed")
''')


def _left_behind(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(s in line for s in LEFT_BEHIND)]


def test_closing_a_postgres_store_leaves_no_pending_task_and_no_open_loop(pg_dsn: str) -> None:
    done = subprocess.run([sys.executable, "-X", "dev", "-c", CLOSES, str(pg_dsn)],
                          capture_output=True, text=True, cwd=ws.ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["after close: False", "closed"], done.stdout
    assert _left_behind(done.stderr) == [], done.stderr[-3000:]


def _dev_worker(store: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-X", "dev", "-m", "lash_nb", "worker", "--store", store, "--all",
         "--poll", "0.05", *extra], cwd=ws.ROOT, stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"))


@pytest.mark.slow
def test_a_postgres_worker_stopped_mid_turn_or_idle_leaves_nothing_behind(
        pg_dsn: str, tmp_path: Path) -> None:
    store = str(pg_dsn)
    reader = ws._Reader(store)
    try:
        batch_id = ws._enqueue(store, ws.LONG)
        # stopped in the middle of a turn, --grace 0
        worker = _dev_worker(store, tmp_path / "cut.log", "--delay", "0.2", "--grace", "0")
        try:
            wait_until("the worker to be inside the turn", lambda: reader.query(
                "SELECT turn_id FROM turns WHERE status = 'open'"))
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(120) == ws.EX_TEMPFAIL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
        cut = (tmp_path / "cut.log").read_text()
        assert f"batch {batch_id} returned to the queue" in cut, cut
        assert _left_behind(cut) == [], cut
        # answers the batch, then stopped while idle (a lane waiting for work)
        worker = _dev_worker(store, tmp_path / "idle.log")
        try:
            wait_until("the batch to be answered", lambda: reader.query(
                "SELECT 1 FROM queue_history WHERE final_state = 'completed'"))
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(120) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
        idle = (tmp_path / "idle.log").read_text()
        assert "worker done: 1 turns" in idle, idle
        assert _left_behind(idle) == [], idle
        # --exit-when-idle: the worker stops itself
        worker = _dev_worker(store, tmp_path / "exit.log", "--exit-when-idle", "0.5")
        assert worker.wait(120) == 0
        gone = (tmp_path / "exit.log").read_text()
        assert _left_behind(gone) == [], gone
    finally:
        reader.close()
