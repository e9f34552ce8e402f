"""The kernel's interrupt stops a long ``%lash sql`` query (ipykernel >= 7.4, a real kernel).

Before, the interrupt was ignored: DuckDB does not stop a statement on SIGINT, so a query
typed by mistake (a join without its condition) held the kernel until it ended, minutes later,
and the only way out was a restart. Now the cell ends as an interrupted cell does, in one
line, the store's connection is free again and nothing stored changed.
"""

from __future__ import annotations

import time

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell

# minutes of work on any machine: 10^11 rows through a filter
LONG_QUERY = "%lash sql SELECT count(*) AS n FROM range(100000000000) a WHERE a.range % 7 = 3"


@pytest.mark.slow  # a real kernel
@pytest.mark.skipif(not kernel_serves_widgets_mid_cell(),
                    reason="an older ipykernel delivers the interrupt outside the cell's await")
def test_the_kernels_interrupt_stops_a_long_query_and_the_store_goes_on(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open s --store lash.duckdb")
        k.run("%lash turn keep me")
        ex = k.submit(LONG_QUERY, stop_on_error=False)
        time.sleep(2.0)  # let the query start (not an assertion: any start point will do)
        k.km.interrupt_kernel()
        k.wait(ex, timeout=90)  # before: the query ran on for minutes
        assert ex.status == "error"
        errors = [m["content"] for m in ex.outputs if m["msg_type"] == "error"]
        assert len(errors) == 1
        assert len(errors[0]["traceback"]) == 1 and "\n" not in errors[0]["traceback"][0]
        assert errors[0]["traceback"][0].startswith("KeyboardInterrupt: ")  # Run All stops
        assert "stopped the query" in errors[0]["evalue"]
        # no DuckDB progress bar left in the cell (a widget a saved notebook cannot show)
        assert not ex.widget_ids()
        # the store is free and whole: the turn is there and the next one commits
        count = k.run("%lash sql SELECT count(*) AS n FROM turns", timeout=60)
        assert "1" in count.data("text/plain")[0].split()
        k.run("r = %lash turn and on", timeout=60)
        after = k.run("print(r.outcome)")
        assert after.stdout.strip() == "finished: assistant_message"


def test_cancelling_the_task_awaiting_query_async_stops_the_query(tmp_path) -> None:
    """The store's side, without a kernel: a cancelled ``await store.query_async(...)`` ends
    with the query stopped, and the store answers the next query and keeps its rows."""
    import asyncio

    from lash_nb.stores import DuckDBStore

    async def body() -> tuple[bool, list[int]]:
        store = DuckDBStore(tmp_path / "q.duckdb")
        try:
            task = asyncio.ensure_future(store.query_async(
                "SELECT count(*) AS n FROM range(100000000000) a WHERE a.range % 7 = 3"))
            await asyncio.sleep(1.0)  # let it start (any start point will do)
            task.cancel()
            try:
                await asyncio.wait_for(task, 60)  # before: minutes
                stopped = False
            except asyncio.CancelledError:
                stopped = True
            after = (await store.query_async("SELECT 41 + 1 AS n"))["n"].tolist()
            return stopped, after
        finally:
            await store.close()

    assert asyncio.run(body()) == (True, [42])
