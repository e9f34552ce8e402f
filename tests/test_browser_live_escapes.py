"""The live turn widget in a real browser shows a tool's terminal output as the finished record
does (JupyterLab 4, headless Chromium): no colour codes, bells or bidi controls while the turn
runs. The view showed ``[31;1mFAILED[0m`` until the turn ended and the record replaced it."""

from __future__ import annotations

import re

import pytest
from browser_harness import (
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
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.1",
    ('from lash_nb import tool\n\n\n'
     '@tool\ndef build_log(job: str) -> str:\n'
     '    """The last build log of a CI job."""\n'
     '    steps = " ".join(f"step{i}" for i in range(60))\n'
     '    return ("\\x1b[31;1mFAILED\\x1b[0m test_parse\\x07 run \\u202e7\\u202c took 3s\\x1b[K "'
     ' + steps)\n'),
    "%lash open ci --store ci.duckdb --fresh --provider offline --tools build_log",
    "%%lash\nWhat does build_log say for 'ci'?\n",
]
LIVE = ".lash-turn:not(.lash-static):not(.lash-snapshot)"  # not the cut-turn note
STREAMED = re.compile(r"build_log\s+returned\s+FAILED\s+test_parse")
UNSHOWN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_the_live_widget_shows_a_tools_coloured_output_as_the_record_does(tmp_path):
    write_notebook(tmp_path / "ci.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "ci.ipynb")
            page = nb.open()
            nb.run_all()
            # while the turn runs (the live widget: the answer echoes the log word by word)
            # (up to its fourth word: a loaded machine read the prose between the third and the
            # fourth once, and the words in order are what the last assert checks)
            page.locator(f"{LIVE} .lash-prose", has_text=STREAMED).first.wait_for(timeout=120_000)
            live_output = page.locator(f"{LIVE} .lash-tool-output").first.text_content()
            live_prose = page.locator(f"{LIVE} .lash-prose").first.text_content()
            wait_until(server.kernels_idle, timeout=120, what="the turn to finish")
            record = page.locator(".lash-turn.lash-static .lash-tool-output").first.text_content()
            browser.close()
    finally:
        server.stop()
    for text in (live_output, live_prose):
        assert UNSHOWN.findall(text) == []
        assert "[31;1m" not in text and "[0m" not in text and "[K" not in text
    assert live_output.startswith("FAILED test_parse run 7 took 3s step0")
    assert live_output == record  # the same text live and in the finished record
    # while it streams, the prose is its rendered blocks followed by the plain text not yet
    # rendered: the words, in order, with a line break or a space between them
    assert " ".join(live_prose.split()).startswith("build_log returned FAILED test_parse")
