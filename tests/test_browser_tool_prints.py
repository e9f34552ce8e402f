"""What a tool prints is on its row in the turn widget (real Chromium, JupyterLab 4 and
Notebook 7; ADR 197; the notebook runs in JupyterLab, its saved file is read in both, ADR 220).

A user's notebook: a tool that prints progress lines, a line too long for the row, one stderr
line and a ``logging`` warning, and waits (on a file the test writes) so its row is seen while
it runs; a second tool that prints 20,000 lines (past the 65,536 characters kept). Each is
called by a ``%%lash`` turn of the offline provider (a prompt that names a tool calls it).
While the first turn runs, the running row says "· printed" and, opened, shows the lines so
far; once it ends, the record's row shows all of them in the order printed. Nothing printed
is loose under the cell (no stream output on the page or in the saved file). After Save, the
kernel shut down and the notebook reopened, the saved record's rows still show the lines,
in a bounded scroll box that wraps, with readable contrast.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from browser_harness import (
    ARTIFACTS,
    CHROMIUM,
    CONTRAST_JS,
    JupyterServer,
    NotebookPage,
    chromium,
    low_contrast,
    reopen_without_kernel,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401  (browser_harness.chromium() drives it)
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

LONG = "wide " + "x" * 400  # wider than any row: it must wrap, not widen the page
TOOLS = f'''import logging, os, sys, time
from lash_nb import tool

@tool
def survey(site: str) -> str:
    """Survey a site, telling how it goes."""
    for i in range(1, 4):
        print(f"step {{i}}/6 measuring {{site}}")
    sys.stderr.write("STDERR the north wall is damp\\n")
    logging.getLogger("survey").warning("LOGGED gauge %s drifts", site)
    print("{LONG}")
    for _ in range(2400):  # until the test has seen the running row (it writes "go")
        if os.path.exists("go"):
            break
        time.sleep(0.05)
    for i in range(4, 7):
        print(f"step {{i}}/6 measuring {{site}}")
    return "surveyed " + site

@tool
def chatty(site: str) -> str:
    """Read every gauge of a site aloud."""
    for i in range(20_000):
        print(f"{{i:06d}} gauge reading of {{site}} ok")
    return "read " + site
'''
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02",
    TOOLS,
    "%lash open works --store works.duckdb --fresh --tools survey,chatty",
    "%%lash\nWhat does survey say for 'quarry'?",
    "%%lash\nWhat does chatty say for 'yard'?",
]
FIRST = ["step 1/6 measuring quarry", "step 2/6 measuring quarry", "step 3/6 measuring quarry",
         "STDERR the north wall is damp", "LOGGED gauge quarry drifts", LONG]
ALL = [*FIRST, "step 4/6 measuring quarry", "step 5/6 measuring quarry",
       "step 6/6 measuring quarry"]
LIVE = ".lash-turn:not(.lash-static):not(.lash-snapshot)"
STREAM = ('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"], '
          '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
BOX_JS = """el => { const s = getComputedStyle(el), r = el.getBoundingClientRect();
  return {maxHeight: s.maxHeight, overflowY: s.overflowY, whiteSpace: s.whiteSpace,
          width: r.width, height: r.height, fontSize: parseFloat(s.fontSize),
          scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
          scrollHeight: el.scrollHeight, clientHeight: el.clientHeight}; }"""


def _opened(row):
    """``row`` opened as a user opens it (a click on its summary)."""
    row.scroll_into_view_if_needed()
    if row.get_attribute("open") is None:
        row.locator("summary").click()
    return row


def _printed_lines(row) -> list[str]:
    return _opened(row).locator(".lash-tool-printed").text_content().splitlines()


def _check_survey_row(row) -> None:
    """All nine lines, in the order printed, in a box that wraps the long one."""
    assert row.locator(".lash-tool-said").inner_text() == "· printed"
    assert _printed_lines(row) == ALL
    assert row.locator(".lash-tool-printed-head").inner_text() == "printed"
    box = row.locator(".lash-tool-printed").evaluate(BOX_JS)
    assert box["whiteSpace"] == "pre-wrap", box
    assert box["scrollWidth"] <= box["clientWidth"] + 1, box  # wrapped, no sideways scroll
    assert box["width"] < 1280, box
    # the printed box comes before the output, the output is the tool's result only
    assert row.locator(".lash-tool-output").text_content().strip() == "surveyed quarry"
    order = row.evaluate("d => [...d.children].map(c => c.className)")
    assert order.index("lash-tool-printed") < order.index("lash-tool-output"), order


def _check_chatty_row(row) -> None:
    """20,000 lines (640,000 characters): the row shows the first 20,000 characters of what
    lash kept (the whole lines of the head), then a line saying how much more there is, how
    much lash kept of the 640,000 characters, the ``%lash sql`` that reads it and the line
    saying what lash left out (ADR 210), in a box of 20 lines' height that scrolls."""
    text = _opened(row).locator(".lash-tool-printed").text_content()
    head, note = text.split("\n… ", 1)
    lines = head.splitlines()
    assert lines == [f"{i:06d} gauge reading of yard ok" for i in range(len(lines))]
    more = int(note.split(" more characters not shown here", 1)[0].replace(",", ""))
    # what lash kept: the head and the tail around its cut line, at most max_output and that line
    assert 20_000 < len(head) + 1 + more <= 65_536 + 200, (len(head), more)
    sql = "%lash sql SELECT printed FROM tool_calls WHERE call_id = 'call_"
    assert re.search(r"lash kept [\d,]+ of the 640,000 characters this tool printed \(its "
                     r"start and end\), stored: " + re.escape(sql), note), note
    assert re.search(r"\n\[… lash left out [\d,]+ of the 640,000 characters \([\d,]+ lines\) "
                     r"this tool printed; max_output=65,536 …\]$", note), note
    assert "019999 gauge reading" not in text  # never the whole of what was printed
    box = row.locator(".lash-tool-printed").evaluate(BOX_JS)
    assert box["maxHeight"] != "none" and box["overflowY"] == "auto", box
    assert box["height"] <= 20 * box["fontSize"] + 12, box
    assert box["scrollHeight"] > 10 * box["clientHeight"], box


