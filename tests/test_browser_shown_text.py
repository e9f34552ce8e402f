"""What a row or a title shows of outside text, live, saved and reopened (real Chromium,
JupyterLab 4 and Notebook 7; ADR 219).

A tool's text output holding a bare carriage return reads the same on its row live, saved
and reopened, as a terminal shows it.

Before, the live row drew the carriage return as nothing (``downloading  10%downloading
100%`` on one line) and the reopened notebook's record, parsed HTML, as a line end.

A session stored under a name holding a bidi override (written before ADR 215 refused new
ones) shows escaped in its turn record's title, shown and reopened, as its card shows it.
Before, the title read
``lash · reportexe.csv · turn-...`` (the override dropped: another name). The live head draws
the same ``session_id`` trait (``tests/test_notebook_listed_names.py`` holds its value); a
quick offline turn is replaced by its record too soon to read the live head reliably.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from browser_harness import (
    JupyterServer,
    NotebookPage,
    browser_test_marks,
    chromium,
    reopen_without_kernel,
    write_notebook,
)
from test_notebook_small_trust import stored_before

pytestmark = browser_test_marks()

TOOLS = '''from lash_nb import tool

@tool
def download(site: str) -> str:
    """Download a site's file, as the command line tool reports it."""
    return "downloading  10%\\rdownloading 100%\\nsaved to " + site + ".csv\\r\\n"
'''
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02",
    TOOLS,
    "%lash open cr --store cr.duckdb --fresh --tools download",
    "%%lash\nWhat does download say for 'north'?",
]
SHOWN = ["downloading 100%", "saved to north.csv"]


def _output_lines(row) -> list[str]:
    row.scroll_into_view_if_needed()
    if row.get_attribute("open") is None:
        row.locator("summary").click()
    return row.locator(".lash-tool-output").inner_text().splitlines()


def _shown_and_reopened(frontend: str, tmp_path: Path, cells: list[str | tuple[str, str]],
                        where: tuple[int, str], read: Callable[[Any], Any],
                        saved: str) -> tuple[Any, Any]:
    """``read`` of the element ``where`` (cell, selector) once the notebook has run, and again
    after Save, the kernel shut down and the notebook reopened (the file holds ``saved``)."""
    write_notebook(tmp_path / "nb.ipynb", cells)
    server = JupyterServer(frontend, tmp_path).start("light")
    seen = []
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "nb.ipynb")
            try:
                nb.open()
                nb.run_all()
                for timeout in (180_000, 60_000):
                    found = nb.cell(where[0]).locator(where[1])
                    found.wait_for(timeout=timeout)
                    seen.append(read(found))
                    if len(seen) == 1:
                        nb.save(expect_in_file=saved)
                        reopen_without_kernel(nb, server)
            finally:
                browser.close()
    finally:
        server.stop()
    return seen[0], seen[1]


def test_a_carriage_return_in_a_tools_output_reads_the_same_live_and_reopened(
        frontend, tmp_path):
    shown, reopened = _shown_and_reopened(frontend, tmp_path, CELLS,
                                          (3, ".lash-static .lash-tool-done"), _output_lines,
                                          "saved to north.csv")
    assert shown == SHOWN and reopened == SHOWN


BIDI_CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02",
    "name = 'report\\u202eexe.csv'\n%lash open {name} --store old.duckdb",
    "%%lash\nhello again",
]
HEAD = "lash · 'report\\u202eexe.csv' · "


def test_a_stored_bidi_name_is_escaped_in_the_turns_title_shown_and_reopened(frontend, tmp_path):
    stored_before(tmp_path / "old.duckdb")
    shown, reopened = _shown_and_reopened(frontend, tmp_path, BIDI_CELLS,
                                          (2, ".lash-static .lash-title"),
                                          lambda title: title.inner_text(), "hello again")
    # on main's code: "lash · reportexe.csv · turn-..." (the override dropped)
    for title in (shown, reopened):
        assert title.startswith(HEAD) and "\u202e" not in title, title
