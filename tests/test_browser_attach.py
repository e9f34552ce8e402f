"""Attachments in a real browser (Chromium, JupyterLab 4): while the turn streams, the live
widget shows the figure's thumbnail and the DataFrame's first rows under the prompt; the
finished record keeps them, and after save + kernel shutdown + reopen the thumbnail still
decodes (an image with a real width), from the saved HTML alone."""

from __future__ import annotations

import pytest
from browser_harness import (
    ARTIFACTS,
    JupyterServer,
    NotebookPage,
    chromium,
    playwright_or_skip,
    wait_until,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.15",
    ('import pandas as pd\nfrom matplotlib.figure import Figure\n'
     'df = pd.DataFrame({"city": ["Oslo", "Lima"], "rain_mm": [763, 6]})\n'
     'fig = Figure(figsize=(3, 2), dpi=60)\nfig.subplots().bar(df["city"], df["rain_mm"])'),
    "%lash open rain --store rain.duckdb --fresh",
    "%%lash --attach fig,df\nWhich city is wetter, and does the chart say the same as the table?",
]


def _check_cards(cell) -> None:
    thumb = cell.locator(".lash-attachments img.lash-thumb")
    assert thumb.count() == 1
    wait_until(lambda: thumb.evaluate("img => img.complete && img.naturalWidth > 0"),
               timeout=30, what="the thumbnail to decode")
    assert thumb.evaluate("img => img.naturalWidth") <= 160
    captions = cell.locator(".lash-attachments figcaption").all_inner_texts()
    assert captions[0].startswith("fig · image/png, ") and captions[1] == "df · text/csv, 34 B"
    assert cell.locator(".lash-table-preview").inner_text().splitlines()[:2] == [
        ",city,rain_mm", "0,Oslo,763"]


def test_the_live_widget_and_the_saved_record_show_the_attachments(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "rain.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "rain.ipynb")
            try:
                nb.open()
                nb.run_all()
                turn = nb.cell(3)
                # live: the widget (not the static record) streams with the cards shown
                turn.locator(".lash-turn:not(.lash-static) .lash-status",
                             has_text="running").wait_for(timeout=120_000)
                _check_cards(turn)
                turn.locator(".lash-static .lash-outcome").wait_for(timeout=120_000)
                _check_cards(turn)
                nb.screenshot(ARTIFACTS / "attach-record-live.png", scroll_to=3)
                nb.save(expect_in_file="lash-thumb")
                server.shut_down_sessions()
                wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
                           what="the kernel to shut down")
                nb.reopen()
                turn = nb.cell(3)
                turn.locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                _check_cards(turn)
            finally:
                browser.close()
    finally:
        server.stop()
