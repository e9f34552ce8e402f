"""The queue panel of a notebook while a worker process drains the same DuckDB file, and
after that worker is killed mid-turn: every batch the notebook enqueued stays in view (a
batch the worker took shows as claimed) until it is done, and each is done once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from notebook_harness import lash_shell, wait_until

pytestmark = pytest.mark.slow  # a worker process on a busy machine


def test_the_queue_panel_keeps_a_batch_a_worker_took_and_after_kill_9_each_runs_once(
        tmp_path: Path, monkeypatch: Any) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.store = 'lash.duckdb'",
                    "%lash open s1") as sh:
        ids = []
        for i in range(3):
            sh.run_cell(f"b = %lash enqueue job{i} {words}")
            ids.append(sh.user_ns["b"].batch_id)
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "lash_nb", "worker", "--store", "lash.duckdb", "--session",
                 "s1", "--delay", "0.3", "--poll", "0.05"],
                stdout=subprocess.DEVNULL, stderr=log)
        try:
            def mid_turn() -> bool:
                open_turns = sh.run_cell("%lash sql SELECT turn_id FROM turns WHERE status = 'open'")
                return len(open_turns) > 0

            wait_until("the worker to be inside its first turn", mid_turn)
            live = sh.run_cell("%lash queue --df")
            assert list(live["batch_id"]) == ids  # the batch the worker runs is still in view
            assert list(live["claimed"]) == [True, False, False]
            panel = sh.run_cell("%lash queue")
            assert "1 claimed" in panel.snapshot_text()
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
        after = sh.run_cell("%lash queue --df")
        assert list(after["batch_id"]) == ids  # nothing vanished with the dead worker
        sh.run_cell("%lash drain --all")
        assert len(sh.run_cell("%lash queue --df")) == 0
        turns = sh.run_cell("%lash sql SELECT turn_id, outcome FROM turns ORDER BY started_at")
    finished = [t for t, o in zip(turns["turn_id"], turns["outcome"], strict=True) if o == "finished"]
    assert sorted(t.split(":g")[0] for t in finished) == sorted(ids)  # each batch finished once
