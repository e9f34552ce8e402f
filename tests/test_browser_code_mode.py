"""Code mode in a real browser (Chromium, JupyterLab 4), the way a data scientist uses it: open
a code-mode session on a small DataFrame, ask a question (the model's cells stream into the
live widget as code blocks with their output), ask for a cell that runs long and press the
widget's Stop (the turn ends ``stopped: cancelled`` with the cell's output so far, the next
notebook cell runs), then save, shut the kernel down and reopen: both turns' records still show
their cells and the stopped state, from the saved HTML alone.

The model is the offline code-mode rule, except for a prompt that asks to count slowly: the
notebook scripts that one with a ``FunctionProvider`` (a sleep loop that prints a tick a
step), put in place of the offline provider before ``%lash open`` names it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser_harness import (
    ARTIFACTS,
    JupyterServer,
    NotebookPage,
    chromium,
    playwright_or_skip,
    reopen_without_kernel,
    wait_until,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

MODEL = '''import pandas as pd
from lash_nb import LashCore, Role
from lash_nb.providers import FunctionProvider
from lash_nb._providers.offline_code import code_reply
from lash_nb._notebook.extension import _magics

sales = pd.DataFrame({"region": ["north", "south", "north", "east"],
                      "revenue": [120, 80, 100, 60]})
SLOW = ("I count slowly.\\n<python>\\nimport time\\nfor i in range(100000):\\n"
        "    print('tick', i, flush=True)\\n    time.sleep(0.2)\\n</python>\\n")

def model(request):
    asks = [m.text() for m in request.messages
            if m.role is Role.USER and m.origin in (None, "queued_input")]
    return SLOW if asks and "count slowly" in asks[-1] else code_reply(request.messages)

# the core %lash open --store code.duckdb --provider offline uses, with the scripted model
_magics().ctx.cores[("code.duckdb", "offline", "")] = (
    LashCore.builder().provider(FunctionProvider(model, kind="offline"))
    .store("code.duckdb").build())'''

CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05",
    MODEL,
    "%lash open analyst --fresh --store code.duckdb --provider offline --mode code --share sales",
    "%%lash\nWhat is the average revenue by region?",
    "%%lash\nPlease count slowly.",
    ("b = _magics().ctx.bindings['analyst']\n"
     "recs = await b.session.store.load_turns('analyst')\n"
     "print('TURNS', [(t.outcome, t.stop_reason) for t in recs])\n"
     "print('SANDBOX', await b.session.parts.code_mode.sandbox.pid())"),
]
# every code block the live widget (not the static record) draws, with its output, as seen
WATCH_LIVE_CELLS = """() => {
  window.lashLiveCells = [];
  const seen = new Set();
  new MutationObserver(() => {
    for (const d of document.querySelectorAll(".lash-turn:not(.lash-static) details.lash-cell")) {
      const code = d.querySelector(".lash-cell-code"), out = d.querySelector(".lash-cell-output");
      if (!code || !out) continue;
      const key = code.textContent + "\\u0000" + out.textContent;
      if (!seen.has(key)) { seen.add(key); window.lashLiveCells.push([code.textContent, out.textContent]); }
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
EXPLORE_OUT = "sales (4, 2) ['region', 'revenue']"
ANSWER_OUT = "{'east': 60.0, 'north': 110.0, 'south': 80.0}"


def _running(pid: int) -> bool:
    """The process is alive (a zombie waiting to be reaped has stopped running)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return re.search(r"^State:\s+Z", status, re.M) is None


def _check_answer(turn, static: str) -> None:
    """The first turn: two cells, each a code block with its output, and the finish."""
    turn.locator(f"{static} .lash-outcome").filter(
        has_text="finished").wait_for(timeout=120_000)
    cells = turn.locator(f"{static} details.lash-cell")
    assert cells.count() == 2
    codes = cells.locator(".lash-cell-code").all_inner_texts()
    outs = cells.locator(".lash-cell-output").all_inner_texts()
    assert "for _name, _frame in frames.items():" in codes[0]
    assert "question = 'What is the average revenue by region?'" in codes[1]
    assert outs[0].strip() == EXPLORE_OUT
    assert outs[1].strip() == ANSWER_OUT
    assert [s.split()[:3] for s in cells.locator("summary").all_inner_texts()] == [
        ["cell", "1", "ok"], ["cell", "2", "ok"]]


def _check_stopped(turn, static: str) -> None:
    """The second turn: stopped, its one cell shown with the code and the ticks printed."""
    turn.locator(f"{static} .lash-outcome").filter(
        has_text="stopped: cancelled").wait_for(timeout=60_000)
    cell = turn.locator(f"{static} details.lash-cell")
    assert cell.count() == 1
    assert "print('tick', i, flush=True)" in cell.locator(".lash-cell-code").inner_text()
    ticks = cell.locator(".lash-cell-output").inner_text().splitlines()
    assert ticks[:2] == ["tick 0", "tick 1"]
    assert cell.locator("summary .lash-tool-status").inner_text() == "cancelled"
    assert cell.locator(".lash-cell-error").inner_text() == "stopped: the cell was interrupted"
    assert turn.locator(".lash-stop").count() == 0


def test_code_mode_cells_stream_stop_and_survive_a_reopen(tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "code.ipynb", CELLS)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "code.ipynb")
            try:
                page = nb.open()
                page.evaluate(WATCH_LIVE_CELLS)
                nb.run_all()
                answer, slow = nb.cell(3), nb.cell(4)
                _check_answer(answer, ".lash-static")
                # live: while the turn ran, each cell was drawn as a code block with its output
                live = page.evaluate("() => window.lashLiveCells")
                assert any("frames.items()" in c and o.strip() == EXPLORE_OUT for c, o in live)
                assert any("revenue by region" in c and o.strip() == ANSWER_OUT for c, o in live)

                # the long cell streams its ticks into the live widget; Stop interrupts it
                running = slow.locator(".lash-turn:not(.lash-static) details.lash-cell")
                running.locator(".lash-cell-output").filter(
                    has_text="tick 2").wait_for(timeout=120_000)
                assert slow.locator(".lash-status").first.inner_text() == "running"
                slow.locator(".lash-stop").click()
                _check_stopped(slow, ".lash-static")
                assert slow.locator(".lash-status").first.inner_text() == "stopped"
                nb.screenshot(ARTIFACTS / "code-mode-live.png", scroll_to=3, height=1400)

                # the next notebook cell runs; the store holds both turns as shown
                after = nb.cell(5).locator(".jp-OutputArea-output").filter(has_text="TURNS")
                after.wait_for(timeout=60_000)
                assert "[('finished', 'final_value'), ('stopped', 'cancelled')]" in after.inner_text()
                sandbox = int(re.findall(r"SANDBOX (\d+)", after.inner_text())[0])
                assert _running(sandbox)

                saved = nb.save(expect_in_file="stopped: cancelled")
                text = json.dumps(saved)
                assert "Error displaying widget" not in text
                reopen_without_kernel(nb, server)
                # the sandbox kernel does not outlive the user's kernel
                wait_until(lambda: not _running(sandbox), timeout=60,
                           what="the sandbox kernel to exit with the notebook's kernel")
                answer, slow = nb.cell(3), nb.cell(4)
                _check_answer(answer, "")
                _check_stopped(slow, "")
                for i in (3, 4):
                    assert "Error displaying widget" not in nb.cell(i).inner_text()
                nb.screenshot(ARTIFACTS / "code-mode-reopened.png", scroll_to=3, height=1400)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / "code-mode-failure.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
