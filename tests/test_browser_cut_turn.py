"""A turn cut by a kernel restart still reads in the saved notebook (JupyterLab, Chromium).

A ``%%lash`` cell streams; the kernel is restarted mid-turn (Kernel > Restart: the turn never
reaches its end, so its widget is never replaced by the static record; or, when the kernel's
shutdown cancels the cell before the kernel is gone, the turn commits stopped and its record
replaces the widget); the notebook is saved,
the kernel shut down and the notebook reopened. The cell used to read only "Error displaying
widget: model not found": what was asked and what became of the turn were gone from the page.
Then a turn that finishes leaves no note behind.
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
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.1",  # 30 s to restart in
    "%lash open cut --store cut.duckdb --fresh",
    f"%%lash\n{LONG}",
]


def _shown(nb: NotebookPage, i: int) -> str:
    """The text a reader sees in cell ``i``'s outputs (hidden nodes excluded)."""
    return str(nb.cell(i).locator(".jp-OutputArea").inner_text())


def test_a_turn_cut_by_a_kernel_restart_reads_after_a_reopen(tmp_path):
    write_notebook(tmp_path / "cut.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            try:
                nb = NotebookPage(browser, server, "cut.ipynb")
                page = nb.open()
                nb.run_all()
                nb.cell(2).locator(".lash-turn .lash-prose").first.wait_for(timeout=120_000)
                live = _shown(nb, 2)
                assert "did not end" not in live  # the note is hidden while the turn is live
                kernel = server.api("GET", "/api/kernels")[0]["id"]
                server.api("POST", f"/api/kernels/{kernel}/restart")
                wait_until(server.kernels_idle, timeout=90, what="the restarted kernel")
                nb.save(expect_in_file="word5")
                page = reopen_without_kernel(nb, server)
                nb.cell(2).scroll_into_view_if_needed()
                page.wait_for_function(
                    "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
                # two ways a restart ends the turn, by how fast the kernel goes: killed before
                # the turn could end (the widget stays: its cut note), or its shutdown cancelled
                # the cell first (the turn committed stopped and its record replaced the widget,
                # seen twice in loaded full runs). Either must read after the reopen.
                ended = nb.cell(2).locator(".lash-cut, .lash-turn.lash-static")
                try:
                    ended.first.wait_for(timeout=150_000)
                except Exception as e:  # CI keeps the output, not the artifacts: say what it was
                    raise AssertionError(
                        "neither a cut note nor a record after the reopen; the cell's outputs "
                        "were: " + nb.cell(2).locator(".jp-OutputArea").inner_text()[:4000]) from e
                shown = _shown(nb, 2)
                assert "Error displaying widget" not in shown and "model not found" not in shown
                assert "please echo word0 word1" in shown  # what was asked
                if nb.cell(2).locator(".lash-cut").count():
                    assert "did not end" in shown and "%lash replay" in shown
                else:  # the record of the stopped turn: what streamed, and how it ended
                    assert nb.cell(2).locator(".lash-static .lash-prose").first.inner_text().strip()
                    outcome = nb.cell(2).locator(".lash-static .lash-outcome").inner_text()
                    assert outcome.startswith("stopped"), outcome

                # the kernel is back: a turn that ends leaves no note and no empty row
                nb.run_cell(0)
                nb.run_cell(1)
                nb.run_cell(2)  # the cut turn's cell again, to its end this time
                nb.cell(2).locator(".lash-static .lash-outcome").wait_for(timeout=300_000)
                wait_until(server.kernels_idle, timeout=60, what="the cell to end")
                shown = _shown(nb, 2)
                assert "did not end" not in shown
                assert "finished: assistant_message" in shown
                rows = nb.cell(2).locator(".jp-OutputArea-child")
                visible = [r for r in rows.all() if r.is_visible()]
                assert len(visible) == 1  # the record only
            finally:
                browser.close()
    finally:
        server.stop()
