"""A session stored under a name holding a bidi override (written before ADR 215 refused new
ones) shows escaped in its turn record's title, shown and reopened, as its card shows it
(real Chromium, JupyterLab 4 and Notebook 7; ADR 219). Before, the title read
``lash · reportexe.csv · turn-...`` (the override dropped: another name). The live head draws
the same ``session_id`` trait (``tests/test_notebook_listed_names.py`` holds its value); a
quick offline turn is replaced by its record too soon to read the live head reliably."""

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
from test_notebook_small_trust import stored_before

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401  (browser_harness.chromium() drives it)
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02",
    "name = 'report\\u202eexe.csv'\n%lash open {name} --store old.duckdb",
    "%%lash\nhello again",
]
HEAD = "lash · 'report\\u202eexe.csv' · "


def test_a_stored_bidi_name_is_escaped_in_the_turns_title_shown_and_reopened(frontend, tmp_path):
    stored_before(tmp_path / "old.duckdb")
    write_notebook(tmp_path / "bidi.ipynb", CELLS)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "bidi.ipynb")
            try:
                nb.open()
                nb.run_all()
                record = nb.cell(2).locator(".lash-static .lash-title")
                record.wait_for(timeout=180_000)
                # on main's code: "lash · reportexe.csv · turn-..." (the override dropped)
                assert record.inner_text().startswith(HEAD), record.inner_text()
                nb.save(expect_in_file="hello again")
                reopen_without_kernel(nb, server)
                record = nb.cell(2).locator(".lash-static .lash-title")
                record.wait_for(timeout=60_000)
                title = record.inner_text()
                assert title.startswith(HEAD) and "\u202e" not in title, title
            finally:
                browser.close()
    finally:
        server.stop()
