"""A saved notebook is a durable record (real Chromium, JupyterLab 4 and Notebook 7).

A user's notebook runs in JupyterLab (Run > Run All Cells): a notebook-defined tool, a turn that
calls it, a turn whose answer has a table, a nested list and a <script>, the tool catalog and a
usage chart. It is saved, the kernel is shut down and the notebook reopened, in JupyterLab and
in Notebook 7: every answer reads, no output says "Error displaying widget", and the same file
through ``jupyter nbconvert --to html`` holds the answers. Then the dark theme: every text of
the lash outputs is checked for contrast.
A second notebook checks what Stop and a refused turn look like (JupyterLab only, ADR 220).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser_harness import (
    ARTIFACTS,
    CHROMIUM,
    CONTRAST_JS,
    DOCS_IMG,
    JupyterServer,
    NotebookPage,
    chromium,
    low_contrast,
    reopen_without_kernel,
    wait_until,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
try:
    import playwright.sync_api  # noqa: F401  (browser_harness.chromium() drives it)
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TABLE_PROMPT = """Please tidy up my notes:

| city | sky | °C |
|---|---|---:|
| Paris | sunny | 21 |
| Oslo | rain | 9 |

- packing
  - umbrella for Oslo
  - sunglasses for Paris

<script>alert("x")</script>"""

RECORD_CELLS: list[str | tuple[str, str]] = [
    ("markdown", "# Weekend trip\nAsking the agent about the weather, with a tool defined here."),
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01",
    ('from lash_nb import tool\n\n@tool\ndef weather(city: str) -> str:\n'
    '    """Current weather for a city."""\n    return f"sunny, 21 °C in {city}"'),
    "%lash open trip --store trip.duckdb --fresh --tools weather",
    "%%lash\nWhat does weather say for 'Paris'?",
    f"%%lash\n{TABLE_PROMPT}",
    "%lash tools",
    "%lash usage --by turn --plot",
    # a tool that returns a 3 MB build log: the session keeps its head and tail around a line
    # saying what was left out (ADR 174); the turn's words come slower here, so the live
    # widget is seen before the record replaces it
    ('@tool\ndef build_log(job: str) -> str:\n    """The whole build log of a CI job."""\n'
     '    return "".join(f"{i:06d} compiling module_{i} ok\\n" for i in range(100_000))'),
    ("%lash open trip --store trip.duckdb --tools weather,build_log\n"
     "%config LashMagics.offline_delay_s = 0.03"),
    "%%lash\nWhat does build_log say for 'ci'?",
    "%lash replay",
    "%lash open other --store no_such_folder/other.duckdb",  # last: Run All stops at its error
]
TOOL_ANSWER = "weather returned sunny, 21 °C in Paris."
BUILD_LOG = "".join(f"{i:06d} compiling module_{i} ok\n" for i in range(100_000))
# the line the session put in place of what it left out of the log
CUT = re.compile(r"\[… lash left out ([\d,]+) of the ([\d,]+) characters \(([\d,]+) lines\) "
                 r"this tool returned; max_output=65,536 …\]")
LIVE = ".lash-turn:not(.lash-static):not(.lash-snapshot)"


def readme_picture(name):
    """docs/img/<name> when LASH_NB_REFRESH_DOC_IMAGES=1, else the artifacts folder: a test run
    leaves the checkout as it found it."""
    if os.environ.get("LASH_NB_REFRESH_DOC_IMAGES") == "1":
        return DOCS_IMG / name
    return ARTIFACTS / name


def _widget_outputs(nb: dict) -> list[int]:
    return [i for i, c in enumerate(nb["cells"]) for o in c.get("outputs", ())
            if WIDGET_MIME in o.get("data", {})]


def _drawn(cell):
    """``cell`` scrolled into view once its output is drawn: Lab does not draw a cell out of
    view (content-visibility), and its inner text is empty until it does."""
    cell.scroll_into_view_if_needed()
    area = cell.locator(".jp-OutputArea")
    area.page.wait_for_function("el => el.innerText.trim() !== ''", arg=area.element_handle(),
                                timeout=60_000)
    return cell


def _check_answers(page, cells) -> None:
    turn1, turn2 = _drawn(cells.nth(4)), cells.nth(5)
    assert TOOL_ANSWER in (turn1.locator(".lash-prose").inner_text())
    assert turn1.locator(".lash-tool-done .lash-tool-name").inner_text() == "weather"
    assert turn1.locator(".lash-outcome").inner_text() == "finished: assistant_message"
    assert turn1.locator(".lash-status").inner_text() == "done"
    assert "in ·" in turn1.locator(".lash-usage").inner_text() or " out" in turn1.locator(".lash-usage").inner_text()
    _drawn(turn2)
    table = turn2.locator(".lash-prose table")
    assert table.locator("td").all_inner_texts()[:3] == ["Paris", "sunny", "21"]
    assert turn2.locator(".lash-prose ul ul li").all_inner_texts() == [
        "umbrella for Oslo", "sunglasses for Paris"]
    assert '<script>alert("x")</script>' in turn2.locator(".lash-prose").inner_text()
    assert page.evaluate("() => document.querySelectorAll('.jp-OutputArea script').length") == 0


def _check_huge_output(cells) -> None:
    """The 3 MB log's turn, its replay and the failed open, as the user reads them."""
    turn, replay, failed = cells.nth(10), cells.nth(11), cells.nth(12)
    outputs = []
    for record in (turn, replay):
        _drawn(record)
        row = record.locator(".lash-static .lash-tool-done").filter(has_text="build_log")
        output = row.locator(".lash-tool-output").text_content()
        cut = CUT.search(output)
        assert cut is not None, output[-600:]
        left_out, total, lines = (int(g.replace(",", "")) for g in cut.groups())
        assert total == len(BUILD_LOG)  # counted from what the tool returned
        assert 0 < len(BUILD_LOG) - left_out <= 65_536 and lines < BUILD_LOG.count("\n")
        # whole lines of the log, then what the store holds (ADR 182): not the whole output
        head, note = output.split("\n… ", 1)
        assert BUILD_LOG.startswith(head + "\n") and head.endswith(" ok")
        assert (f"lash kept {len(BUILD_LOG) - left_out:,} of the {total:,} characters this "
                "tool returned") in note and "%lash sql SELECT output FROM tool_calls" in note
        assert "whole output" not in output
        assert output.startswith("000000 compiling module_0 ok\n000001 compiling")
        # the answer echoes what the model was sent: the log's two ends around the same line
        prose = record.locator(".lash-prose").inner_text()
        assert cut.group(0) in prose and "099999 compiling module_99999 ok" in prose
        assert "050000 compiling" not in prose  # the middle was left out
        outputs.append(output)
        if record is replay:
            assert "cost n/a" in replay.locator(".lash-usage").inner_text()
    assert outputs[0] == outputs[1]  # the replay shows the tool row as the turn did
    _check_opened_row(turn)
    error = _drawn(failed).locator(".jp-OutputArea-output").inner_text().strip()
    assert "no_such_folder" in error and "does not exist" in error and "\n" not in error, error