def _nothing_loose(cells) -> None:
    for i in (3, 4):
        loose = cells.nth(i).locator(STREAM)
        assert loose.count() == 0, loose.all_inner_texts()


def _readable(page) -> None:
    rows = page.evaluate(CONTRAST_JS, ".lash-tool-said, .lash-tool-printed-head, "
                         ".lash-tool-printed")
    assert len([r for r in rows if r["text"].startswith("step 1/6")]) == 1, rows
    assert low_contrast(rows) == []


def _read_saved(nb: NotebookPage, theme: str, frontend: str) -> None:
    """The saved notebook, open in ``nb`` with a new kernel: the records' rows still show the
    lines, nothing printed is loose, the colours read."""
    page = nb.page
    cells = nb.panel.locator(".jp-Cell")
    row = cells.nth(3).locator(".lash-static .lash-tool-done")
    row.wait_for(timeout=60_000)
    _check_survey_row(row)
    chatty = cells.nth(4).locator(".lash-static .lash-tool-done")
    chatty.scroll_into_view_if_needed()
    chatty.wait_for(timeout=60_000)
    _check_chatty_row(chatty)
    _nothing_loose(cells)
    _readable(page)
    nb.hide_sidebar()
    nb.screenshot(ARTIFACTS / f"tool-prints-reopened-{theme}-{frontend}.png", scroll_to=3)
    chatty.locator(".lash-tool-printed").evaluate(
        "e => { e.scrollTop = e.scrollHeight; e.scrollIntoView({block: 'center'}); }")
    page.screenshot(path=str(ARTIFACTS / f"tool-prints-cap-{theme}-{frontend}.png"))


