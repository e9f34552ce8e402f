"""A tool's text output holding a bare carriage return reads the same on its row live, saved
and reopened, as a terminal shows it (real Chromium, JupyterLab 4 and Notebook 7; ADR 219).

Before, the live row drew the carriage return as nothing (``downloading  10%downloading
100%`` on one line) and the reopened notebook's record, parsed HTML, as a line end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_harness import (
    CHROMIUM,
    JupyterServer,
    NotebookPage,
    chromium,
    reopen_without_kernel,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401  (browser_harness.chromium() drives it)
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

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


def test_a_carriage_return_in_a_tools_output_reads_the_same_live_and_reopened(
        frontend, tmp_path):
    write_notebook(tmp_path / "cr.ipynb", CELLS)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "cr.ipynb")
            try:
                nb.open()
                nb.run_all()
                row = nb.cell(3).locator(".lash-static .lash-tool-done")
                row.wait_for(timeout=180_000)
                assert _output_lines(row) == SHOWN
                nb.save(expect_in_file="saved to north.csv")
                reopen_without_kernel(nb, server)
                row = nb.cell(3).locator(".lash-static .lash-tool-done")
                row.wait_for(timeout=60_000)
                assert _output_lines(row) == SHOWN
            finally:
                browser.close()
    finally:
        server.stop()
