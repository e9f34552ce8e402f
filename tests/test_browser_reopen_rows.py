"""A notebook opened the next day shows no empty output rows (JupyterLab 4 and Notebook 7,
Chromium).

A user runs a turn, queues work, looks at the queue and tool panels and a usage chart, and
starts a long turn; the kernel restarts while it runs; the notebook is saved, the kernel shut
down and the notebook reopened the next day. Every output row on the page reads something (text
or a picture): a live panel's widget output used to leave an empty ``[N]:`` row under its
snapshot once its model was gone.
"""

from __future__ import annotations

import contextlib

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

LONG = "please echo " + " ".join(f"word{i}" for i in range(400))
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.3",
    "%lash open day1 --store day1.duckdb --fresh",
    "%%lash\nhello",
    "%lash enqueue later",
    "%lash queue",
    "%lash tools",
    "%lash usage --by turn --plot",
    f"%%lash\n{LONG}",
]

# every output row of cell i a reader can see, with its prompt and whether it shows anything
ROWS_JS = r"""
(panel, i) => [[...panel.querySelectorAll('.jp-Cell')][i]].flatMap((cell) =>
  [...cell.querySelectorAll('.jp-OutputArea-child')].filter((row) => {
    const r = row.getBoundingClientRect();
    return r.height > 0 && getComputedStyle(row).display !== 'none';
  }).map((row) => {
    const out = row.querySelector('.jp-OutputArea-output');
    const shown = out && getComputedStyle(out).display !== 'none' &&
      out.getBoundingClientRect().height > 0;
    const media = out ? out.querySelectorAll('img, svg, canvas').length : 0;
    return { cell: i, prompt: (row.querySelector('.jp-OutputPrompt') || {}).textContent || '',
             text: shown ? out.innerText.trim().slice(0, 60) : '', media: shown ? media : 0 };
  }))
"""


def _rows(nb: NotebookPage) -> list[dict]:
    """Each cell's rows read while the cell is in view: Notebook 7 skips rendering the cells
    far from the viewport (their rows keep a height, but ``innerText`` is empty), so a row
    read from afar looked empty once a cell above grew by a line."""
    rows: list[dict] = []
    for i in range(len(CELLS)):
        nb.cell(i).scroll_into_view_if_needed()
        rows += nb.panel.evaluate(ROWS_JS, i)
    return rows


def _empty(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r["text"] and not r["media"]]


def test_a_notebook_reopened_without_its_kernel_has_no_empty_output_rows(frontend, tmp_path):
    write_notebook(tmp_path / "day1.ipynb", CELLS)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            try:
                nb = NotebookPage(browser, server, "day1.ipynb")
                page = nb.open()
                nb.run_all()
                nb.cell(7).locator(".lash-turn .lash-prose").first.wait_for(timeout=180_000)
                for i in (4, 5):
                    nb.cell(i).locator(".lash-snapshot").first.wait_for(
                        state="attached", timeout=60_000)
                # Kernel > Restart mid-turn (a restart asked through the REST API would race
                # jupyter_server's status, ADR 137): the kernel commits the turn first (ADR 195)
                old = server.kernel_pid()
                nb.restart_kernel()
                wait_until(lambda: server.restarted_from(old), timeout=90,
                           what="the restarted kernel")
                nb.save(expect_in_file="word5")
                page = reopen_without_kernel(nb, server)
                page.wait_for_function(
                    "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
                nb.cell(7).scroll_into_view_if_needed()
                # the turn's record (committed at the restart, ADR 195), or its cut-turn note
                # when the record's update did not reach the page before the kernel went
                nb.cell(7).locator(".lash-cut, .lash-turn.lash-static").first.wait_for(
                    timeout=60_000)
                # JupyterLab lays out and renders the outputs a moment after they attach (a
                # markdown card may have no height yet): an empty row must stay empty to fail
                with contextlib.suppress(AssertionError):  # the assert below says which
                    wait_until(lambda: not _empty(_rows(nb)), timeout=30, what="filled rows")
                rows = _rows(nb)
                assert _empty(rows) == [], rows
                cells_with_output = sorted({r["cell"] for r in rows})
                assert cells_with_output == [1, 2, 3, 4, 5, 6, 7], rows
                text = " ".join(r["text"] for r in rows)
                assert "Error displaying widget" not in text and "model not found" not in text

                # the next day's work: the kernel is back, the panels run live again and their
                # rows show the live panel (the rule hides only a failed widget's row)
                for i in (0, 1, 4):
                    nb.run_cell(i)
                queue = nb.cell(4).locator(".lash-queue")
                queue.wait_for(timeout=60_000)
                wait_until(server.kernels_idle, timeout=60, what="the cells to end")
                live = [r for r in _rows(nb) if r["cell"] == 4]
                assert len(live) == 1 and "1 pending" in live[0]["text"], live
                assert live[0]["prompt"].startswith("[")  # the widget's own row, not the snapshot
                assert queue.locator("button").count() >= 1
            finally:
                browser.close()
    finally:
        server.stop()
