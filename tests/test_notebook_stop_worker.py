"""``%lash stop`` in a notebook while a worker process runs the session's queued turn on
the same DuckDB file: the line says that no turn of this kernel was running, that the store
shows the turn running in that process, and what the user can do. Before, it said
"cancelled 0 running turn(s)" and nothing of the worker."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import test_notebook_magics
from notebook_harness import wait_until

sh = test_notebook_magics.sh  # the IPython shell fixture, shared

pytestmark = pytest.mark.slow


def _worker_with_a_long_turn(sh, path) -> subprocess.Popen:
    """Session ``s`` of ``path`` open here, a long prompt queued, and a worker draining it."""
    sh.run_cell(f"%config LashMagics.store = '{path}'")
    sh.run_cell("%lash open s")
    sh.run_cell("%lash enqueue " + " ".join(f"word{i}" for i in range(400)))
    return subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--session", "s",
         "--delay", "0.05", "--poll", "0.05"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_stop_while_a_worker_runs_the_sessions_turn_names_the_worker(sh, tmp_path, capsys):
    worker = _worker_with_a_long_turn(sh, tmp_path / "shared.duckdb")
    try:
        wait_until("the worker to be inside the turn", lambda: len(sh.run_cell(
            "%lash sql SELECT turn_id FROM turns WHERE status = 'open'")))
        capsys.readouterr()
        sh.run_cell("%lash stop")
        line = capsys.readouterr().out.strip()
        assert worker.poll() is None  # still running its turn: nothing of ours stopped it
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert "\n" not in line, line
    assert "cancelled 0" not in line
    assert line.startswith("no turn of session 's' was running in this kernel"), line
    assert f"process pid {worker.pid}" in line, line
    assert f"kill -TERM {worker.pid}" in line, line


NOTHING_ANYWHERE = ("no turn of session 's' was running in this kernel, nor in another process; "
                    "nothing to stop")


def _stop_after_a_finished_turn(sh, store, capsys) -> str:
    """``%lash stop`` on session ``s`` of ``store`` once its one turn has finished: the line."""
    sh.run_cell(f"%config LashMagics.store = '{store}'")
    sh.run_cell("%lash open s")
    sh.run_cell("%lash turn done already")
    capsys.readouterr()
    sh.run_cell("%lash stop")
    return capsys.readouterr().out.strip()


def test_stop_with_nothing_running_anywhere_says_so(sh, tmp_path, capsys):
    assert _stop_after_a_finished_turn(sh, tmp_path / "quiet.duckdb", capsys) == NOTHING_ANYWHERE


@pytest.mark.postgres
def test_stop_on_postgresql_with_another_owner_holding_the_session_names_it(sh, pg_dsn, capsys):
    """The same reading on a PostgreSQL store: another process's live lease on the session
    (taken here with another owner id, as a worker on another host would)."""
    import asyncio

    from lash_nb.stores import PostgresStore

    assert _stop_after_a_finished_turn(sh, pg_dsn, capsys) == NOTHING_ANYWHERE

    async def hold() -> None:
        other = PostgresStore(pg_dsn)
        await other.try_acquire_lease("s", "elsewhere-host:4242:worker")
        await other.close()

    asyncio.run(hold())
    sh.run_cell("%lash stop")
    line = capsys.readouterr().out.strip()
    assert line.startswith("no turn of session 's' was running in this kernel; the store shows "
                           "its turn running in process pid 4242 on host elsewhere-host"), line


def test_stop_after_the_worker_was_killed_mid_turn_says_it_is_gone_not_to_kill_it(
        sh, tmp_path, capsys):
    """kill -9 of a worker mid-turn leaves its lease row until it expires; ``%lash stop`` read
    it and told the user to ``kill -TERM`` a process that no longer exists."""
    worker = _worker_with_a_long_turn(sh, tmp_path / "shared.duckdb")
    try:
        wait_until("the worker to be inside the turn", lambda: len(sh.run_cell(
            "%lash sql SELECT turn_id FROM turns WHERE status = 'open'")))
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(60)
    capsys.readouterr()
    sh.run_cell("%lash stop")
    line = capsys.readouterr().out.strip()
    assert "\n" not in line, line
    assert "kill -TERM" not in line, line
    assert f"pid {worker.pid}" in line and "no longer runs" in line, line
    assert "%lash open s" in line, line
    sh.run_cell("r = %lash turn after the worker died")
    assert str(sh.user_ns["r"].outcome) == "finished: assistant_message"
