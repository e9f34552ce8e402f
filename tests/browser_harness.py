"""Drive JupyterLab 4 / Notebook 7 in headless Chromium the way a user does.

``JupyterServer`` serves a test's folder from ``jupyter lab`` or ``jupyter notebook`` on
127.0.0.1 with a token and a user-settings directory of its own (so the theme is the test's
choice). ``NotebookPage`` opens a notebook, waits for an idle kernel, runs Run > Run All Cells
from the menu, saves with Ctrl+S (checked on disk through the contents API), shuts the kernel
down and reopens the notebook, also with its kernel connection held back (the page before its
kernel is connected). ``CONTRAST_JS`` measures, in the page, the WCAG contrast of
every piece of text under a selector against the background it is drawn on (colours resolved
by painting them on a canvas, so ``rgba``, ``color-mix`` and theme variables all count).

One Jupyter server per frontend serves the browser tests that run one after another in a
pytest process (an xdist worker): starting one took ~3.5 s of CPU per test, more on a loaded
machine. What a test could leave behind does not carry over: its notebooks are in its own
folder (its kernels' working directory), each page it opens has a browser context of its own
(cookies, storage, cache), and when it ends its kernels are shut down (their processes waited
for) and the user settings emptied; a server that does not come back clean is stopped, and the
next test starts another. The servers are stopped when the next test is not a browser test,
and at the end (ADR 183).

One Chromium, with its Playwright driver, serves them the same way (``chromium()``, ADR 194):
launching both for each test cost CPU that went into no page. A test's contexts are closed when
its block ends; a test that fails, a context that does not close, or a browser that is gone or
still holds a context stops them, and the next test launches new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
TOKEN = "lashbrowsertest"
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
DOCS_IMG = REPO / "docs" / "img"
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
FRONTENDS = {  # name -> (jupyter subcommand, notebook URL prefix, extra args)
    "jupyterlab": ("lab", "/lab/tree/{name}?reset&token=", ["--LabApp.news_url="]),
    "notebook7": ("notebook", "/notebooks/{name}?token=", []),
}
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]



@pytest.fixture(params=sorted(FRONTENDS))
def frontend(request: Any) -> str:
    """Each frontend in turn (a test module's ``frontend`` argument; conftest loads this
    module as a plugin); Notebook 7 only where it is installed."""
    if request.param == "notebook7":
        pytest.importorskip("notebook", minversion="7")
    return str(request.param)

def browser_test_marks() -> list[Any]:
    """A browser test module's ``pytestmark``; the module is skipped where Chromium or
    playwright is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                        "(pip install playwright)")
    return [pytest.mark.browser, pytest.mark.slow]


def write_notebook(path: Path, cells: list[str | tuple[str, str]]) -> None:
    """``cells``: code sources, or ``("markdown", text)``."""
    out = []
    for i, c in enumerate(cells):
        kind, src = c if isinstance(c, tuple) else ("code", c)
        cell: dict[str, Any] = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    nb = {"cells": out, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"}}}
    path.write_text(json.dumps(nb, indent=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ServerProcess:
    """A ``jupyter lab`` / ``jupyter notebook`` process serving ``root`` (the folder that holds
    the tests' folders), with its user settings in ``settings``."""

    def __init__(self, frontend: str, root: Path) -> None:
        self.frontend, self.root = frontend, root
        self.app, _url, self.extra = FRONTENDS[frontend]
        self.settings = root / f".jupyter-settings-{frontend}"
        self.log_path = root / f"{frontend}.log"
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.settings.mkdir(parents=True, exist_ok=True)  # a test may have written to it
        self.log = open(self.log_path, "w")  # noqa: SIM115  (closed by stop())
        cmd = [sys.executable, "-m", "jupyter", self.app, "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", *self.extra]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(self.settings))
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=root,
                                     env=env)
        deadline = time.monotonic() + 180  # a loaded machine took over 60 s once
        while True:
            try:
                _api(self.base, "GET", "/api/status")
                return
            except OSError as e:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"jupyter {self.app} did not start: "
                                       f"{self.log_path.read_text()[-2000:]}") from e
                time.sleep(0.25)  # polling a server that offers no readiness event

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kernel_processes(self) -> list[str]:
        return subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "ipykernel_launcher"],
                              capture_output=True, text=True, check=False).stdout.split()

    def clean(self) -> bool:
        """Shut every session and kernel down and wait until their processes are gone. False
        when the server did not get there."""
        try:
            for s in _api(self.base, "GET", "/api/sessions"):
                _api(self.base, "DELETE", f"/api/sessions/{s['id']}")
            for k in _api(self.base, "GET", "/api/kernels"):
                _api(self.base, "DELETE", f"/api/kernels/{k['id']}")
            deadline = time.monotonic() + 60
            while _api(self.base, "GET", "/api/kernels") or self.kernel_processes():
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.25)  # the server offers no event for a kernel's exit
        except (OSError, ValueError):
            return False
        return True

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


