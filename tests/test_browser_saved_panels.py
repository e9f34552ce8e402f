"""A notebook with lash's panels, saved and reopened the next morning, reads as its snapshots
alone (JupyterLab 4 and Notebook 7, Chromium; ADR 214).

A user runs a turn, queues two prompts, shows ``%lash queue`` and clicks Drain, shows the tool
catalog, the session listing and a usage table; saves; shuts the kernel down; reopens the
notebook. Until the reopened page's kernel is connected (a kernel that starts slowly, a busy
server, a notebook read with no kernel) JupyterLab's widget renderer writes "Loading widget..."
in each widget output whose model is not there, and "Error displaying widget: model not found"
once the new kernel is connected. Each panel's saved snapshot is the panel as it was: the row
of its widget output must not show either line, nor stay as an empty row. Before ADR 214 the
snapshot's rule hid only the "model not found" row: the queue and tool panels each showed a
"Loading widget..." line under their snapshot for as long as the kernel was not connected.
"""

from __future__ import annotations

import re
import shutil

import browser_harness as bh
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
bh.playwright_or_skip()

QUEUE, TOOLS = 4, 5  # the cells of the two panels
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05",
    "%lash open day --store day.duckdb --fresh",
    "%%lash\nhello",
    "%lash enqueue what is first?\n%lash enqueue and the second?",
    "%lash queue",
    "%lash tools",
    "%lash sessions",
    "%lash usage --by turn",
]

# every output row of the notebook: whether a reader sees it, and what it reads
ROWS_JS = r"""
(panel) => [...panel.querySelectorAll('.jp-Cell')].flatMap((cell, i) =>
  [...cell.querySelectorAll('.jp-OutputArea-child')].filter((row) =>
    row.getBoundingClientRect().height > 0 && getComputedStyle(row).display !== 'none'
  ).map((row) => {
    const out = row.querySelector('.jp-OutputArea-output');
    const shown = out && getComputedStyle(out).display !== 'none' &&
      out.getBoundingClientRect().height > 0;
    return { cell: i, text: shown ? out.innerText.trim().slice(0, 80) : '',
             media: shown ? out.querySelectorAll('img, svg, canvas').length : 0 };
  }))
"""
# the widget renderer has written its placeholder or its error in each widget output
SETTLED_JS = r"""
(panel) => {
  const outs = [...panel.querySelectorAll('.jp-OutputArea-output.lm-Panel')];
  return outs.length >= 2 && outs.every((o) => o.textContent.trim() !== '');
}
"""
BAD = re.compile(r"Loading widget|Error displaying widget|model not found")


def _rows(nb: bh.NotebookPage) -> list[dict]:
    rows: list[dict] = []
    for i in range(len(CELLS)):  # read while in view: far cells may not be rendered
        nb.cell(i).scroll_into_view_if_needed()
        rows += [r for r in nb.panel.evaluate(ROWS_JS) if r["cell"] == i]
    return rows


def _unreadable(rows: list[dict]) -> list[dict]:
    return [r for r in rows if BAD.search(r["text"]) or (not r["text"] and not r["media"])]


def _read_next_morning(nb: bh.NotebookPage) -> None:
    """The saved notebook opened the next morning: before its kernel is connected, the panels
    read as their snapshots; reopened once more with its new kernel connected (the old panels'
    models are gone), every row still reads."""
    nb.open_before_the_kernel()
    nb.cell(QUEUE).locator(".lash-snapshot").wait_for(timeout=60_000)
    nb.page.wait_for_function(SETTLED_JS, arg=nb.panel.element_handle(), timeout=60_000)
    rows = _rows(nb)
    assert _unreadable(rows) == [], rows
    assert sorted({r["cell"] for r in rows}) == list(range(1, len(CELLS))), rows
    snap = nb.cell(QUEUE).locator(".lash-snapshot")
    assert "ran 2 turns" in snap.inner_text() and snap.locator(".lash-turn").count() == 2
    assert "Tool catalog" in nb.cell(TOOLS).locator(".lash-snapshot").inner_text()

    nb.reopen()
    nb.page.wait_for_function(
        "(p) => { const o = [...p.querySelectorAll('.jp-OutputArea-output.lm-Panel')];"
        " return o.length >= 2 && o.every((e) => e.textContent.includes('model not found')); }",
        arg=nb.panel.element_handle(), timeout=60_000)
    rows = _rows(nb)
    assert _unreadable(rows) == [], rows
    assert sorted({r["cell"] for r in rows}) == list(range(1, len(CELLS))), rows


def test_saved_panels_read_as_their_snapshots_before_and_after_the_kernel_is_back(tmp_path):
    """Run and saved in JupyterLab, read the next morning in JupyterLab and in Notebook 7 (a
    copy of the file as saved). The cells run once (ADR 220): the panels' live Drain is the
    same widget in both (ADR 178); Notebook 7's own page, its output rows and its widget
    manager's "Loading widget..." and "model not found" are what the reading checks there."""
    bh.write_notebook(tmp_path / "day.ipynb", CELLS)
    servers = {"jupyterlab": bh.JupyterServer("jupyterlab", tmp_path).start("light"),
               "notebook7": bh.JupyterServer("notebook7", tmp_path)}
    server = servers["jupyterlab"]
    try:
        with bh.chromium() as browser:
            nb = bh.NotebookPage(browser, server, "day.ipynb")
            nb.open()
            for i in range(len(CELLS)):
                nb.run_cell(i)
            # the live queue panel: its rows and its Drain button work
            queue = nb.cell(QUEUE).locator(".lash-queue")
            queue.locator("tr[data-batch]").nth(1).wait_for(timeout=60_000)
            queue.locator(".lash-drain").click()
            queue.locator(".lash-muted", has_text="ran 2 turns").wait_for(timeout=90_000)
            assert queue.locator(".lash-ran-turn").count() == 2
            assert nb.cell(TOOLS).locator(".lash-tools").count() == 1  # the live catalog
            assert not nb.cell(QUEUE).locator(".lash-snapshot").is_visible()  # live panel only
            bh.wait_until(server.kernels_idle, timeout=60, what="the cells to end")
            assert _unreadable(_rows(nb)) == []
            nb.save(expect_in_file="ran 2 turns")
            shutil.copy(tmp_path / "day.ipynb", tmp_path / "day-notebook7.ipynb")
            server.shut_down_sessions()
            bh.wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
                       what="the kernel to shut down")

            _read_next_morning(nb)
            server.shut_down_sessions()
            bh.wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
                          what="the kernel to shut down")
            nb.page.close()
            nb = bh.NotebookPage(browser, servers["notebook7"].start("light"),
                                 "day-notebook7.ipynb")
            _read_next_morning(nb)
    finally:
        for each in servers.values():
            each.stop()
