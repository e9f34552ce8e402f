"""A live turn whose kernel is gone stops pretending to run (real Chromium, Lab 4 and Notebook 7).

A ``%%lash`` cell streams a slow answer; the user restarts the kernel from the Kernel menu
mid-turn. The turn's widget stays on the page, and it used to keep saying "running", its clock
ticking and its Stop button live, though the kernel that owned the turn was gone (a click on
Stop only changed the badge to "kernel not connected"). Now the widget says its kernel is gone, has no Stop, keeps
every row it had streamed, and the cut-turn note (``snapshot.cut_turn_note``) below it says
where the turn is and what to run. A turn that had finished before the restart keeps its
record as it was. The tool catalog and the queue panels say the kernel is gone and disable
their toggles and buttons (they did nothing). The same holds when the kernel is shut down from
the menu and another one started, or killed (a restart asked through the REST API is not run
here: a jupyter_server race, ADR 137).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_harness import (
    ARTIFACTS,
    JupyterServer,
    NotebookPage,
    chromium,
    playwright_or_skip,
    wait_until,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_or_skip()

LONG = "please echo " + " ".join(f"word{i}" for i in range(300))
CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.3",
    ('from lash_nb import tool\n\n@tool\ndef weather(city: str) -> str:\n'
     '    """Current weather for a city."""\n    return f"sunny in {city}"'),
    "%lash open gone --store gone.duckdb --fresh --tools weather",
    "%lash tools",
    "%lash queue",
    "%%lash\nplease echo short answer",
    f"%%lash\n{LONG}",
]
DONE, LIVE = 5, 6  # the cells of the turn that finishes and of the one the kernel outlives


def _start_both_turns(nb: NotebookPage, server: JupyterServer) -> tuple[str, str]:
    """Run the notebook; return the finished turn's record text and the live turn's prose once
    the live turn has streamed a few words."""
    nb.open()
    nb.run_all()
    done = nb.cell(DONE).locator(".lash-static .lash-outcome")
    done.wait_for(timeout=120_000)
    live = nb.cell(LIVE).locator(".lash-turn:not(.lash-static):not(.lash-cut)")
    live.locator(".lash-prose").filter(has_text="word3").wait_for(timeout=120_000)
    assert live.locator(".lash-status").inner_text() == "running"
    assert nb.cell(3).locator(".lash-tools input[type=checkbox]").is_enabled()
    assert nb.cell(4).locator(".lash-queue button[title='Reload the queue']").is_enabled()
    assert nb.cell(LIVE).locator(".lash-cut").is_hidden()  # the note is hidden while the turn lives
    return nb.cell(DONE).locator(".jp-OutputArea").inner_text(), live.locator(".lash-prose").inner_text()


def _assert_shows_the_kernel_is_gone(nb: NotebookPage, record: str, prose: str,
                                     how: str) -> None:
    """``how``: what the view says ended the kernel, as far as the page can tell (ADR 217)."""
    live = nb.cell(LIVE).locator(".lash-turn:not(.lash-static):not(.lash-cut)")
    status = live.locator(".lash-status")
    status.filter(has_text="kernel gone").wait_for(timeout=30_000)
    assert how in status.inner_text(), status.inner_text()
    assert live.locator(".lash-stop").is_hidden()  # no button that cannot work
    # every row already streamed is still there
    before = re.findall(r"word\d+", prose)
    now = re.findall(r"word\d+", live.locator(".lash-prose").inner_text())
    assert len(before) >= 4 and now[: len(before)] == before
    # the cut-turn note says where the turn is and what to run
    note = nb.cell(LIVE).locator(".lash-cut")
    note.wait_for(state="visible", timeout=10_000)
    assert "%lash replay" in note.inner_text()
    assert note.locator(".lash-prompt").is_hidden()  # the widget above shows the prompt
    # the clock is stopped: the footer reads the same a moment later
    foot = live.locator(".lash-usage").inner_text()
    nb.page.wait_for_timeout(1500)
    assert live.locator(".lash-usage").inner_text() == foot
    # the turn that finished before keeps its record as it was, and no note
    assert nb.cell(DONE).locator(".jp-OutputArea").inner_text() == record
    assert nb.cell(DONE).locator(".lash-cut").count() == 0
    assert "finished: assistant_message" in record
    # the panels: no control that cannot work, and a line that says why
    tools = nb.cell(3).locator(".lash-tools")
    tools.locator(".lash-error").filter(has_text="kernel gone").wait_for(state="attached",
                                                                     timeout=10_000)
    boxes = tools.locator("input[type=checkbox]")
    assert boxes.count() == 1 and boxes.first.is_checked() and boxes.first.is_disabled()
    queue = nb.cell(4).locator(".lash-queue")
    assert "kernel gone" in (queue.locator(".lash-panel-head").text_content() or "")
    assert all(b.is_disabled() for b in queue.locator("button").all())


@contextlib.contextmanager
def _page(tmp_path: Path, cells: list[str | tuple[str, str]], name: str,
          frontend: str = "jupyterlab", *, failure: str,
          scroll_to: int) -> Iterator[tuple[NotebookPage, JupyterServer]]:
    """The notebook ``name`` of ``cells`` open in Chromium on its own server; a screenshot
    ``failure`` when the body raises; browser and server stopped after."""
    write_notebook(tmp_path / name, cells)
    server = JupyterServer(frontend, tmp_path).start("light")
    try:
        with chromium() as browser:
            nb = NotebookPage(browser, server, name)
            try:
                yield nb, server
            except Exception:
                if nb.page is not None:
                    nb.screenshot(ARTIFACTS / failure, scroll_to=scroll_to)
                raise
            finally:
                browser.close()
    finally:
        server.stop()


def _cut_or_stopped(nb: NotebookPage) -> bool:
    """After a shutdown: True when the live view says its kernel is gone, False when the
    kernel stopped the turn first (the view then ends ``stopped: cancelled``)."""
    out = nb.cell(LIVE)
    either = out.locator(".lash-status", has_text="kernel gone").or_(
        out.locator(".lash-outcome", has_text="stopped: cancelled"))
    either.first.wait_for(timeout=30_000)
    if out.locator(".lash-outcome", has_text="stopped: cancelled").count():
        _assert_stopped_by_the_shutdown(nb, None)
        return False
    return True


def _assert_stopped_by_the_shutdown(nb: NotebookPage, record: str | None) -> None:
    out = nb.cell(LIVE)
    assert out.locator(".lash-status-running").count() == 0  # nothing pretends to run
    assert out.locator(".lash-stop:visible").count() == 0
    assert "stopped: cancelled" in out.locator(".jp-OutputArea").inner_text()
    if record is not None:  # the turn that finished before keeps its record as it was
        assert nb.cell(DONE).locator(".jp-OutputArea").inner_text() == record


def test_a_kernel_restart_mid_turn_leaves_no_stale_running_widget(tmp_path):
    frontend = "jupyterlab"  # the same widget manager and kernel menu in Notebook 7 (ADR 178)
    with _page(tmp_path, CELLS, "gone.ipynb", frontend,
               failure=f"kernel-gone-failure-{frontend}.png", scroll_to=DONE) as (nb, server):
        record, prose = _start_both_turns(nb, server)
        nb.restart_kernel()  # Kernel > Restart Kernel…, confirmed, as a user does
        wait_until(server.kernels_idle, timeout=90, what="the restarted kernel")
        _assert_shows_the_kernel_is_gone(nb, record, prose, "(restarted from this page)")
        nb.screenshot(ARTIFACTS / f"kernel-gone-restart-{frontend}.png", scroll_to=DONE)


def test_a_kernel_shut_down_mid_turn_then_started_again_leaves_no_stale_widget(tmp_path):
    with _page(tmp_path, CELLS, "gone.ipynb",
               failure="kernel-gone-shutdown-failure-jupyterlab.png", scroll_to=DONE) as (nb, server):
        record, prose = _start_both_turns(nb, server)
        nb.menu("Kernel", "Shut Down Kernel")
        wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=60,
                   what="the kernel to shut down")
        # a shutdown is a request the kernel may still serve: when it stopped the turn
        # and committed it before exiting, the view shows that outcome, else it is cut
        cut = _cut_or_stopped(nb)
        if cut:
            _assert_shows_the_kernel_is_gone(nb, record, prose, "(shut down, or")
        # Kernel > Restart Kernel… starts a new one; the widget stays as it is
        nb.menu("Kernel", "Restart Kernel…")
        dialog = nb.page.locator(".jp-Dialog-button", has_text=re.compile(r"^Restart$"))
        if dialog.count():
            dialog.click()
        wait_until(server.kernels_idle, timeout=90, what="a new kernel")
        if cut:
            _assert_shows_the_kernel_is_gone(nb, record, prose, "(shut down, or")
        else:
            _assert_stopped_by_the_shutdown(nb, record)


# "restarted_by_another_client" (POST /api/kernels/<id>/restart mid-turn) is not run: with
# jupyter_server 2.21.1 the server sometimes logs "Kernel restarted" and then never reports the
# new kernel's status (the REST API and JupyterLab's own status bar stay "busy" for good, and no
# "starting" reaches the page), so the case fails or passes by that race, not by lash's code
# (ADR 137). The kill below goes through the same "starting" signal.
@pytest.mark.parametrize("how", ["killed"])
def test_a_kernel_restarted_elsewhere_or_killed_mid_turn_leaves_no_stale_widget(how, tmp_path):
    with _page(tmp_path, CELLS, "gone.ipynb",
               failure=f"kernel-gone-{how}-failure-jupyterlab.png", scroll_to=DONE) as (nb, server):
        record, prose = _start_both_turns(nb, server)
        if how == "killed":
            server.kill_kernel()
        else:  # the REST API, as another tab, a script or jupyter console does
            kernel = server.api("GET", "/api/kernels")[0]["id"]
            server.api("POST", f"/api/kernels/{kernel}/restart")
        wait_until(server.kernels_idle, timeout=90, what="the new kernel")
        _assert_shows_the_kernel_is_gone(nb, record, prose, "(it died, or was restarted elsewhere)")


TOOL_CELLS: list[str | tuple[str, str]] = [
    "%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.05",
    ('import asyncio\nfrom lash_nb import tool\n\n@tool\nasync def survey(city: str) -> str:\n'
     '    """Survey a city (takes its time)."""\n    await asyncio.sleep(600)\n'
     '    return f"{city} surveyed"'),
    "%lash open gone --store gone.duckdb --fresh --tools survey",
    "%%lash\nplease survey 'Oslo'",
]


def test_a_tool_running_when_the_kernel_restarts_reads_cut_not_running(tmp_path):
    with _page(tmp_path, TOOL_CELLS, "tool.ipynb",
               failure="kernel-gone-tool-failure-jupyterlab.png", scroll_to=3) as (nb, _server):
        nb.open()
        nb.run_all()
        live = nb.cell(3).locator(".lash-turn:not(.lash-static):not(.lash-cut)")
        row = live.locator(".lash-tool")
        row.filter(has_text="survey").locator(".lash-tool-status").filter(
            has_text="running").wait_for(timeout=120_000)
        nb.restart_kernel()
        live.locator(".lash-status").filter(has_text="kernel gone").wait_for(timeout=60_000)
        assert "(restarted from this page)" in live.locator(".lash-status").inner_text()
        assert row.count() == 1 and "Oslo" in row.inner_text()  # the row is kept
        assert row.locator(".lash-tool-status").inner_text() == "cut"
        assert row.locator(".lash-tool-clock").count() == 0
        assert live.locator(".lash-stop").is_hidden()
        nb.cell(3).locator(".lash-cut").wait_for(state="visible", timeout=10_000)
        nb.screenshot(ARTIFACTS / "kernel-gone-tool-jupyterlab.png", scroll_to=3)