def _open_row(record):
    """The 3 MB log's tool row of ``record``, opened as a user opens it (a click)."""
    row = record.locator(".lash-static .lash-tool-done").filter(has_text="build_log")
    row.scroll_into_view_if_needed()
    if row.get_attribute("open") is None:
        row.locator("summary").click()
    return row


BOX_JS = """el => { const s = getComputedStyle(el), r = el.getBoundingClientRect();
  return {maxHeight: s.maxHeight, overflowY: s.overflowY, userSelect: s.userSelect,
          height: r.height, fontSize: parseFloat(s.fontSize), scrollHeight: el.scrollHeight,
          clientHeight: el.clientHeight, scrollTop: el.scrollTop}; }"""


def _check_opened_row(record) -> None:
    """An opened row of 20,000 characters is a box of 20 lines' height that scrolls, not a
    page of its own (ADR 182); its text selects and a wheel scrolls it."""
    row = _open_row(record)
    box = row.locator(".lash-tool-output")
    got = box.evaluate(BOX_JS)
    assert got["maxHeight"] != "none" and got["overflowY"] == "auto", got
    assert got["height"] <= 20 * got["fontSize"] + 12, got  # 20em and its padding
    assert got["scrollHeight"] > 10 * got["clientHeight"], got  # the rest scrolls
    assert got["userSelect"] != "none", got
    box.hover()
    record.page.mouse.wheel(0, 600)
    record.page.wait_for_function("el => el.scrollTop > 0", arg=box.element_handle(),
                                  timeout=10_000)
    box.select_text()
    picked = record.page.evaluate("() => window.getSelection().toString()")
    assert picked.startswith("000000 compiling module_0 ok\n") and "lash kept" in picked


def _no_widget_errors(page) -> None:
    text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea").all_inner_texts()
    assert not any("Error displaying widget" in t or "model not found" in t for t in text), text


