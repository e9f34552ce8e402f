"""A notebook saved while a turn ran, reopened the next morning, reads as its cut-turn note
(JupyterLab 4 and Notebook 7, Chromium; ADR 217).

A user runs a long ``%%lash`` turn and saves while it streams (Ctrl+S, or the autosave), then
shuts the kernel down and reopens the notebook. The saved cell holds the turn's widget output
and, after it, the cut-turn note (what was asked, and that the turn did not end before the
save). Until the reopened page's kernel is connected (a kernel slow to start, a busy server, no
kernel at all) the widget renderer writes "Loading widget..." in the widget output; once it is
connected, "Error displaying widget: model not found". Neither may show above the note, nor an
empty row. Before ADR 217 the note's rule hid only the "model not found" line: "Loading
widget..." stood above the note for as long as no kernel was connected (ADR 214 had fixed the
same for the queue and tool panels).
"""

from __future__ import annotations

import json
import shutil

import browser_harness as bh
import pytest
from test_browser_saved_panels import BAD, ROWS_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
bh.playwright_or_skip()

TURN = 2
LONG = "please echo " + " ".join(f"word{i}" for i in range(300))  # 30 s at 0.1 s a word
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.1",
    "%lash open morning --store morning.duckdb --fresh",
    f"%%lash\n{LONG}",
]
WIDGET = "application/vnd.jupyter.widget-view+json"


def _turn_id(folder) -> str:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect(str(folder / "morning.duckdb"), read_only=True)
    try:
        ((turn_id,),) = con.execute("SELECT turn_id FROM turns").fetchall()
    finally:
        con.close()
    return str(turn_id)


def _turn_rows(nb: bh.NotebookPage) -> list[dict]:
    nb.cell(TURN).scroll_into_view_if_needed()
    return [r for r in nb.panel.evaluate(ROWS_JS) if r["cell"] == TURN]


def _saved_mid_turn(nb: bh.NotebookPage) -> None:
    """Run the cells; save while the turn streams; check the file holds that moment."""
    nb.open()
    for i in range(len(CELLS)):
        nb.run_cell(i)
    nb.cell(TURN).locator(".lash-turn .lash-prose").first.wait_for(timeout=120_000)
    saved = nb.save(expect_in_file="did not end before this notebook was saved")
    outputs = saved["cells"][TURN]["outputs"]  # the turn's widget, then its note
    assert WIDGET in outputs[0]["data"], json.dumps(outputs)[:2000]
    assert "lash-cut" in outputs[1]["data"]["text/html"]


def _reads_as_its_note(nb: bh.NotebookPage, placeholder: str) -> None:
    """Once the widget renderer wrote ``placeholder``, the turn's cell shows one row: the
    note, with the prompt."""
    nb.page.wait_for_function(
        "([c, text]) => [...c.querySelectorAll('.jp-OutputArea-output.lm-Panel')]"
        ".some((o) => o.textContent.includes(text))",
        arg=[nb.cell(TURN).element_handle(), placeholder], timeout=60_000)
    rows = _turn_rows(nb)
    assert [r for r in rows if BAD.search(r["text"]) or not r["text"]] == [], rows
    assert len(rows) == 1 and "please echo word0 word1" in rows[0]["text"], rows


def _read_next_morning(nb: bh.NotebookPage, turn_id: str) -> None:
    """The saved notebook opened before its kernel is connected, then reopened once more with
    its new kernel connected (the turn's model is gone): the turn's cell reads as its note."""
    nb.open_before_the_kernel()
    note = nb.cell(TURN).locator(".lash-cut")
    note.wait_for(timeout=60_000)
    _reads_as_its_note(nb, "Loading widget")
    # it names the turn and the command that shows how it ended, which it cannot know
    assert f"%lash replay {turn_id} --session morning" in note.inner_text()

    nb.reopen()
    _reads_as_its_note(nb, "model not found")


def test_a_turn_saved_mid_run_reads_as_its_note_before_and_after_the_kernel_is_back(tmp_path):
    """Run and saved mid-turn in JupyterLab, read the next morning in JupyterLab and in
    Notebook 7 (a byte copy of the file as saved, as a colleague opens it there). The cells run
    once (ADR 220): the turn streams into the same widget, and the file holds the same outputs,
    in both front ends; Notebook 7's own page, its output rows and its widget manager's
    "Loading widget..." and "model not found" are what the reading checks there."""
    bh.write_notebook(tmp_path / "morning.ipynb", CELLS)
    servers = {"jupyterlab": bh.JupyterServer("jupyterlab", tmp_path).start("light"),
               "notebook7": bh.JupyterServer("notebook7", tmp_path)}
    server = servers["jupyterlab"]
    try:
        with bh.chromium() as browser:
            nb = bh.NotebookPage(browser, server, "morning.ipynb")
            _saved_mid_turn(nb)
            shutil.copy(tmp_path / "morning.ipynb", tmp_path / "morning-notebook7.ipynb")
            server.shut_down_sessions()
            bh.wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
                          what="the kernel to shut down")
            turn_id = _turn_id(tmp_path)

            _read_next_morning(nb, turn_id)
            nb.page.close()
            nb = bh.NotebookPage(browser, servers["notebook7"].start("light"),
                                 "morning-notebook7.ipynb")
            _read_next_morning(nb, turn_id)
    finally:
        for each in servers.values():
            each.stop()
