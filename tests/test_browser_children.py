"""The live turn widget in a real browser shows a child session's turn nested under the tool
row that runs it (JupyterLab 4, headless Chromium), and the saved notebook keeps it."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_harness import CHROMIUM, JupyterServer, NotebookPage, chromium, wait_until, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]
pytest.importorskip("playwright.sync_api",
                    reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.08",
    ('from lash_nb import ToolContext, run_child, tool\n\n\n'
     '@tool\nasync def ask_helper(question: str, context: ToolContext) -> str:\n'
     '    """Ask a helper agent."""\n'
     '    child = await run_child(context, f"helper, answer this: {question}")\n'
     '    return child.assistant_output.safe_text\n'),
    "%lash open kids --store kids.duckdb --fresh --provider offline --tools ask_helper",
    '%%lash\nask_helper question: "why is the sky blue?"\n',
]

LIVE_CHILD = ".lash-turn:not(.lash-static) .lash-child"


def test_live_widget_nests_the_child_turn_under_its_tool_row(tmp_path):
    write_notebook(tmp_path / "kids.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "kids.ipynb")
            page = nb.open()
            nb.run_all()
            # while the turn runs (the live widget, not the saved HTML), the child's text
            # streams inside the nested block that follows the tool row
            page.locator(LIVE_CHILD, has_text="You said: helper, answer this").first.wait_for(
                timeout=120_000)
            live = page.locator(LIVE_CHILD).first
            assert "child session kids.call_" in live.locator(".lash-child-head").inner_text()
            wrap = page.locator(".lash-turn:not(.lash-static) .lash-tool-wrap").first
            assert wrap.locator(".lash-tool").count() == 1
            wait_until(server.kernels_idle, timeout=120, what="the turn to finish")
            saved = nb.save("lash-child")
            html = [o["data"]["text/html"] for c in saved["cells"] for o in c.get("outputs", [])
                    if "text/html" in o.get("data", {}) and "lash-child" in o["data"]["text/html"]]
            assert html and "You said: helper, answer this: why is the sky blue?" in html[-1]
            browser.close()
    finally:
        server.stop()
