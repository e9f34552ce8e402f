"""A turn per item of a ``for`` loop, read the next morning (JupyterLab, Chromium).

A data scientist asks the same question for each city in one cell (``for city in cities:``
then ``%lash turn ...``), saves, shuts the kernel down and reopens the notebook. Each turn's
answer must be in that cell, in order, live and after the reopen, with no widget error. The
line used to run as a background task: the cell showed a notice per city and none of the
answers (ADR 160).
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

CITIES = ("Oslo", "Rome", "Lima")
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01",
    "%lash open trips --store trips.duckdb --fresh",
    f"for city in {list(CITIES)!r}:\n    %lash turn What is the weather in {{city}}?",
    "print('next cell ran')",
]


def _answers(nb: NotebookPage) -> list[str]:
    return [t for t in nb.cell(2).locator(".lash-turn .lash-prose").all_inner_texts() if t]


def _expected() -> list[str]:
    return [f"You said: What is the weather in {c}?" for c in CITIES]


def test_the_turns_of_a_loop_read_in_their_cell_live_and_after_a_reopen(tmp_path):
    write_notebook(tmp_path / "loop.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            try:
                nb = NotebookPage(browser, server, "loop.ipynb")
                nb.open()
                nb.run_all()
                nb.cell(3).locator(".jp-OutputArea-output").filter(
                    has_text="next cell ran").wait_for(timeout=120_000)
                outputs = nb.cell(2).locator(".jp-OutputArea").inner_text()
                assert "background task" not in outputs
                assert [a.split(" (")[0] for a in _answers(nb)] == _expected()
                nb.save(expect_in_file="in Lima?")
                page = reopen_without_kernel(nb, server)
                nb.cell(2).scroll_into_view_if_needed()
                page.wait_for_function(
                    "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
                shown = nb.cell(2).locator(".jp-OutputArea").inner_text()
                assert "Error displaying widget" not in shown and "did not end" not in shown
                assert [a.split(" (")[0] for a in _answers(nb)] == _expected()
                assert nb.cell(2).locator(".lash-outcome").all_inner_texts() == [
                    "finished: assistant_message"] * len(CITIES)
            finally:
                browser.close()
    finally:
        server.stop()