def _read_reopened(nb: NotebookPage, server: JupyterServer, frontend: str, tmp_path: Path) -> Any:
    """The saved trip.ipynb, open in ``nb`` with a new kernel (none of the old widget models
    exist): it reads in the light theme, then the dark one (contrast), then a copy that is not
    signed here (untrusted). The page of the untrusted copy is returned (the caller closes it)."""
    page = nb.page
    cells = nb.panel.locator(".jp-Cell")
    cells.nth(5).locator(".lash-prose table").wait_for(timeout=60_000)
    assert cells.nth(5).locator(".jp-mod-trusted").count() > 0  # the file signed when saved
    _check_answers(page, cells)
    snapshot = cells.nth(6).locator(".lash-snapshot")
    assert snapshot.is_visible() and "weather" in snapshot.inner_text()
    # the widget output after it settles (Lab gives up on the model after ~2 s)
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
        ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
    _no_widget_errors(page)
    _check_huge_output(cells)
    _no_widget_errors(page)  # the cells drawn now, at the notebook's end
    nb.screenshot(ARTIFACTS / f"record-huge-output-{frontend}.png", scroll_to=10)
    cells.nth(7).scroll_into_view_if_needed()  # Lab renders cells as they come into view
    chart = cells.nth(7).locator(".jp-RenderedVegaCommon5")  # Vega-Lite, not the fallback
    chart.locator("svg text").filter(has_text="tokens per turn").wait_for(timeout=60_000)
    nb.hide_sidebar()
    nb.screenshot(ARTIFACTS / f"record-reopened-light-{frontend}.png", scroll_to=3)
    if frontend == "jupyterlab":  # the README's picture: only when asked to refresh it
        nb.screenshot(readme_picture("notebook-light.png"), scroll_to=4, height=1500)

    server.set_theme("dark")
    page = nb.reopen()
    cells = nb.panel.locator(".jp-Cell")
    cells.nth(5).locator(".lash-prose table").wait_for(timeout=60_000)
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'",
                           timeout=30_000)
    cells.nth(7).scroll_into_view_if_needed()
    cells.nth(7).locator(".jp-RenderedVegaCommon5 svg text").first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
        ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
    _open_row(_drawn(cells.nth(10)))  # its box's text, on the dark theme too
    rows = page.evaluate(CONTRAST_JS, ".lash-turn *, .lash-snapshot *, "
                         ".jp-OutputArea-output svg text")
    assert len(rows) > 30
    assert low_contrast(rows) == []
    nb.screenshot(ARTIFACTS / f"record-huge-output-dark-{frontend}.png", scroll_to=10)
    nb.hide_sidebar()
    nb.screenshot(ARTIFACTS / f"record-reopened-dark-{frontend}.png", scroll_to=3)
    if frontend == "jupyterlab":  # the README's picture: only when asked to refresh it
        nb.screenshot(readme_picture("notebook-dark.png"), scroll_to=4, height=1500)

    # shared with a colleague: a copy that is not signed here opens untrusted, so
    # JupyterLab sanitises the HTML; the record still reads
    shared = json.loads((tmp_path / "trip.ipynb").read_text())
    shared["metadata"]["shared_by"] = "a colleague"
    name = f"shared-{frontend}.ipynb"
    (tmp_path / name).write_text(json.dumps(shared))
    nb.page.close()
    nb.name, nb.page = name, None
    page = nb.open()
    cells = nb.panel.locator(".jp-Cell")
    cells.nth(5).locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
    assert cells.nth(5).locator(".jp-mod-trusted").count() == 0  # really untrusted
    _check_answers(page, cells)
    # the record's <style> is sanitised away; the row's inline bound stays
    box = _open_row(_drawn(cells.nth(10))).locator(".lash-tool-output")
    got = box.evaluate(BOX_JS)
    assert got["maxHeight"] != "none" and got["scrollHeight"] > 10 * got["clientHeight"], got
    nb.screenshot(ARTIFACTS / f"record-untrusted-dark-{frontend}.png", scroll_to=4)
    return page


