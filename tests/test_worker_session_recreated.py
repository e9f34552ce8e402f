"""A long-running worker keeps the sessions it opened. The user deletes one in a notebook
(``%lash sessions --delete s --yes``), starts ``s`` anew there and queues work in it. The
worker's kept handle is refused (docs/adr/0148): the refusal is the handle's, not the
batch's, so it must cost the batch no attempt. Before (docs/adr/0158) it used one up: the
batch completed with 2 attempts, and with ``--max-attempts 1`` it was parked failed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_notebook_magics
from notebook_harness import wait_until

sh = test_notebook_magics.sh  # the IPython shell fixture, shared

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _worker(path: Path, log: Path) -> subprocess.Popen[bytes]:
    """A long-running worker; with one attempt per batch, a spent attempt parks the batch."""
    return subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all",
         "--poll", "0.05", "--max-attempts", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def history(sh, batch_id: str) -> list:
    return sh.run_cell("%lash sql SELECT b.final_state, b.attempts, t.outcome, t.stop_reason "
                       "FROM queue_history b LEFT JOIN turns t USING (turn_id) "
                       f"WHERE b.batch_id = '{batch_id}'").values.tolist()


def test_a_session_deleted_and_started_anew_in_the_notebook_costs_the_worker_no_attempt(
        sh, tmp_path):
    path = tmp_path / "shared.duckdb"
    sh.run_cell(f"%config LashMagics.store = '{path}'")
    sh.run_cell("%lash open s")
    sh.run_cell("b = %lash enqueue first")
    first = sh.user_ns["b"].batch_id
    log = tmp_path / "worker.log"
    worker = _worker(path, log)
    try:
        wait_until("the worker to run the first batch", lambda: len(history(sh, first)))
        sh.run_cell("%lash sessions --delete s --yes")
        sh.run_cell("%lash open s")
        sh.run_cell("%lash turn a new start")
        sh.run_cell("b = %lash enqueue second")
        second = sh.user_ns["b"].batch_id
        parked = "%lash sql SELECT error FROM queued_work_batches WHERE failed_at_ms IS NOT NULL"
        wait_until("the second batch to run or be parked failed",
                   lambda: len(history(sh, second)) or len(sh.run_cell(parked)))
        queued = sh.run_cell(parked).values.tolist()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        print(log.read_text())  # shown when the test fails
    text = log.read_text()
    assert queued == [], (queued, text)  # nothing parked failed
    # the second batch ran once, in the session as the notebook started it anew, and its one
    # claim is the one that answered it
    assert history(sh, second) == [["completed", 1, "finished", "assistant_message"]], text
    assert "SessionDeleted" not in text, text
    assert "opened it again (no attempt spent)" in text, text
    answers = sh.run_cell("%lash sql SELECT result->>'$.assistant_output.safe_text' AS a "
                          "FROM turns WHERE status = 'committed' ORDER BY seq").values.tolist()
    assert len(answers) == 2, answers  # the notebook's new turn, then the worker's
    assert answers[0][0].startswith("You said: a new start ("), answers
    assert answers[1][0].startswith("You said: second ("), answers