def test_what_a_tool_prints_is_on_its_row_live_saved_and_reopened(tmp_path):
    """Run, saved and reopened in JupyterLab (light theme); the file as saved read in
    Notebook 7 (dark theme). The tools run once (ADR 220): the live rows are the widget's,
    drawn by the same widget manager in both; the saved record is read in each."""
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "works.ipynb", CELLS)
    frontend, theme = "jupyterlab", "light"
    servers = {"jupyterlab": JupyterServer("jupyterlab", tmp_path).start(theme),
               "notebook7": JupyterServer("notebook7", tmp_path)}
    server = servers[frontend]
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "works.ipynb")
            try:
                page = nb.open()
                nb.run_all()
                cells = nb.panel.locator(".jp-Cell")
                turn = cells.nth(3)
                # while the tool runs: its row says it printed, opened it shows the lines so far
                running = turn.locator(f"{LIVE} .lash-tool-running")
                running.locator(".lash-tool-said").wait_for(timeout=180_000)
                assert running.locator(".lash-tool-name").inner_text() == "survey"
                _opened(running).locator(".lash-tool-printed").filter(
                    has_text="LOGGED").wait_for(timeout=30_000)
                assert _printed_lines(running) == FIRST
                _nothing_loose(cells)
                nb.screenshot(ARTIFACTS / f"tool-prints-live-{theme}-{frontend}.png", scroll_to=3)
                (tmp_path / "go").write_text("")

                done = turn.locator(".lash-static .lash-tool-done")
                done.wait_for(timeout=120_000)
                _check_survey_row(done)
                chatty = cells.nth(4).locator(".lash-static .lash-tool-done")
                chatty.wait_for(timeout=180_000)
                _check_chatty_row(chatty)
                _nothing_loose(cells)
                _readable(page)
                nb.screenshot(ARTIFACTS / f"tool-prints-done-{theme}-{frontend}.png", scroll_to=3)

                saved = nb.save(expect_in_file="SELECT printed FROM tool_calls")
                streams = [o for c in saved["cells"] for o in c.get("outputs", ())
                           if o["output_type"] == "stream"]
                assert streams == []
                assert "step 6/6 measuring quarry" in json.dumps(saved)
                shutil.copy(tmp_path / "works.ipynb", tmp_path / "works-notebook7.ipynb")

                reopen_without_kernel(nb, server)
                _read_saved(nb, theme, frontend)
                server.shut_down_sessions()
                nb.page.close()

                frontend, theme = "notebook7", "dark"
                server = servers[frontend].start(theme)
                nb = NotebookPage(browser, server, "works-notebook7.ipynb")
                nb.open()
                _read_saved(nb, theme, frontend)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"tool-prints-failure-{frontend}.png")
                raise
            finally:
                browser.close()
    finally:
        for each in servers.values():
            each.stop()


TICKS = '''import os, time
from lash_nb import tool

@tool
def watch(site: str) -> str:
    """Watch a site, a line now and then, until told to stop."""
    for i in range(40):
        print(f"line {i:03d} of {site}")
    for i in range(600):  # until the test has read the box (it writes "go")
        if os.path.exists("go"):
            break
        print(f"tick {i:03d}")
        time.sleep(0.25)
    return "watched " + site
'''
TICK_CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.02",
    TICKS,
    "%lash open ticks --store ticks.duckdb --fresh --tools watch",
    "%%lash\nWhat does watch say for 'gate'?",
]
BOX = ".lash-turn:not(.lash-static):not(.lash-snapshot) .lash-tool-running .lash-tool-printed"
# Read in one call in the page: a locator's evaluate finds the element, then runs on it in a
# second call, and an element a redraw took off the page in between reads scrollTop 0
# (the flaky before=486, after=0 of ADR 206)
LAST_TICK = r"b.textContent.match(/tick (\d+)\n?$/)[1] * 1"
AT_END = "[b.scrollTop, b.scrollTop + b.clientHeight >= b.scrollHeight - 2]"
# the box's scrolls that have ended (Chromium's scrollend), counted on the document: a wheel's
# smooth scroll goes on after the wheel event, the box is read once it stopped
COUNT_ENDS = """() => { window.lashTestEnds = 0; document.addEventListener("scrollend", (e) => {
  if (e.target.classList && e.target.classList.contains("lash-tool-printed")) window.lashTestEnds++;
}, true); }"""
SELECTED = """() => { const s = getSelection(), b = document.querySelector(%r);
  return [s.toString(), !!b && s.rangeCount > 0 && b.contains(s.getRangeAt(0).commonAncestorContainer)]; }"""