def test_a_saved_notebook_reads_after_the_kernel_is_gone_and_through_nbconvert(tmp_path):
    """Run and saved in JupyterLab; read after its kernel is gone in JupyterLab and in
    Notebook 7 (what a colleague who opens it there sees), and through nbconvert. The turns run
    once (ADR 220): how Notebook 7 runs a turn live and saves it is in the other Notebook 7
    tests (test_browser_stop, test_browser_tool_prints, test_browser_saved_growth, ...)."""
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "trip.ipynb", RECORD_CELLS)
    servers = {"jupyterlab": JupyterServer("jupyterlab", tmp_path).start("light"),
               "notebook7": JupyterServer("notebook7", tmp_path)}
    frontend = "jupyterlab"
    try:
        with chromium() as browser:
            server = servers[frontend]
            nb = NotebookPage(browser, server, "trip.ipynb")
            try:
                page = nb.open()
                nb.run_all()
                cells = nb.panel.locator(".jp-Cell")
                # the live widget, while the log's turn streams: its tool row holds the cut line
                live = cells.nth(10).locator(f"{LIVE} .lash-tool-output")
                live.filter(has_text=CUT).wait_for(state="attached", timeout=180_000)
                cells.nth(12).locator(".jp-OutputArea-output").first.wait_for(timeout=120_000)
                cells.nth(5).locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                _check_answers(page, cells)
                assert cells.nth(6).locator(".lash-tools input[type=checkbox]").count() == 1
                assert not cells.nth(6).locator(".lash-snapshot").is_visible()  # live panel only
                nb.screenshot(ARTIFACTS / f"record-live-{frontend}.png")

                saved = nb.save(expect_in_file="does not exist; create it")  # the last output
                assert TOOL_ANSWER in json.dumps(saved, ensure_ascii=False)
                assert _widget_outputs(saved) == [6]  # only the live tool panel is a widget
                # the two records of the 3 MB log keep its ends, not the whole log
                size = (tmp_path / "trip.ipynb").stat().st_size
                assert size < len(BUILD_LOG) / 2, size
                assert "050000 compiling" not in (tmp_path / "trip.ipynb").read_text()
                server.shut_down_sessions()
                wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
                           what="the kernel to shut down")
                nb.reopen()  # a new kernel: none of the old widget models exist
                _read_reopened(nb, server, frontend, tmp_path)
                server.shut_down_sessions()
                wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
                           what="the kernel to shut down")

                # the same file opened in Notebook 7
                frontend = "notebook7"
                server = servers[frontend].start("light")
                nb.page.close()
                nb = NotebookPage(browser, server, "trip.ipynb")
                nb.open()
                _read_reopened(nb, server, frontend, tmp_path)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"record-failure-{frontend}.png")
                    (ARTIFACTS / f"record-failure-{frontend}.html").write_text(
                        nb.page.evaluate(
                            "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)').outerHTML"))
                raise
            finally:
                browser.close()
    finally:
        for each in servers.values():
            each.stop()

    out = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
                          "--output", "trip-export", str(tmp_path / "trip.ipynb")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    html = (tmp_path / "trip-export.html").read_text()
    assert TOOL_ANSWER in html
    assert CUT.search(html) and "099999 compiling module_99999 ok" in html
    assert "<td>Paris</td>" in html and "umbrella for Oslo" in html
    assert "finished: assistant_message" in html
    assert "Error displaying widget" not in html and "model not found" not in html
    assert '<script>alert("x")</script>' not in html
    assert 'lash-snapshot' in html  # the tool catalog as it was
    svgs = [base64.b64decode(m).decode() for m in
            re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)]
    assert any("tokens per turn" in s for s in svgs)  # the chart's SVG fallback


STOP_CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.12",
    ("import asyncio\nfrom lash_nb import tool\n\n@tool\nasync def slow(seconds: float) -> str:\n"
    '    """Wait a while."""\n    await asyncio.sleep(seconds)\n    return "slept"'),
    "%lash open stops --store stops.duckdb --fresh --tools slow",
    "%%lash\nplease echo " + " ".join(f"word{i}" for i in range(120)),
    "%%lash\nrun slow with seconds=60",
    # another runtime holds this session (what a second kernel on the same store does)
    ("from lash_nb._notebook.extension import _magics\n"
    "b = _magics().ctx.bindings['stops']\n"
    "await b.session.store.try_acquire_lease('stops', 'another-kernel', 600_000)"),
    "%%lash\nhello again",
]


