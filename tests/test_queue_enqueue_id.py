"""A batch named by the id it was enqueued with.

The README's queue API reads ``session.enqueue(x).id(k)...``, then
``cancel_queued_work_batch(id)`` and ``await_queued_work_batch(id)``. An agent engineer passes
the id they chose (``"report"``), not the ``qwb:...`` id lash_nb made. Before
(docs/adr/0201) both took it for a batch long gone: ``await_queued_work_batch("report")``
returned at once while the batch was still queued (the script then read an answer nobody
had written yet) and ``cancel_queued_work_batch("summary")`` returned ``None`` and left the
batch queued, for a worker to run. Here with a DuckDB file and a worker process beside it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from lash_nb import LashCore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_a_batch_is_awaited_and_cancelled_by_the_id_it_was_enqueued_with(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"

    async def body() -> list[tuple[str, str]]:
        core = LashCore.builder().model("lash-offline").store(path).build()
        s = await core.session("agent").open()
        s.drainer.pause()  # the worker drains, not this process
        await s.enqueue("write the report").id("report").send()
        await s.enqueue("write the summary").id("summary").send()
        with pytest.raises(TimeoutError, match="still queued"):  # nobody drains it yet
            await s.await_queued_work_batch("report", timeout=0.5)
        cancelled = await s.cancel_queued_work_batch("summary")
        assert cancelled is not None and cancelled.text == "write the summary"
        assert [b.text for b in await s.queued_work()] == ["write the report"]
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--poll", "0.05",
            "--exit-when-idle", "2", cwd=ROOT)
        await s.await_queued_work_batch("report", timeout=120)
        answered = s.store.query(
            "SELECT b.source_key, t.outcome FROM queue_history b JOIN turns t USING (turn_id) "
            "WHERE t.status = 'committed'")
        assert await worker.wait() == 0
        return [tuple(r) for r in answered.values.tolist()]

    assert asyncio.run(body()) == [("host:report", "finished")]
