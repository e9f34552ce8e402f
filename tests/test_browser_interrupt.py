"""The kernel's interrupt during Run All, in JupyterLab and Chromium (ADR 167): the streaming
turn is committed and its cell shows the record, ``stopped: cancelled``, and one line saying
the interrupt ended it; the ``%%lash`` cell after it never runs (no further model call). The
notebook is saved, the kernel shut down and the notebook reopened: the record still reads.
"""

from __future__ import annotations

import pytest
from browser_harness import (
    JupyterServer,
    NotebookPage,
    chromium,
    playwright_or_skip,
    reopen_without_kernel,
    wait_until,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

LONG = "please echo " + " ".join(f"word{i}" for i in range(300))
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.3",
    "%lash open stop --store stop.duckdb --fresh",
    f"%%lash\n{LONG}",
    "%%lash\nthis cell comes after the interrupted one",
]


def _shown(nb: NotebookPage, i: int) -> str:
    return str(nb.cell(i).locator(".jp-OutputArea").inner_text())


def test_the_interrupt_during_run_all_records_the_turn_and_runs_no_later_cell(tmp_path):
    write_notebook(tmp_path / "stop.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            try:
                nb = NotebookPage(browser, server, "stop.ipynb")
                nb.open()
                nb.run_all()
                nb.cell(2).locator(".lash-turn .lash-prose").first.wait_for(timeout=120_000)
                kernel = server.api("GET", "/api/kernels")[0]["id"]
                server.api("POST", f"/api/kernels/{kernel}/interrupt")
                nb.cell(2).locator(".lash-static .lash-outcome").wait_for(timeout=120_000)
                wait_until(server.kernels_idle, timeout=90, what="the interrupted cell to end")
                shown = _shown(nb, 2)
                assert "stopped: cancelled" in shown
                assert "KeyboardInterrupt: the kernel's interrupt stopped turn" in shown
                assert "Traceback" not in shown
                assert _shown(nb, 3).strip() == ""  # never run: no turn, no model call

                saved = nb.save(expect_in_file="stopped: cancelled")
                assert not saved["cells"][3]["outputs"]
                reopen_without_kernel(nb, server)
                nb.cell(2).scroll_into_view_if_needed()
                nb.cell(2).locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                shown = _shown(nb, 2)
                assert "Error displaying widget" not in shown and "model not found" not in shown
                assert "please echo word0 word1" in shown and "stopped: cancelled" in shown
            finally:
                browser.close()
    finally:
        server.stop()