def test_stop_badges_marks_cancelled_tools_and_a_refused_turn(tmp_path):
    # JupyterLab only (ADR 220): a Stop clicked in Notebook 7's page is test_browser_stop.py's
    # notebook7 run; the badges, the cancelled row and the refused record are the widget's and
    # the record's own HTML, drawn by the same output area and widget manager in both
    frontend, theme = "jupyterlab", "dark"
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "stops.ipynb", STOP_CELLS)
    server = JupyterServer(frontend, tmp_path).start(theme)
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "stops.ipynb")
            try:
                page = nb.open()
                nb.run_all()
                cells = nb.panel.locator(".jp-Cell")

                echo = cells.nth(3)
                echo.locator(".lash-prose").filter(has_text="word3").wait_for(timeout=90_000)
                assert echo.locator(".lash-status").inner_text() == "running"
                rows = page.evaluate(CONTRAST_JS, ".lash-turn *")
                assert low_contrast(rows) == []
                nb.screenshot(ARTIFACTS / "stop-live-dark-jupyterlab.png")
                echo.locator(".lash-stop").click()
                echo.locator(".lash-static .lash-outcome").filter(
                    has_text="stopped: cancelled").wait_for(timeout=30_000)
                assert echo.locator(".lash-status").inner_text() == "stopped"
                assert "interrupted" in echo.locator(".lash-mark").inner_text()
                assert "word119" not in echo.locator(".lash-prose").inner_text()
                assert echo.locator(".lash-stop").count() == 0

                tool = cells.nth(4)
                tool.locator(".lash-tool-running").wait_for(timeout=60_000)
                usage = tool.locator(".lash-usage")
                before = usage.inner_text()
                # the footer timer runs while the tool runs (no flush comes in that time)
                page.wait_for_function("([el, t]) => el.textContent !== t",
                                       arg=[usage.element_handle(), before], timeout=10_000)
                tool.locator(".lash-stop").click()
                tool.locator(".lash-static .lash-tool-cancelled").wait_for(timeout=30_000)
                row = tool.locator(".lash-tool-cancelled")
                assert row.locator(".lash-tool-status").inner_text() == "cancelled"
                assert int(row.locator(".lash-tool-dur").inner_text().split()[0]) > 0
                assert "failed" not in row.inner_text()

                refused = cells.nth(6)
                # the finished record, not the live widget's "failed" (its hidden Stop is
                # still in the page until the record replaces it)
                refused.locator(".lash-static .lash-status-failed").wait_for(timeout=60_000)
                err = refused.locator(".lash-error").inner_text()
                assert "SessionExecutionBusy" in err and "another-kernel" in err
                assert refused.locator(".lash-stop").count() == 0
                assert "waiting for the model" not in refused.inner_text()
                nb.screenshot(ARTIFACTS / f"stop-and-refused-{theme}-{frontend}.png", scroll_to=4, height=1300)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"stop-failure-{frontend}.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()


QUEUE_CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05",
    "%lash open inbox --store inbox.duckdb --fresh",
    "%lash enqueue what is **first**?\n%lash enqueue and the second?\n%lash enqueue and a third one",
    "%lash queue",
    "%lash usage --by turn",
]