_servers: dict[str, _ServerProcess] = {}  # frontend -> this process's server


def _server_for(frontend: str, root: Path) -> _ServerProcess:
    server = _servers.get(frontend)
    if server is not None and (server.root != root or not server.alive()):
        server.stop()
        server = None
    if server is None:
        server = _servers[frontend] = _ServerProcess(frontend, root)
    return server


def _api(base: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                 headers={"Authorization": f"token {TOKEN}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


class JupyterServer:
    """``root`` (a test's ``tmp_path``) served by this process's server for ``frontend``,
    which serves ``root``'s parent (pytest's folder of the tests' folders): notebooks are named
    relative to ``root``, and a notebook's kernel runs in ``root``. ``stop()`` closes nothing
    a later test uses: it shuts down the kernels (sessions) the test started, waits until their
    processes are gone and empties the user settings."""

    def __init__(self, frontend: str, root: Path) -> None:
        self.frontend, self.root = frontend, root
        self.app, self.url, self.extra = FRONTENDS[frontend]
        self.settings = root.parent / f".jupyter-settings-{frontend}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def set_theme(self, theme: str) -> None:
        """Takes effect on the next page load (the server reads the file on each request)."""
        d = self.settings / "@jupyterlab" / "apputils-extension"
        d.mkdir(parents=True, exist_ok=True)
        (d / "themes.jupyterlab-settings").write_text(json.dumps({"theme": THEMES[theme]}))
        (d / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    def start(self, theme: str = "light") -> JupyterServer:
        server = _server_for(self.frontend, self.root.parent)
        self.proc, self.base = server.proc, server.base
        self.set_theme(theme)
        return self

    def stop(self) -> None:
        server = _servers.get(self.frontend)
        mine = self.proc is not None and server is not None and server.proc is self.proc
        if mine and server is not None and not server.clean():  # the next test gets its own
            server.stop()
            del _servers[self.frontend]
        self.proc = None
        shutil.rmtree(self.settings, ignore_errors=True)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return _api(self.base, method, path, body)

    def notebook_url(self, name: str) -> str:
        path = urllib.parse.quote(f"{self.root.name}/{name}")
        return self.base + self.url.format(name=path) + TOKEN

    def kernels_idle(self) -> bool:
        try:
            kernels = self.api("GET", "/api/kernels")
        except (urllib.error.URLError, TimeoutError):  # jupyter_server answers 500 while a
            return False  # kernel is starting; a loaded machine's server may not answer in time
        return bool(kernels) and all(k.get("execution_state") == "idle" for k in kernels)

    def kill_kernel(self) -> None:
        """SIGKILL the notebook's kernel process (a child of this server), as a crash does;
        jupyter_server then starts a new kernel under the same id. A restart asked through the
        REST API mid-turn is not used: jupyter_server sometimes never reports the new kernel's
        status after it (ADR 137), while a kill goes through the same "starting" signal."""
        assert self.proc is not None
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "ipykernel_launcher"],
                               capture_output=True, text=True, check=False).stdout.split()
        assert len(found) == 1, found
        os.kill(int(found[0]), signal.SIGKILL)

    def kernel_pid(self) -> int | None:
        """The pid of this server's one kernel process (None while there is not exactly one)."""
        assert self.proc is not None
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "ipykernel_launcher"],
                               capture_output=True, text=True, check=False).stdout.split()
        return int(found[0]) if len(found) == 1 else None

    def restarted_from(self, old_pid: int | None) -> bool:
        """A kernel restart has ended: a new kernel process runs and the API says it is idle.
        "idle" alone is not enough: since ADR 195 the old kernel commits its running turn
        before it shuts down and reports idle itself, while jupyter_client's restart is still
        under way (a DELETE of the session then fails with a 500)."""
        pid = self.kernel_pid()
        return pid is not None and pid != old_pid and self.kernels_idle()

    def sessions_at(self, name: str) -> list[dict[str, Any]]:
        """The server's sessions whose path is the notebook ``name`` (relative to ``root``)."""
        try:
            sessions = self.api("GET", "/api/sessions")
        except (urllib.error.URLError, TimeoutError):  # a loaded machine's server may not answer
            return []
        return [s for s in sessions if s.get("path") == f"{self.root.name}/{name}"]

    def kernels_seen(self) -> str:
        """What the server holds, for a failed wait's message: each kernel's state and
        connections, each session's path."""
        try:
            kernels = self.api("GET", "/api/kernels")
            sessions = self.api("GET", "/api/sessions")
        except (urllib.error.URLError, TimeoutError) as e:
            return f"the server did not answer: {e}"
        ks = ", ".join(f"{k['id'][:8]} {k.get('execution_state')} "
                       f"({k.get('connections')} connections)" for k in kernels)
        ss = ", ".join(f"{s.get('path')} -> {s['kernel']['id'][:8]}" for s in sessions)
        return f"kernels: {ks or 'none'}; sessions: {ss or 'none'}"

    def shut_down_sessions(self) -> None:
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def saved(self, name: str) -> dict[str, Any]:
        """The notebook as it is on disk, read from the file, not through the contents API: a
        GET that lands while the server is writing the file finds it half written, and
        jupyter_server then moves it aside (``NAME.invalid``) and restores its backup under the
        writer, whose save then fails ("No such file or directory"). Multiline strings come
        back joined, as the API gives them. Raises ``ValueError`` while the file is half
        written."""
        import nbformat

        text = (self.root / name).read_text(encoding="utf-8")
        return dict(nbformat.reads(text, as_version=4))


