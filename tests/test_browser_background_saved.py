"""JupyterLab in Chromium keeps showing a ``--background`` turn's record where it did (ADR 191).

A turn's final record now goes out under the cell that runs when the turn ends (so a notebook
run by nbclient saves it), and again with the next cell when it ended between two cells. In
JupyterLab the record must land in the turn's own cell, once, whichever cell carried it; no
other cell shows anything of it; the note under a turn that is still running stays hidden
while its view lives. Then a ``%%lash`` cell is run while a third background turn streams:
it says which turn it waits for, then answers. Saved, shut down and reopened, every record
reads. (One notebook since ADR 220: the two situations were two tests, each with its own
page, kernel, save and reopen.)
"""

from __future__ import annotations

import pytest
from browser_harness import (
    JupyterServer,
    NotebookPage,
    chromium,
    playwright_or_skip,
    reopen_without_kernel,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

WORDS = " ".join(f"word{i}" for i in range(60))
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.03",
    "%lash open bg --store bg.duckdb --fresh",
    f"%%lash --background\nplease echo first {WORDS}",
    ("import asyncio\nfrom lash_nb._notebook.extension import _magics\n"
     "await asyncio.wait(list(_magics().ctx.background.values()))\nprint('later cell')"),
    f"%%lash --background\nplease echo second {WORDS}",
    "40 + 2",
    f"%%lash --background\nplease echo third {WORDS} {WORDS}",
    "%%lash\nand a question behind it",
]


def _shown(nb: NotebookPage, i: int) -> str:
    return str(nb.cell(i).locator(".jp-OutputArea").inner_text())


def _records_read(nb: NotebookPage) -> None:
    for i, which in ((2, "first"), (4, "second")):
        records = nb.cell(i).locator(".lash-turn.lash-static")
        assert records.count() == 1
        text = records.first.inner_text()
        assert f"You said: please echo {which} word0" in text and "word59" in text
        assert "finished: assistant_message" in text
        shown = _shown(nb, i)
        assert "did not end" not in shown and "still running" not in shown
    assert _shown(nb, 3).strip() == "later cell"
    assert "42" in _shown(nb, 5) and "lash" not in _shown(nb, 5)


def _behind_read(nb: NotebookPage) -> None:
    for i, asked in ((6, "please echo third word0"), (7, "and a question behind it")):
        shown = _shown(nb, i)
        assert f"You said: {asked}" in shown and "finished: assistant_message" in shown
        assert "waiting for" not in shown


def test_background_records_land_in_their_cells_once_and_read_after_a_reopen(tmp_path):
    write_notebook(tmp_path / "bg.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            try:
                nb = NotebookPage(browser, server, "bg.ipynb")
                nb.open()
                for i in range(4):  # the first turn ends while cell 3 awaits it
                    nb.run_cell(i)
                nb.cell(3).locator(".jp-OutputArea-output", has_text="later cell").wait_for(
                    timeout=120_000)
                nb.cell(2).locator(".lash-turn.lash-static").wait_for(timeout=60_000)
                nb.run_cell(4)  # the second ends while no cell runs: sent again with cell 5
                nb.cell(4).locator(".lash-turn .lash-prose").first.wait_for(timeout=120_000)
                # its note was updated when cell 4 ended (still running): hidden all the same
                assert not nb.cell(4).locator(".lash-cut").is_visible()
                assert "still running" not in _shown(nb, 4)
                nb.cell(4).locator(".lash-turn.lash-static").wait_for(timeout=120_000)
                nb.run_cell(5)
                nb.cell(5).locator(".jp-OutputArea-output", has_text="42").wait_for(
                    timeout=60_000)
                _records_read(nb)

                # a %%lash cell run while a background turn streams waits for it: its view
                # read "waiting for the model…" though nothing had been sent; it says which
                # turn it waits for, then answers
                nb.run_cell(6)
                nb.cell(6).locator(".lash-turn .lash-prose").first.wait_for(timeout=120_000)
                nb.run_cell(7)
                wait = nb.cell(7).locator(".lash-turn .lash-wait")
                wait.wait_for(timeout=60_000)
                assert wait.inner_text() == ("waiting for the turn running before it in this "
                                             "session to end…")
                assert not nb.cell(6).locator(".lash-turn.lash-static").count()  # still running
                record = nb.cell(7).locator(".lash-turn.lash-static")
                record.wait_for(timeout=120_000)
                assert "You said: and a question behind it" in record.inner_text()
                nb.cell(6).locator(".lash-turn.lash-static").wait_for(timeout=60_000)
                _behind_read(nb)

                # text only the outputs hold: the prompt is in the file from the start, so
                # waiting for it read the file before the save landed (a loaded full run)
                nb.save(expect_in_file="You said: and a question behind it")
                saved = server.saved("bg.ipynb")
                for i in (2, 4):
                    kinds = [list(o.get("data", {})) for o in saved["cells"][i]["outputs"]]
                    assert kinds == [["text/html", "text/plain"], ["text/html", "text/plain"]]
                reopen_without_kernel(nb, server)
                nb.cell(7).locator(".lash-turn.lash-static").wait_for(timeout=60_000)
                nb.cell(4).locator(".lash-turn.lash-static").wait_for(timeout=60_000)
                _records_read(nb)
                _behind_read(nb)
            finally:
                browser.close()
    finally:
        server.stop()
