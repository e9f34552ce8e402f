"""A Python-API turn waiting for approval, in real Chromium (JupyterLab 4): the question shows
under the awaiting cell and the Approve click reaches it (ADR 204).

An agent engineer uses the API, not the magics: no ``%load_ext``, ``out = await
s.turn(...).run()`` with an ``ask`` tool and no approver. The cell shows which tool waits and
with which arguments, and Approve / Deny; she clicks Approve, the tool runs, the turn
finishes. Saved, kernel shut down, reopened: the cell keeps the question and its answer as
text, no dead buttons.
"""

from __future__ import annotations

import browser_harness as bh
import pytest
from notebook_harness import kernel_serves_widgets_mid_cell

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not kernel_serves_widgets_mid_cell(),
                                 reason="ipykernel < 7.4 takes the click after the cell")]
bh.playwright_or_skip()

CELLS: list[str | tuple[str, str]] = [
    ('from lash_nb import LashCore, tool\nfrom lash_nb.stores import DuckDBStore\n'
     'from lash_nb.testing import scripted, tool_call\n\nDROPPED = []\n\n'
     '@tool(approval="ask")\ndef drop_table(name: str) -> str:\n    """Drop a table."""\n'
     '    DROPPED.append(name)\n    return f"dropped {name}"\n\n'
     'core = (LashCore.builder().tools(drop_table).store(DuckDBStore("api.duckdb")).model("m")\n'
     '        .provider(scripted([tool_call("drop_table", \'{"name": "sales"}\', "c1")], "done"))'
     '.build())'),
    ('s = await core.session("api").open()\nout = await s.turn("drop the sales table").run()\n'
     'call = out.result.tool_calls[0]\n'
     'print("DECIDED", call.approval.decision, call.approval.by, DROPPED)'),
]
QUESTION = ("waits for approval of tool 'drop_table' (call c1) with arguments "
            '{"name": "sales"}')


def test_a_python_api_cell_waiting_for_approval_shows_approve_and_the_click_answers(tmp_path):
    bh.ARTIFACTS.mkdir(exist_ok=True)
    bh.write_notebook(tmp_path / "api_approval.ipynb", CELLS)
    server = bh.JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with bh.chromium() as browser:
            nb = bh.NotebookPage(browser, server, "api_approval.ipynb")
            try:
                nb.open()
                nb.run_cell(0)
                nb.run_cell(1)
                cell = nb.cell(1)
                approve = cell.locator("button", has_text="Approve")
                approve.wait_for(timeout=60_000)
                assert cell.locator("button", has_text="Deny").count() == 1
                output = cell.locator(".jp-OutputArea-output").first
                assert QUESTION in output.inner_text()
                rows = nb.page.evaluate(bh.CONTRAST_JS, ".jp-Cell .jupyter-widgets *")
                assert len(rows) >= 3 and bh.low_contrast(rows) == []
                nb.screenshot(bh.ARTIFACTS / "approval-api-waiting.png", scroll_to=1)
                approve.click()
                printed = cell.locator(".jp-OutputArea-output").filter(has_text="DECIDED")
                printed.wait_for(timeout=60_000)
                assert "DECIDED approved user ['sales']" in printed.inner_text()
                assert cell.locator(".jp-OutputArea button").count() == 0  # they went with the answer
                assert f"{QUESTION}: approved by user" in cell.locator(
                    ".jp-OutputArea").inner_text()
                nb.screenshot(bh.ARTIFACTS / "approval-api-answered.png", scroll_to=1)

                nb.save(expect_in_file="approved by user")
                bh.reopen_without_kernel(nb, server)
                cell = nb.cell(1)
                cell.locator(".jp-OutputArea-output").filter(has_text="DECIDED").wait_for(
                    timeout=60_000)
                text = cell.locator(".jp-OutputArea").inner_text()
                assert f"{QUESTION}: approved by user" in text
                assert "Error displaying widget" not in text and "Loading widget" not in text
            except Exception:
                if nb.page is not None:
                    nb.screenshot(bh.ARTIFACTS / "approval-api-failure.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