def wait_until(predicate: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)  # the server offers no event for these conditions


class NotebookPage:
    def __init__(self, browser: Any, server: JupyterServer, name: str) -> None:
        self.browser, self.server, self.name = browser, server, name
        self.page: Any = None
        self.kernel_held = False  # the page's kernel connection goes nowhere

    def open(self) -> Any:
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 1000})
        self.page.goto(self.server.notebook_url(self.name))
        self.panel.locator(".jp-Cell").first.wait_for(timeout=90_000)
        try:
            wait_until(self.server.kernels_idle, timeout=90, what="an idle kernel")
        except AssertionError as e:
            raise AssertionError(f"{e} ({self.server.kernels_seen()})") from None
        return self.page

    def open_before_the_kernel(self) -> Any:
        """The notebook in a new page whose kernel connection is held open with nothing behind
        it: the page as it reads until its kernel is connected (a kernel slow to start, a busy
        server). The server still starts the page's kernel, which ``reopen`` then connects."""
        if self.page is not None:
            self.page.close()
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 1000})
        self.page.route_web_socket(re.compile(r"/api/kernels/.*/channels"), lambda _ws: None)
        self.page.goto(self.server.notebook_url(self.name))
        self.panel.locator(".jp-Cell").first.wait_for(timeout=90_000)
        self.kernel_held = True
        return self.page

    @property
    def panel(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

    def cell(self, i: int) -> Any:
        return self.panel.locator(".jp-Cell").nth(i)

    def menu(self, menu: str, item: str) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
        self.page.locator(".lm-Menu-itemLabel",
                          has_text=re.compile(f"^{re.escape(item)}$")).click()

    def restart_kernel(self) -> None:
        """Kernel > Restart Kernel…, confirmed in the dialog, as a user does."""
        self.menu("Kernel", "Restart Kernel…")
        self.page.locator(".jp-Dialog-button", has_text=re.compile(r"^Restart$")).click()

    def run_all(self) -> None:
        """Run > Run All Cells, from the menu bar."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    def run_cell(self, i: int) -> None:
        """Click into cell ``i`` and press Shift+Enter (retried: Lab may drop the first one).
        A retry after a press that was only slow runs the cell twice: the wait for the prompt
        to leave ``[ ]:`` is long enough for a loaded machine's browser (it was 5 s)."""
        cell = self.cell(i)
        prompt = cell.locator(".jp-InputPrompt")
        for _ in range(5):
            cell.locator(".jp-InputArea-editor").click()
            self.page.keyboard.press("Escape")
            self.page.keyboard.press("Shift+Enter")
            try:
                self.page.wait_for_function("el => !/^\\[\\s*\\]:$/.test(el.textContent.trim())",
                                            arg=prompt.element_handle(), timeout=15_000)
                return
            except Exception:
                continue
        raise AssertionError(f"cell {i} did not start")

    def save(self, expect_in_file: str) -> dict[str, Any]:
        """Ctrl+S; returns the notebook as saved once the file holds ``expect_in_file``."""
        found: list[dict[str, Any]] = []

        def holds() -> bool:
            try:
                nb = self.server.saved(self.name)
            except ValueError:  # the server is still writing the file
                return False
            found[:] = [nb]  # the file read once: a second read may meet the next save's write
            return expect_in_file in json.dumps(nb, ensure_ascii=False)

        for attempt in range(3):  # a key press right after a click is sometimes not seen
            self.cell(0).locator(".jp-InputPrompt").click()
            self.page.keyboard.press("Escape")
            self.page.keyboard.press("Control+s")
            try:
                wait_until(holds, timeout=15, what=f"the saved file to hold {expect_in_file!r}")
                return found[0]
            except AssertionError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def reopen(self) -> Any:
        """The page closed and the notebook opened again. A page opened by
        ``open_before_the_kernel`` is closed only once the server holds its session at the
        notebook's path: JupyterLab and Notebook 7 start a session under a temporary path and
        move it to the notebook's once its kernel has started (``SessionContext._startSession``).
        A page closed before that leaves a kernel no page connects to, "starting" forever, and
        the reopened page starts another (a loaded machine's kernel start outlasted the
        held page's reading: "timed out waiting for an idle kernel")."""
        if self.kernel_held:
            wait_until(lambda: bool(self.server.sessions_at(self.name)), timeout=90,
                       what=f"the held page's session at {self.name}")
            self.kernel_held = False
        self.page.close()
        return self.open()

    def screenshot(self, path: Path, *, scroll_to: int | None = None, height: int = 1000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.set_viewport_size({"width": 1280, "height": height})
        if scroll_to is not None:
            self.cell(scroll_to).scroll_into_view_if_needed()
            self.cell(scroll_to).evaluate("e => e.scrollIntoView({block: 'start'})")
        self.page.screenshot(path=str(path), full_page=False)

    def hide_sidebar(self) -> None:
        """What a user does for more room: close the left sidebar (JupyterLab only)."""
        if self.page.locator("#jp-left-stack:not(.lm-mod-hidden)").count():
            self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()


def launch(pw: Any) -> Any:
    """A Chromium of its own (``chromium()`` gives a test the shared one)."""
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)


class _SharedChromium:
    """This pytest process's Playwright driver and the Chromium it launched.

    Playwright's sync API runs its event loop in a greenlet beside the caller's and leaves that
    loop marked as the thread's running loop after each call; while the driver lives between
    tests, ``idle()`` clears the mark (so a test's own ``asyncio.run`` works outside its
    ``with chromium()`` as it did when each test stopped its own driver) and ``in_use()`` sets
    it again before the next call."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._manager = sync_playwright()
        self.playwright = self._manager.start()
        self.loop = self._manager._loop
        try:
            self.browser = launch(self.playwright)
        except BaseException:
            self._manager.__exit__()
            raise

    def alive(self) -> bool:
        """Connected (its driver and Chromium running) and holding no context of a test."""
        return bool(self.browser.is_connected()) and not self.browser.contexts

    def in_use(self) -> None:
        asyncio._set_running_loop(self.loop)

    def idle(self) -> None:
        asyncio._set_running_loop(None)

    def stop(self) -> None:
        """Chromium closed (its processes waited for by the driver), then the driver."""
        self.in_use()
        try:
            self.browser.close()
        except Exception:  # a browser (or driver) already gone; else it goes with its driver
            pass
        finally:
            try:
                self._manager.__exit__()
            finally:
                self.idle()


_chromium: list[_SharedChromium] = []  # this process's, while a run of browser tests lasts


class TestBrowser:
    """A test's view of the shared Chromium: ``new_page`` opens each page in a browser context
    of its own (as ``Browser.new_page`` does: no cookies, storage or cache from any other page
    or test); ``close`` closes every context the test opened. The browser itself stays."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self._contexts: list[Any] = []

    @property
    def launched(self) -> Any:
        """The shared Chromium (a Playwright ``Browser``)."""
        return self._browser

    def new_page(self, **options: Any) -> Any:
        page = self._browser.new_page(**options)
        self._contexts.append(page.context)
        return page

    def close(self) -> bool:
        """False when a context did not close (the browser is then not handed on)."""
        closed = True
        for context in self._contexts:
            try:
                context.close()
            except Exception:  # reported by the result: the browser is replaced
                closed = False
        self._contexts.clear()
        return closed


@contextlib.contextmanager
def chromium() -> Iterator[TestBrowser]:
    """This test's browser: the pytest process's shared Chromium (launched for the first
    browser test of a run of them, stopped with the Jupyter servers by ``stop_shared``), with
    a fresh browser context for each page the test opens. Launching a Chromium and its
    Playwright driver for every test cost ~1-1.5 s of CPU each (ADR 194).

    What a test leaves cannot reach the next: its contexts are closed when the block ends
    (closing a context ends its pages, also a hung or crashed one); when the block raises, a
    context does not close, or the browser is gone or still holds a context, the browser and
    its driver are stopped and the next test launches new ones."""
    shared = _chromium[0] if _chromium else None
    if shared is not None:
        shared.in_use()
        if not shared.alive():
            _stop_chromium()
            shared = None
    if shared is None:
        shared = _SharedChromium()
        _chromium.append(shared)
    browser = TestBrowser(shared.browser)
    passed = False
    try:
        yield browser
        passed = True
    finally:
        shared.in_use()  # the test may have cleared it (its own asyncio.run inside the block)
        closed = browser.close()
        if passed and closed and shared.alive():
            shared.idle()
        else:
            _stop_chromium()


def _stop_chromium() -> None:
    while _chromium:
        _chromium.pop().stop()


def stop_shared() -> None:
    """Stop this process's Chromium and Jupyter servers."""
    _stop_chromium()
    for server in _servers.values():
        server.stop()
    _servers.clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The shared servers end with the last of a run of browser tests."""
    yield
    if nextitem is None or nextitem.get_closest_marker("browser") is None:
        stop_shared()


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_shared()


def playwright_or_skip() -> Any:
    """``playwright.sync_api.sync_playwright``; the calling test module is skipped when
    Chromium or playwright is missing."""
    import pytest

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)
    return sync_playwright


def reopen_without_kernel(nb: NotebookPage, server: JupyterServer) -> Any:
    """Shut the kernel down, then reopen the saved notebook: what a user sees the next day."""
    server.shut_down_sessions()
    wait_until(lambda: not server.api("GET", "/api/kernels"), timeout=30,
               what="the kernel to shut down")
    return nb.reopen()


CONTRAST_JS = r"""
(selector) => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const paint = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "rgba(0,0,0,0)";
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = paint(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let bg = [255, 255, 255, 1];
    for (const c of layers.reverse()) bg = over(c, bg);
    return bg;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim())
      .map((n) => n.textContent.trim()).join(" ");
    if (!own) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest("[hidden]")) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === "hidden" || parseFloat(cs.opacity) === 0) continue;
    const isSvg = el instanceof SVGElement;
    const bg = background(isSvg ? el.ownerSVGElement.parentElement : el);
    const fg = over(paint(isSvg ? cs.fill : cs.color), bg);
    const a = lum(fg), b = lum(bg);
    out.push({ text: own.slice(0, 40), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
               size: parseFloat(cs.fontSize), weight: parseInt(cs.fontWeight, 10) || 400,
               fg: fg.slice(0, 3), bg: bg.slice(0, 3) });
  }
  return out;
}
"""


def low_contrast(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """WCAG AA: 4.5:1 for text, 3:1 for large text (>= 24 px, or >= 18.66 px bold)."""
    def needed(r: dict[str, Any]) -> float:
        large = r["size"] >= 24 or (r["size"] >= 18.66 and r["weight"] >= 700)
        return 3.0 if large else 4.5
    return [r for r in rows if r["ratio"] < needed(r)]
