"""A long unbroken token (a URL, a hash, base64) in a prompt or an answer wraps in the saved
record instead of making it thousands of pixels wide (real Chromium, the record's own HTML).

A saved notebook must read the next morning: a record as wide as its longest token puts the
rest of the answer behind a horizontal scrollbar.
"""

from __future__ import annotations

import pytest
from browser_harness import chromium, playwright_or_skip
from IPython.utils.capture import capture_output
from notebook_harness import ReraisingShell

pytestmark = [pytest.mark.browser]
playwright_or_skip()

TOKEN = "https://example.com/" + "a1b2c3d4" * 300  # 2,420 characters, no break opportunity


def _record_html(tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell("%lash open wide --store :memory: --fresh")
        sh.user_ns["token"] = TOKEN
        with capture_output() as cap:
            sh.run_cell("%%lash\nplease echo {token}")  # the offline model echoes it back
    finally:
        sh.close()
    html = [o.data["text/html"] for o in cap.outputs if "text/html" in o.data]
    assert html and TOKEN in html[-1]
    return html[-1]


def test_a_long_token_wraps_in_the_saved_record(tmp_path, monkeypatch):
    html = _record_html(tmp_path, monkeypatch)
    with chromium() as browser:
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.set_content(f"<html><body style='margin:0; width:800px'>{html}</body></html>")
            widths = page.evaluate(
                "() => [...document.querySelectorAll('.lash-turn, .lash-turn *')]"
                ".map(e => [e.className || e.tagName, e.scrollWidth])")
            page_width = page.evaluate("() => document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert page_width <= 1000
    assert [w for w in widths if w[1] > 800] == []
