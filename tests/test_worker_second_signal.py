"""Ctrl-C twice in the terminal running ``python -m lash_nb worker`` (or a second SIGTERM from
a supervisor): the user wants the worker to stop now, not after ``--grace``. The first
signal stops taking work and gives the running turn its grace; the second cuts it at once,
the same way the end of the grace does (docs/adr/0158): the cut turn is committed, its batch
goes back to the queue uncounted, the next worker answers it. Before, the second signal did
nothing: the worker waited out the whole grace (here the turn then finished on its own).

Real worker processes on a DuckDB file and on PostgreSQL; ``--grace 600`` and a turn of about
30 s (the offline model streams a word every 0.2 s)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import test_worker_stop as ws
from notebook_harness import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    store = (str(request.getfixturevalue("pg_dsn")) if request.param == "postgres"
             else str(tmp_path / "shared.duckdb"))
    reader = ws._Reader(store)
    yield store, reader
    reader.close()


@pytest.mark.parametrize("first, second", [(signal.SIGINT, signal.SIGINT),
                                           (signal.SIGTERM, signal.SIGTERM),
                                           (signal.SIGTERM, signal.SIGINT)],
                         ids=["ctrl-c-twice", "sigterm-twice", "sigterm-then-ctrl-c"])
def test_a_second_signal_during_the_grace_cuts_the_turn_now_and_hands_the_batch_back(
        shared: tuple[str, Any], first: signal.Signals, second: signal.Signals,
        tmp_path: Path) -> None:
    store, reader = shared
    batch_id = ws._enqueue(store, ws.LONG)
    log_path = tmp_path / "worker.log"
    worker = ws._worker(store, log_path, "--delay", "0.2", "--grace", "600")
    try:
        wait_until("the worker to be inside the turn", lambda: reader.query(
            "SELECT turn_id FROM turns WHERE status = 'open'"))
        worker.send_signal(first)
        # the worker says it is waiting for the turn and how to cut it now
        wait_until("the worker to say it gives the turn its grace",
                   lambda: "signal again (Ctrl-C) to cut it now" in log_path.read_text())
        worker.send_signal(second)
        status = worker.wait(120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
    log = log_path.read_text()
    assert status == ws.EX_TEMPFAIL, log
    assert "asked again to stop: cutting the running turn now" in log
    ws._check_back_in_the_queue(reader, batch_id, stops=1)
    [cut] = reader.settled("SELECT result FROM turns")
    assert "asked to stop twice" in ws._result(cut)["cancellation"]["reason"]

    survivor = ws._worker(store, tmp_path / "next.log", "--exit-when-idle", "1")
    assert survivor.wait(180) == 0, (tmp_path / "next.log").read_text()
    ws._check_ran_once_and_answered(store, reader, batch_id)
