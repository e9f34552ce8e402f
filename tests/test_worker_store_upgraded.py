"""A worker running on a shared store when a colleague's newer lash_nb migrates the file under it
(ADR 221). Its lash_nb can no longer read the store until it is upgraded, and an upgrade needs
a new process: the worker stops with one line saying so, the queued work left in the queue.
Before, it logged ``lane 0: StoreSchemaError: ...`` at every poll (twice a second) and never
stopped."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider


def _connect_when_free(path: Path) -> duckdb.DuckDBPyConnection:
    """The file as the newer lash_nb gets it: once the worker lets it go (it does when idle)."""
    for _ in range(1200):
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException:
            time.sleep(0.1)
    raise AssertionError(f"{path} was never let go")


def test_a_worker_whose_store_a_newer_lash_nb_migrated_stops_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"

    async def before() -> None:
        core = LashCore.builder().provider(OfflineProvider()).store(str(path)).build()
        s = await core.session("s").open()
        await s.turn("before").run()
        await s.enqueue("drained by the worker")  # its drain shows the worker is running
        await core.close()
    asyncio.run(before())

    worker = subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--poll", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # the worker runs: it drained the batch queued before it started
            con = _connect_when_free(path)
            if con.execute("SELECT count(*) FROM queue_history").fetchone() == (1,):
                break
            con.close()
            time.sleep(0.2)
        else:
            raise AssertionError(f"the worker drained nothing: {worker.poll()}")
        con.execute("UPDATE lash_meta SET value = '5' WHERE key = 'schema_version'")
        con.execute(
            "INSERT INTO queued_work_batches (batch_id, session_id, delivery_policy, slot_policy, "
            "available_at_ms, enqueued_at_ms, items) VALUES ('qwb:later', 's', "
            "'after_current_turn_commit', 'exclusive', 0, 1, ?)",
            [('[{"item_id": "qwb:later:item:0", "kind": "turn_input", "payload": {"items": '
              '[{"type": "text", "text": "queued by the newer one"}]}}]')])
        con.close()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _, err = worker.communicate(timeout=60)  # before: it never ended
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 2, err
    lines = err.strip().splitlines()  # the drained turn's line, then the stop's
    [line] = [x for x in lines if "schema version 5" in x]  # said once, not at every poll
    assert line == lines[-1]
    assert line.startswith("worker stopped: ") and "schema version 5" in line
    assert "upgrade lash_nb" in line and "the queued work stays in the queue" in line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # nothing written after
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT batch_id FROM queued_work_batches").fetchall() == [("qwb:later",)]
    finally:
        con.close()
