"""The browser tests share one Chromium per pytest process (``browser_harness.chromium``, ADR
194): what one test leaves in it (storage, cookies, a page stuck in a loop, a crashed page, a
failure) must not reach the next test, and a test's own asyncio still runs outside its block."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
import pytest
from browser_harness import chromium, playwright_or_skip

pytestmark = [pytest.mark.browser]
playwright_or_skip()

ORIGIN = "http://lash-shared.test/"  # answered by the page's route: no server, no network


def _open(browser):
    page = browser.new_page()
    page.route("**/*", lambda route: route.fulfill(body="<p>here</p>", content_type="text/html"))
    page.goto(ORIGIN)
    return page


def _leave_state_behind(browser) -> None:
    page = _open(browser)
    page.evaluate("() => { localStorage.setItem('left', 'behind'); "
                  "document.cookie = 'left=behind; max-age=3600'; }")
    assert page.evaluate("() => localStorage.getItem('left')") == "behind"
    assert "left=behind" in page.evaluate("() => document.cookie")


def _renderers() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)
            if "--type=renderer" in " ".join(_cmdline(p))}


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:  # gone meanwhile
        return []


def _hang_a_page(browser) -> None:
    hung = _open(browser)
    hung.evaluate("() => { setTimeout(() => { for (;;) {} }, 0); }")  # busy until closed


def _crash_a_page(browser) -> None:
    page = _open(browser)
    with page.expect_event("crash", timeout=30_000):  # Chromium reports the crash
        for pid in _renderers():  # this test's page's (and any spare one Chromium keeps)
            os.kill(pid, signal.SIGKILL)  # what an out-of-memory kill does to a tab


def test_a_test_sees_nothing_an_earlier_test_left_in_the_shared_chromium():
    with chromium() as first:
        _leave_state_behind(first)
        _hang_a_page(first)
        launched = first.launched
    with chromium() as second:
        assert second.launched is launched
        _crash_a_page(second)
    assert asyncio.run(asyncio.sleep(0, "between tests")) == "between tests"
    with chromium() as third:
        assert third.launched is launched  # the same Chromium: nothing launched again
        page = _open(third)
        assert page.evaluate("() => localStorage.getItem('left')") is None
        assert page.evaluate("() => document.cookie") == ""
        assert page.evaluate("() => 6 * 7") == 42  # pages load and run as before
        assert launched.contexts == [page.context]  # the hung and the crashed pages are gone


def test_after_a_failing_test_the_next_gets_a_new_chromium():
    with pytest.raises(AssertionError), chromium() as failing:
        _leave_state_behind(failing)
        launched = failing.launched
        raise AssertionError("the test failed here")
    assert not launched.is_connected()  # stopped with its driver
    with chromium() as after:
        assert after.launched is not launched
        page = _open(after)
        assert page.evaluate("() => localStorage.getItem('left')") is None
