"""Approve / Deny / Stop on a tool row in real Chromium (JupyterLab 4), one notebook, one kernel.

A data scientist marks ``drop_table`` ``ask``. Three turns call it: she clicks Approve on the
first (the tool runs), Deny on the second (the model reads the denial), and Stop while the
third waits (the turn ends ``stopped: cancelled``, nothing ran). The store holds each decision
and who made it. Saved, kernel shut down, reopened: each record still says who decided.
"""

from __future__ import annotations

import pytest
from browser_harness import (
    ARTIFACTS,
    CONTRAST_JS,
    JupyterServer,
    NotebookPage,
    chromium,
    low_contrast,
    playwright_or_skip,
    reopen_without_kernel,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01",
    ('from lash_nb import tool\n\nDROPPED = []\n\n@tool(approval="ask")\n'
     'def drop_table(name: str) -> str:\n    """Drop a table."""\n'
     '    DROPPED.append(name)\n    return f"dropped {name}"'),
    "%lash open approvals --store approvals.duckdb --fresh --tools drop_table",
    "%%lash\nPlease drop_table 'sales'",
    "%%lash\nPlease drop_table 'staging'",
    "%%lash\nPlease drop_table 'prod'",
    ("b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics().ctx.bindings['approvals']\n"
     "recs = await b.session.store.load_turns('approvals')\n"
     "print('DROPPED', DROPPED)\n"
     "print('DECISIONS', [(t.stop_reason, [c['approval']['decision'] + ' by ' + c['approval']['by']\n"
     "                     for c in t.result['tool_calls']]) for t in recs])"),
    "%lash tools",
]
APPROVE, DENY, STOP = 3, 4, 5


def _waiting_row(cell):
    """The Approve / Deny bar of the cell's waiting tool row, once it is shown."""
    bar = cell.locator(".lash-approval")
    bar.wait_for(timeout=60_000)
    assert "run drop_table?" in bar.inner_text()
    assert cell.locator(".lash-tool-waiting .lash-tool-approval").inner_text() == "waiting for approval"
    assert cell.locator(".lash-status").inner_text() == "waiting for approval"  # seen from the top
    return bar


def _check_records(cells) -> None:
    approved, denied, stopped = cells.nth(APPROVE), cells.nth(DENY), cells.nth(STOP)
    assert approved.locator(".lash-tool-approval").inner_text() == "approved by user"
    assert "drop_table returned dropped sales." in approved.locator(".lash-prose").inner_text()
    assert denied.locator(".lash-tool-approval").inner_text() == "denied by user"
    assert denied.locator(".lash-tool-denied .lash-tool-name").inner_text() == "drop_table"
    assert "was denied by the user" in denied.locator(".lash-prose").inner_text()
    assert stopped.locator(".lash-tool-approval").inner_text() == "cancelled by widget_stop"
    assert stopped.locator(".lash-outcome").inner_text() == "stopped: cancelled"
    for c in (approved, denied, stopped):
        assert c.locator(".lash-approval button").count() == 0  # a record has no live buttons


def test_approve_deny_and_stop_while_asking_in_chromium_and_the_saved_record(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "approvals.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("dark")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "approvals.ipynb")
            try:
                nb.open()
                for i in range(3):
                    nb.run_cell(i)
                nb.cell(2).locator(".jp-OutputArea-output").filter(has_text="lash session").wait_for(
                    timeout=60_000)

                nb.run_cell(APPROVE)
                cell = nb.cell(APPROVE)
                bar = _waiting_row(cell)
                nb.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'",
                                          timeout=30_000)
                rows = nb.page.evaluate(CONTRAST_JS, ".lash-approval *, .lash-tool *")
                assert len(rows) >= 5 and low_contrast(rows) == []
                nb.screenshot(ARTIFACTS / "approval-waiting.png", scroll_to=APPROVE)
                bar.locator(".lash-approve").click()
                cell.locator(".lash-outcome").filter(has_text="finished: assistant_message").wait_for(
                    timeout=60_000)

                nb.run_cell(DENY)
                cell = nb.cell(DENY)
                _waiting_row(cell).locator(".lash-deny").click()
                cell.locator(".lash-outcome").filter(has_text="finished: assistant_message").wait_for(
                    timeout=60_000)

                nb.run_cell(STOP)
                cell = nb.cell(STOP)
                _waiting_row(cell)
                cell.locator(".lash-stop").click()
                cell.locator(".lash-outcome").filter(has_text="stopped: cancelled").wait_for(
                    timeout=60_000)
                _check_records(nb.panel.locator(".jp-Cell"))

                nb.run_cell(6)
                out = nb.cell(6).locator(".jp-OutputArea-output").filter(has_text="DECISIONS")
                out.wait_for(timeout=60_000)
                text = out.inner_text()
                assert "DROPPED ['sales']" in text
                assert ("DECISIONS [('assistant_message', ['approved by user']), "
                        "('assistant_message', ['denied by user']), "
                        "('cancelled', ['cancelled by widget_stop'])]") in text
                nb.run_cell(7)  # the catalog: grouped by source, the policy on the tool
                panel = nb.cell(7).locator(".lash-tools")
                panel.locator("tr.lash-group").filter(has_text="Python functions").wait_for(
                    timeout=60_000)
                row = panel.locator("tr", has_text="drop_table")
                assert row.locator(".lash-tool-approval").inner_text() == "ask"
                nb.screenshot(ARTIFACTS / "approval-live.png", scroll_to=APPROVE)

                nb.save(expect_in_file="cancelled by widget_stop")
                reopen_without_kernel(nb, server)  # a new kernel: the records are static HTML
                nb.cell(STOP).locator(".lash-outcome").wait_for(timeout=60_000)
                _check_records(nb.panel.locator(".jp-Cell"))
                rows = nb.page.evaluate(CONTRAST_JS, ".lash-turn *")
                assert len(rows) > 20 and low_contrast(rows) == []
                nb.screenshot(ARTIFACTS / "approval-reopened.png", scroll_to=APPROVE)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / "approval-failure.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