def _box(page, expr: str):
    return page.evaluate(f"() => {{ const b = document.querySelector({BOX!r}); return {expr}; }}")


def _ticked(box, n: int) -> None:
    """Wait for the line ``tick n`` (n - 1 more lines and redraws after the last one seen)."""
    box.filter(has_text=f"tick {n:03d}").wait_for(timeout=60_000)


def _wheel_until(page, box, dy: int, condition: str) -> None:
    """Wheel over ``box`` until ``condition`` (on the element ``b``) holds once the scroll has
    ended, at most 5 times."""
    check = f"() => {{ const b = document.querySelector({BOX!r}); return !!b && ({condition}); }}"
    for _ in range(5):
        ends = page.evaluate("() => window.lashTestEnds")
        try:  # the hover too: the box may be redrawn (detached) under it
            box.hover(timeout=3_000)
            page.mouse.wheel(0, dy)
            page.wait_for_function(f"() => window.lashTestEnds > {ends}", timeout=5_000)
            page.wait_for_function(check, timeout=3_000)
            return
        except Exception:
            continue
    raise AssertionError(f"the wheel did not bring the box to {condition}")


def test_a_printing_tools_box_stays_where_the_user_scrolled_it(tmp_path):
    """A tool still printing: the user opens its row, scrolls its printed box to the newest
    lines and the box follows them as more come; scrolled up to an older line it stays there;
    a word they select in it stays selected (each redraw made a new box: back at its top,
    a wheel cut short, the selection gone, ADR 205, 206). JupyterLab only (ADR 220): the box,
    its scroll and its selection live in the live widget's own nodes, which its redraw keeps or
    replaces the same way under Notebook 7's widget manager (the same package)."""
    frontend = "jupyterlab"
    write_notebook(tmp_path / "ticks.ipynb", TICK_CELLS)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "ticks.ipynb")
            try:
                page = nb.open()
                page.evaluate(COUNT_ENDS)
                nb.run_all()
                row = nb.cell(3).locator(f"{LIVE} .lash-tool-running")
                box = row.locator(".lash-tool-printed")
                row.locator(".lash-tool-said").wait_for(timeout=180_000)
                row.locator("summary").click()  # the row is redrawn as lines come: no scroll first
                _ticked(box, 1)
                # down to the newest lines, as a user reads them; they follow the new lines
                _wheel_until(page, box, 5000, "b.scrollTop + b.clientHeight >= b.scrollHeight - 2")
                _ticked(box, _box(page, LAST_TICK) + 3)
                top, at_end = _box(page, AT_END)
                nb.screenshot(ARTIFACTS / f"tool-prints-scrolled-live-{frontend}.png", scroll_to=3)
                assert top > 0 and at_end, (top, at_end)
                # scrolled back up to an older line: the box stays there, it does not follow
                _wheel_until(page, box, -200,
                                      "b.scrollTop + b.clientHeight < b.scrollHeight - 20")
                before, _ = _box(page, AT_END)
                _ticked(box, _box(page, LAST_TICK) + 3)
                after, at_end = _box(page, AT_END)
                assert after == before and not at_end, (before, after)
                # a word selected there (a double click) stays selected as lines come
                box.dblclick(position={"x": 20, "y": 30})
                word, inside = page.evaluate(SELECTED % BOX)
                assert word.strip() and inside, (word, inside)
                _ticked(box, _box(page, LAST_TICK) + 3)
                assert page.evaluate(SELECTED % BOX) == [word, True]
                assert _box(page, AT_END)[0] == before
                (tmp_path / "go").write_text("")
                nb.cell(3).locator(".lash-static .lash-tool-done").wait_for(timeout=120_000)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"tool-prints-scrolled-failure-{frontend}.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
