"""The queue panel's Drain, a tool asking for approval, Approve and Stop, in real Chromium.

An agent engineer queues two prompts that each make the model call an ``ask`` tool, shows
``%lash queue`` and clicks Drain (JupyterLab 4). The first turn's question shows on the panel:
she clicks Approve, the tool runs. The second waits too: she clicks the panel's Stop, the turn
ends ``stopped: cancelled`` and the drain ends there. Before ADR 212 the panel said
"draining…" with no button to answer or stop. Saved, the kernel shut down and the notebook
reopened: the panel's snapshot lists what ran, with no live button.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import browser_harness as bh
import pytest
from test_browser_approval import CELLS as APPROVAL_CELLS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
bh.playwright_or_skip()

CELLS: list[str | tuple[str, str]] = [
    *APPROVAL_CELLS[:2],  # %load_ext, and drop_table: an ask tool that records what it dropped
    "s = %lash open panel --store panel.duckdb --fresh --tools drop_table",
    "%lash enqueue Please drop_table 'sales'\n%lash enqueue Please drop_table 'prod'",
    "%lash queue",
    ("recs = await s.store.load_turns('panel')\n"
     "print('DECISIONS', DROPPED, [(t.stop_reason, [c['approval']['decision'] + ' by ' + "
     "c['approval']['by'] for c in t.result['tool_calls']]) for t in recs])"),
]
PANEL = 4


@contextlib.contextmanager
def _notebook(tmp_path) -> Iterator[bh.NotebookPage]:
    """The notebook open in JupyterLab in Chromium; a screenshot if the test fails."""
    bh.ARTIFACTS.mkdir(exist_ok=True)
    bh.write_notebook(tmp_path / "panel.ipynb", CELLS)
    server = bh.JupyterServer("jupyterlab", tmp_path).start()
    with contextlib.ExitStack() as stack:
        stack.callback(server.stop)
        browser = stack.enter_context(bh.chromium())
        stack.callback(browser.close)
        nb = bh.NotebookPage(browser, server, "panel.ipynb")
        try:
            yield nb
        except BaseException:
            if nb.page is not None:
                nb.screenshot(bh.ARTIFACTS / "queue-panel-failure.png")
            raise


def test_the_queue_panel_answers_a_drained_turns_question_and_stops_the_drain(tmp_path):
    with _notebook(tmp_path) as nb:
        nb.open()
        for i in range(PANEL + 1):
            nb.run_cell(i)
        panel = nb.cell(PANEL).locator(".lash-queue")
        panel.locator("tr[data-batch]").nth(1).wait_for(timeout=60_000)
        assert not panel.locator(".lash-stop").is_visible()  # nothing to stop yet
        panel.locator(".lash-drain").click()
        ask = panel.locator(".lash-approval")
        ask.wait_for(timeout=60_000)
        assert ask.locator(".lash-approval-ask").inner_text() == (
            'run drop_table? {"name": "sales"}')
        assert panel.locator(".lash-stop").is_visible()
        nb.screenshot(bh.ARTIFACTS / "queue-panel-question.png", scroll_to=PANEL)
        ask.locator(".lash-approve").click()
        panel.locator(".lash-approval-ask").filter(has_text='"prod"').wait_for(timeout=60_000)
        panel.locator(".lash-stop").click()
        panel.locator(".lash-drain", has_text="▶ Drain").wait_for(timeout=60_000)
        panel.locator(".lash-muted", has_text="ran 2 turns").wait_for(timeout=60_000)
        assert panel.locator(".lash-approval").count() == 0
        assert not panel.locator(".lash-stop").is_visible()
        ran = panel.locator(".lash-ran-turn")
        assert ran.count() == 2
        assert panel.locator("tr[data-batch]").count() == 0  # both batches are done
        assert ran.nth(0).locator(".lash-tool-approval").inner_text() == "approved by user"
        assert ran.nth(1).locator(".lash-outcome").inner_text() == "stopped: cancelled"
        nb.run_cell(PANEL + 1)
        out = nb.cell(PANEL + 1).locator(".jp-OutputArea-output").filter(has_text="DECISIONS")
        out.wait_for(timeout=60_000)
        assert out.inner_text().strip() == (
            "DECISIONS ['sales'] [('assistant_message', ['approved by user']), "
            "('cancelled', ['cancelled by widget_stop'])]")
        nb.save(expect_in_file="approved by user")
        bh.reopen_without_kernel(nb, nb.server)
        snap = nb.cell(PANEL).locator(".lash-snapshot")
        snap.locator(".lash-ran-turn, .lash-turn").first.wait_for(timeout=60_000)
        assert "approved by user" in snap.inner_text()
        assert nb.cell(PANEL).locator(".lash-approval button").count() == 0
        nb.screenshot(bh.ARTIFACTS / "queue-panel-reopened.png", scroll_to=PANEL)