def test_drain_shows_progress_and_the_turns_it_ran_and_a_double_click_runs_once(tmp_path):
    frontend = "jupyterlab"  # the panel is the same widget in Notebook 7 (ADR 178)
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "inbox.ipynb", QUEUE_CELLS)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "inbox.ipynb")
            try:
                page = nb.open()
                for i in range(4):
                    nb.run_cell(i)
                panel = nb.cell(3).locator(".lash-queue")
                panel.locator("tr[data-batch]").nth(2).wait_for(timeout=60_000)
                drain = panel.locator(".lash-drain")
                drain.dblclick()
                page.wait_for_function("el => el.disabled", arg=drain.element_handle(), timeout=10_000)
                panel.locator(".lash-progress").filter(has_text="3 of 3 batches done").wait_for(timeout=90_000)
                page.wait_for_function("el => !el.textContent.includes('draining')",
                                       arg=drain.element_handle(), timeout=30_000)
                turns = panel.locator(".lash-ran-turn")
                assert turns.count() == 3
                assert "first" in turns.nth(0).locator(".lash-prose strong").inner_text()
                assert list(turns.locator(".lash-outcome").all_inner_texts()) == [
                    "finished: assistant_message"] * 3
                assert "ran 3 turns; 3 of 3 batches done" in panel.locator(".lash-panel-head").inner_text()
                nb.screenshot(ARTIFACTS / f"drain-{frontend}.png", scroll_to=3)
                nb.run_cell(4)
                frame = nb.cell(4).locator(".jp-OutputArea-output table")
                frame.wait_for(timeout=60_000)
                assert frame.locator("tbody tr").count() == 3  # one row per turn: one drain, not two

                nb.save(expect_in_file="ran 3 turns")
                server.shut_down_sessions()
                nb.reopen()
                snap = nb.cell(3).locator(".lash-snapshot")
                snap.wait_for(timeout=60_000)
                assert snap.locator(".lash-turn").count() == 3
                assert "ran 3 turns; 3 of 3 batches done" in snap.inner_text()
                nb.page.wait_for_function(
                    "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
                    ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
                _no_widget_errors(nb.page)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"drain-failure-{frontend}.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()


def test_with_saved_widget_state_a_restored_panel_says_the_kernel_is_not_connected(tmp_path):
    """JupyterLab's "save widget state" setting on: the tool panel is restored from the file
    after the kernel is gone; a toggle must not silently do nothing."""
    write_notebook(tmp_path / "state.ipynb", [*RECORD_CELLS[:4], "%lash tools"])
    server = JupyterServer("jupyterlab", tmp_path)
    d = server.settings / "@jupyter-widgets" / "jupyterlab-manager"
    d.mkdir(parents=True, exist_ok=True)
    (d / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
    server.start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "state.ipynb")
            try:
                nb.open()
                nb.run_all()
                nb.cell(4).locator(".lash-tools input[type=checkbox]").wait_for(timeout=90_000)
                saved = nb.save(expect_in_file="application/vnd.jupyter.widget-state+json")
                assert "widgets" in saved["metadata"]
                # the old kernel gone before the reopen: a page that still meets it dying
                # clears the restored models ("model not found", the row then hidden)
                reopen_without_kernel(nb, server)
                nb.cell(4).scroll_into_view_if_needed()  # a cell out of view is not drawn
                box = nb.cell(4).locator(".lash-tools input[type=checkbox]")
                snapshot = nb.cell(4).locator(".lash-snapshot")
                # the panel, restored from the saved state. jupyterlab-manager restores twice
                # when a new kernel connects (from the kernel alone, and from the kernel then
                # the notebook); when the first ends first, the saved models are not there yet
                # and the output reads "model not found": the panel's static form shows then
                # (the failed row hidden), and a reload restores it (the race may hit again)
                failed = nb.cell(4).locator(".jp-OutputArea-output.jupyter-widgets",
                                            has_text="model not found")
                for reload in range(3):
                    box.or_(failed).first.wait_for(state="attached", timeout=60_000)
                    if box.count() or reload == 2:
                        break
                    assert snapshot.is_visible()  # the failed row hidden, the static form read
                    nb.page.reload()
                    nb.cell(4).wait_for(timeout=60_000)
                    nb.cell(4).scroll_into_view_if_needed()
                box.wait_for(timeout=30_000)
                assert not snapshot.is_visible()
                box.click()
                nb.cell(4).locator(".lash-tools .lash-error").filter(
                    has_text="kernel not connected").wait_for(timeout=30_000)
                assert box.is_checked() and box.is_enabled()  # shown as it still is
                nb.screenshot(ARTIFACTS / "restored-panel-jupyterlab.png", scroll_to=4)
            except Exception:
                if nb.page is not None:  # CI keeps the output, not the artifacts
                    print("cell 4 on failure:", nb.cell(4).inner_html(timeout=5_000)[-3000:])
                    nb.screenshot(ARTIFACTS / "restored-failure-jupyterlab.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()


def test_after_a_kernel_restart_the_tools_panel_shows_tools_without_implementation(tmp_path):
    """Issue 14: a notebook-defined tool is stored with the session; after Kernel > Restart the
    user reopens the session without running the cell that defines it. The tools panel must
    say the tool has no implementation in this kernel (it is not offered to the model), live
    and in the saved notebook once the kernel is gone."""
    cells = [*RECORD_CELLS[:5], "%lash tools",
             ("markdown", "After a restart, without running the tool's cell:"),
             "%load_ext lash_nb", "%lash open trip --store trip.duckdb", "%lash tools"]
    write_notebook(tmp_path / "restart.ipynb", cells)
    server = JupyterServer("jupyterlab", tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "restart.ipynb")
            try:
                nb.open()
                for i in (1, 2, 3, 4, 5):
                    nb.run_cell(i)
                live = nb.cell(5).locator(".lash-tools")
                live.wait_for(timeout=90_000)
                assert "weather" in live.inner_text()
                assert "no implementation in this kernel" not in live.inner_text()
                # Kernel > Restart Kernel…, confirmed in the dialog, as a user does
                nb.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
                nb.page.locator(".lm-Menu-itemLabel",
                                has_text=re.compile(r"^Restart Kernel…$")).click()
                nb.page.locator(".jp-Dialog-button", has_text=re.compile(r"^Restart$")).click()
                wait_until(server.kernels_idle, timeout=90, what="the restarted kernel")
                for i in (7, 8, 9):
                    nb.run_cell(i)
                after = nb.cell(9).locator(".lash-tools")
                after.wait_for(timeout=90_000)
                row = after.locator("tr", has_text="weather")
                row.filter(has_text="no implementation in this kernel").wait_for(timeout=30_000)
                card = nb.cell(8).locator(".jp-OutputArea").inner_text()
                assert "not implemented in this kernel" in card, card
                nb.save(expect_in_file="no implementation in this kernel")
                server.shut_down_sessions()
                nb.reopen()
                snap = nb.cell(9).locator(".jp-OutputArea")
                snap.filter(has_text="no implementation in this kernel").wait_for(timeout=60_000)
                _no_widget_errors(nb.page)
                nb.screenshot(ARTIFACTS / "tools-after-restart-jupyterlab.png", scroll_to=8)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / "tools-after-restart-failure-jupyterlab.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()


# a notebook-defined tool moves the store's file away while the turn runs: the turn finishes,
# its final commit finds no file at the path and waits (ADR 181)
UNSAVED_CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05",
    ('import os\nfrom lash_nb import tool\n\n@tool\ndef tidy_the_folder() -> str:\n'
     '    """Moves the store\'s file away, as tidying a folder does."""\n'
     '    os.rename("team.duckdb", "moved.duckdb")\n    return "the store file was moved"'),
    "%lash open team --store team.duckdb --fresh --tools tidy_the_folder",
    "%%lash\nplease call tidy_the_folder",  # the user puts the file back: saved
    "%%lash -o out\nplease call tidy_the_folder",  # the user presses Stop: NOT saved
    "print(out.text)",  # Run All stops before this one
    "%%lash\nplease call tidy_the_folder",  # the kernel's interrupt ends the wait
]
MOVED_ANSWER = "tidy_the_folder returned the store file was moved."


def _waiting_row(cell):
    row = cell.locator(f"{LIVE} .lash-notice").filter(has_text="not saved yet")
    row.wait_for(timeout=180_000)
    said = row.inner_text()
    assert "moved or deleted" in said and "put it back" in said, said
    assert "Stop leaves it unsaved" in said, said
    return row


def _check_unsaved_record(cells) -> None:
    """Cell 3 saved once the file was back, cell 4 stopped while waiting: NOT saved, its answer
    readable, the cell's error one line."""
    saved, unsaved = _drawn(cells.nth(3)), _drawn(cells.nth(4))
    assert saved.locator(".lash-outcome").inner_text() == "finished: assistant_message"
    assert MOVED_ANSWER in saved.locator(".lash-prose").inner_text()
    notice = saved.locator(".lash-notice").inner_text()
    assert notice.startswith("saved once the store's file was back"), notice
    assert "not saved yet" not in saved.inner_text()
    # no stale warning under the saved record: the store's wait lines are INFO for a turn a
    # widget shows (ADR 181)
    assert cells.nth(3).locator(".jp-OutputArea-output[data-mime-type*='stderr']").count() == 0
    assert unsaved.locator(".lash-outcome").inner_text() == "NOT saved (finished: assistant_message)"
    assert MOVED_ANSWER in unsaved.locator(".lash-prose").inner_text()
    assert "not saved yet" not in unsaved.inner_text()  # the waiting row went
    said = unsaved.locator(".lash-error").inner_text()
    assert "NOT saved" in said and "put the file back" in said, said
    assert unsaved.locator(".lash-stop").count() == 0
    _ends_with_one_line(unsaved, "UsageError: turn ")
    assert MOVED_ANSWER in _drawn(cells.nth(5)).locator(".jp-OutputArea-output").inner_text()
    interrupted = _drawn(cells.nth(6))
    assert interrupted.locator(".lash-outcome").inner_text() == (
        "NOT saved (finished: assistant_message)")
    assert MOVED_ANSWER in interrupted.locator(".lash-prose").inner_text()
    assert "kernel_interrupt" in interrupted.locator(".lash-error").inner_text()
    _ends_with_one_line(interrupted, "KeyboardInterrupt: the kernel's interrupt ended the wait")


def _ends_with_one_line(cell, start: str) -> None:
    """What the cell printed: no traceback, only the error's one line (the store's wait lines
    are INFO for a turn a widget shows: the row said them)."""
    errors = cell.locator(".jp-OutputArea-output[data-mime-type*='stderr'], "
                          ".jp-OutputArea-output[data-mime-type*='error']").all_inner_texts()
    lines = [line for t in errors for line in t.strip().splitlines() if line.strip()]
    assert not any("Traceback" in line or line.startswith("  File ") for line in lines), lines
    assert [line for line in lines if "Error" in line.split(":")[0]
            or "Interrupt" in line.split(":")[0]] == lines[-1:], lines
    assert lines[-1].startswith(start) and "NOT saved" in lines[-1], lines
    assert len(lines) == 1, "\n".join(lines)


def test_a_turn_whose_store_file_was_moved_waits_then_is_saved_or_kept_marked_not_saved(tmp_path):
    """ADR 181 as a user sees it in JupyterLab: the waiting row, the file put back (saved), a
    Stop during the wait (the answer kept, marked NOT saved), and the saved record after the
    kernel is gone, readable in the light and the dark theme."""
    frontend = "jupyterlab"
    ARTIFACTS.mkdir(exist_ok=True)
    write_notebook(tmp_path / "unsaved.ipynb", UNSAVED_CELLS)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, "unsaved.ipynb")
            try:
                nb.open()
                nb.run_all()
                cells = nb.panel.locator(".jp-Cell")
                # 1. the file is put back while the turn waits: the row then says saved
                _waiting_row(cells.nth(3))
                nb.screenshot(ARTIFACTS / f"unsaved-waiting-light-{frontend}.png", scroll_to=3)
                (tmp_path / "moved.duckdb").rename(tmp_path / "team.duckdb")
                cells.nth(3).locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                # 2. again, and the user gives up waiting: Stop
                _waiting_row(cells.nth(4))
                cells.nth(4).locator(f"{LIVE} .lash-stop").click()
                cells.nth(4).locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                wait_until(server.kernels_idle, timeout=60, what="the cell to end")
                assert cells.nth(5).locator(".jp-OutputArea-output").count() == 0  # not run
                nb.run_cell(5)  # -o out holds the unsaved answer
                cells.nth(5).locator(".jp-OutputArea-output").wait_for(timeout=60_000)
                # 3. the file back, the turn again, and the kernel's interrupt ends its wait
                (tmp_path / "moved.duckdb").rename(tmp_path / "team.duckdb")
                nb.run_cell(6)
                _waiting_row(cells.nth(6))
                nb.menu("Kernel", "Interrupt Kernel")
                cells.nth(6).locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                wait_until(server.kernels_idle, timeout=60, what="the cell to end")
                _check_unsaved_record(cells)
                nb.screenshot(ARTIFACTS / f"unsaved-live-light-{frontend}.png", scroll_to=3)

                nb.save(expect_in_file="NOT saved (finished")
                page = reopen_without_kernel(nb, server)
                for theme in ("light", "dark"):
                    if theme == "dark":
                        server.set_theme("dark")
                        page = nb.reopen()
                        page.wait_for_function(
                            "() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
                    cells = nb.panel.locator(".jp-Cell")
                    cells.nth(4).locator(".lash-static .lash-outcome").wait_for(timeout=60_000)
                    page.wait_for_function(
                        "() => ![...document.querySelectorAll('.jp-OutputArea-output')]"
                        ".some(e => e.textContent.startsWith('Loading widget'))", timeout=60_000)
                    _check_unsaved_record(cells)
                    _no_widget_errors(page)
                    rows = page.evaluate(CONTRAST_JS, ".lash-turn *, .jp-OutputArea-output pre")
                    assert any("NOT saved" in r["text"] for r in rows), rows
                    assert low_contrast(rows) == [], (theme, low_contrast(rows))
                    nb.hide_sidebar()
                    nb.screenshot(ARTIFACTS / f"unsaved-reopened-{theme}-{frontend}.png",
                                  scroll_to=3)
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / f"unsaved-failure-{frontend}.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
    # the store (moved away again by the last turn's tool; the kernel was shut down with it
    # open, so it is opened for writing to fold its last commits in): the first answer saved
    # once, the stopped and the interrupted one's never
    from lash_nb.stores import DuckDBStore

    store = DuckDBStore(tmp_path / "moved.duckdb")
    try:
        rows = store.query("SELECT outcome, result FROM turns ORDER BY started_at")
    finally:
        store.close_sync()
    answers = [str(r) for r in rows["result"]]
    assert len(answers) == 3, rows  # the three turns' prompts
    assert sum(MOVED_ANSWER in a for a in answers) == 1, answers
