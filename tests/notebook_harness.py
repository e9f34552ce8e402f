"""Test harnesses for the notebook front end.

``KernelHarness``: a real ipykernel (this venv's python) driven through ``jupyter_client``. It
executes cells without blocking, mirrors every widget's state from iopub (``comm_open`` +
``comm_msg`` updates, exactly what a browser receives) and sends the comm messages a widget's
frontend would send, e.g. the Stop button's ``{"method": "custom", "content": {"type": "stop"}}``.

``ReraisingShell``: an IPython ``InteractiveShell`` whose ``run_cell`` raises the cell's error
instead of printing a traceback (the jupysql ``_testing.py`` idea), for magic tests.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def kernel_serves_widgets_mid_cell() -> bool:
    """ipykernel >= 7.4 hands a widget message to a cell that awaits; older kernels handle it
    after the cell (the harness's kernel runs this interpreter, so this is its ipykernel)."""
    from importlib.metadata import version

    major, minor = (int(p) for p in version("ipykernel").split(".")[:2])
    return (major, minor) >= (7, 4)


@dataclass
class Execution:
    msg_id: str
    reply: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str | None:
        return None if self.reply is None else self.reply["content"]["status"]

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.outputs
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.outputs
            if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
        )

    @property
    def error(self) -> str:
        for m in self.outputs:
            if m["msg_type"] == "error":
                return f"{m['content']['ename']}: {m['content']['evalue']}"
        return ""

    def widget_ids(self) -> list[str]:
        ids = []
        for m in self.outputs:
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
                view = m["content"]["data"].get(WIDGET_MIME)
                if view and view["model_id"] not in ids:
                    ids.append(view["model_id"])
        return ids

    def data(self, mime: str) -> list[Any]:
        return [
            m["content"]["data"][mime]
            for m in self.outputs
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result")
            and mime in m["content"]["data"]
        ]


class KernelHarness:
    """One kernel per instance; use as a context manager."""

    def __init__(self, *, cwd: str | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.cwd = cwd
        self.env = env or {}
        self.args = args or []  # more of the kernel's command line (--LashMagics.x=...)
        self.km: Any = None
        self.kc: Any = None
        self.executions: dict[str, Execution] = {}
        self.widgets: dict[str, dict[str, Any]] = {}
        self.comm_updates: dict[str, int] = {}
        self.update_log: dict[str, list[dict[str, Any]]] = {}
        self.custom_from_kernel: dict[str, list[Any]] = {}
        self.failed_last = False  # the last reply read was not "ok": an abort may be on

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> KernelHarness:
        from jupyter_client.manager import KernelManager

        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        for attempt in range(3):
            # the native spec runs sys.executable; TCP ports picked free can be taken by another
            # test's kernel before this one binds them (parallel runs): that kernel dies at
            # start, so start another on new ports (not IPC sockets: their small buffers made
            # IOPub drop a flood of widget messages, the cell's idle among them)
            self.km = KernelManager(kernel_name="python3")
            self.km.start_kernel(cwd=self.cwd, env=env, extra_arguments=[
                "--HistoryManager.enabled=False", *self.args])
            self.kc = self.km.client()
            self.kc.start_channels()
            try:
                self.kc.wait_for_ready(timeout=60)
                return self
            except RuntimeError:
                if self.km.is_alive() or attempt == 2:
                    raise
                self.kc.stop_channels()
                self.km.cleanup_resources()
        return self

    def stop(self) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            self.km.shutdown_kernel(now=True)

    def __enter__(self) -> KernelHarness:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ execution
    def submit(self, code: str, *, stop_on_error: bool = True) -> Execution:
        """``stop_on_error=False`` for a cell expected to fail while cells already sent after
        it must run: otherwise the kernel aborts them (Run All's behaviour). A cell sent after
        a failed reply was read waits until the kernel runs cells again (``_past_the_abort``)."""
        if self.failed_last:
            self._past_the_abort()
        msg_id = self.kc.execute(code, store_history=False, stop_on_error=stop_on_error)
        ex = Execution(msg_id)
        self.executions[msg_id] = ex
        return ex

    def execute(self, code: str, *, timeout: float = 60.0, stop_on_error: bool = True
                ) -> Execution:
        ex = self.submit(code, stop_on_error=stop_on_error)
        self.wait(ex, timeout=timeout)
        return ex

    def run(self, code: str, *, timeout: float = 60.0) -> Execution:
        """Execute and raise if the cell failed."""
        ex = self.execute(code, timeout=timeout)
        if ex.status != "ok":
            raise AssertionError(f"cell failed: {ex.error}\n{ex.stderr}")
        return ex

    def wait(self, ex: Execution, *, timeout: float = 60.0) -> Execution:
        """Block until the cell's execute_reply arrived and its iopub went idle."""
        deadline = time.monotonic() + timeout
        while ex.reply is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no execute_reply within {timeout} s")
            try:
                msg = self.kc.get_shell_msg(timeout=min(remaining, 0.2))
            except queue.Empty:
                self.pump(0.0)
                continue
            self._read_reply(msg)
        self.pump_until(lambda: self._idle(ex.msg_id), timeout=max(1.0, deadline - time.monotonic()))
        return ex

    def _read_reply(self, msg: dict[str, Any]) -> str | None:
        """Record an execute_reply of this harness's cells; its parent's id."""
        parent = msg["parent_header"].get("msg_id")
        if parent in self.executions and msg["msg_type"] == "execute_reply":
            self.executions[parent].reply = msg
            self.failed_last = msg["content"]["status"] != "ok"
        return parent

    def _past_the_abort(self) -> None:
        """Wait until the kernel runs execute requests again. After a cell fails (with
        ``stop_on_error``), ipykernel 6.x aborts every execute request it reads before its next
        loop turn: its end of aborting is a timer (``stop_on_error_timeout``, 0), run after the
        messages that turn read. A person's next cell comes long after it; the harness's came
        at once and read "aborted" (7 of 150 on ipykernel 6.29 at load 3, none on 7.4). So an
        empty silent request goes first, again until one is not aborted (ADR 227)."""
        self.failed_last = False
        while True:
            probe = self.kc.execute("", silent=True, store_history=False, stop_on_error=False)
            while True:
                msg = self.kc.get_shell_msg(timeout=60)
                if self._read_reply(msg) == probe and msg["msg_type"] == "execute_reply":
                    break
            if msg["content"]["status"] != "aborted":
                return

    def _idle(self, msg_id: str) -> bool:
        return any(
            m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
            for m in self.executions[msg_id].outputs
        )

    # ------------------------------------------------------------------ iopub
    def pump(self, timeout: float) -> bool:
        """Read one iopub message (waiting up to ``timeout``). False when none came."""
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return False
        self._record(msg)
        return True

    def pump_until(self, predicate: Callable[[], bool], *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            self.pump(min(remaining, 0.2))

    def _record(self, msg: dict[str, Any]) -> None:
        parent = msg["parent_header"].get("msg_id")
        if parent in self.executions:
            self.executions[parent].outputs.append(msg)
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open":
            self.widgets[content["comm_id"]] = dict(content["data"].get("state", {}))
            self.comm_updates.setdefault(content["comm_id"], 0)
        elif kind == "comm_msg":
            cid, data = content["comm_id"], content["data"]
            if data.get("method") == "update":
                self.widgets.setdefault(cid, {}).update(data.get("state", {}))
                self.comm_updates[cid] = self.comm_updates.get(cid, 0) + 1
                self.update_log.setdefault(cid, []).append(dict(data.get("state", {})))
            elif data.get("method") == "custom":
                content = data.get("content")
                self.custom_from_kernel.setdefault(cid, []).append(content)
                self.comm_updates[cid] = self.comm_updates.get(cid, 0) + 1
                self.update_log.setdefault(cid, []).append({"custom": content})
                _apply_rows(self.widgets.setdefault(cid, {}), content)

    def wait_for_widget(
        self, ex: Execution, *, name: str | None = None, timeout: float = 30.0
    ) -> str:
        """The model id of the first widget the cell displayed (optionally of one class)."""

        def found() -> bool:
            return any(self._matches(mid, name) for mid in ex.widget_ids())

        self.pump_until(found, timeout=timeout)
        return next(mid for mid in ex.widget_ids() if self._matches(mid, name))

    def _matches(self, model_id: str, name: str | None) -> bool:
        if name is None:
            return True
        return str(self.widgets.get(model_id, {}).get("_anywidget_id", "")).endswith(name)

    def state(self, model_id: str) -> dict[str, Any]:
        return self.widgets[model_id]

    # ------------------------------------------------------------------ frontend messages
    def send_custom(self, model_id: str, content: dict[str, Any]) -> None:
        """What ``model.send(content)`` in the widget's JS does."""
        msg = self.kc.session.msg(
            "comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": content}}
        )
        self.kc.shell_channel.send(msg)

    def send_update(self, model_id: str, state: dict[str, Any]) -> None:
        """What ``model.set(k, v); model.save_changes()`` does."""
        msg = self.kc.session.msg(
            "comm_msg",
            {"comm_id": model_id, "data": {"method": "update", "state": state, "buffer_paths": []}},
        )
        self.kc.shell_channel.send(msg)


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 120.0) -> Any:
    """``probe()``'s first truthy value, asked every 0.1 s (a worker process or a store in
    another process offers no event to wait on); ``AssertionError`` naming ``what`` after
    ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = probe()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class ReraisingShell:
    """An ``InteractiveShell`` whose ``run_cell`` raises the cell's exception."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        InteractiveShell.clear_instance()
        self.ip = InteractiveShell.instance()
        self.ip.history_manager.enabled = False

    def run_cell(self, code: str) -> Any:
        result = self.ip.run_cell(code, store_history=False)
        err = result.error_before_exec or result.error_in_exec
        if err is not None:
            raise err
        return result.result

    @property
    def user_ns(self) -> dict[str, Any]:
        return self.ip.user_ns

    def close(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        InteractiveShell.clear_instance()


@contextlib.contextmanager
def widgets_made() -> Iterator[list[Any]]:
    """Every ipywidget constructed inside the block, closed or not (a finished turn's widget
    closes its model, ADR 189, and leaves ipywidgets' table of open widgets)."""
    from ipywidgets import Widget

    made: list[Any] = []
    before = Widget._widget_construction_callback
    Widget.on_widget_constructed(made.append)
    try:
        yield made
    finally:
        Widget._widget_construction_callback = before


@contextlib.contextmanager
def lash_shell(cwd: Any, monkeypatch: Any, *cells: str) -> Iterator[ReraisingShell]:
    """A shell working in ``cwd`` with lash_nb loaded and the offline provider at full speed,
    after running ``cells``; closed at the end."""
    monkeypatch.chdir(cwd)
    shell = ReraisingShell()
    try:
        for cell in ("%load_ext lash_nb._notebook.extension", "%config LashMagics.offline_delay_s = 0",
                     *cells):
            shell.run_cell(cell)
        yield shell
    finally:
        shell.close()


def offline_shell() -> ReraisingShell:
    """A shell with lash_nb loaded, the offline provider at full speed and an in-memory store."""
    shell = ReraisingShell()
    for line in ("%load_ext lash_nb._notebook.extension", "%config LashMagics.offline_delay_s = 0",
                 "%config LashMagics.store = ':memory:'"):
        shell.run_cell(line)
    return shell


def prose_of(state: dict[str, Any]) -> str:
    """The prose text of a TurnWidget state (its prose blocks, joined)."""
    return "".join(b["text"] for b in state.get("blocks", []) if b["kind"] == "prose")


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _apply_rows(state: dict[str, Any], msg: Any) -> None:
    """The live turn view's row messages (``{"type": "delta" | "full"}``, see
    ``static/turn.js``: ``lashApplyDelta``), applied to the recorded state as a view would."""
    if not isinstance(msg, dict) or msg.get("type") not in ("delta", "full"):
        return
    if msg["type"] == "full":
        state.update(blocks=[dict(b) for b in msg["blocks"]], html=dict(msg["html"]),
                     html_len=dict(msg["html_len"]))
        return
    blocks = [dict(b) for b in (msg.get("reset") or state.get("blocks") or [])]
    for i, row in msg.get("rows", []):
        blocks[i:i + 1] = [dict(row)]
    for i, offset, text in msg.get("append", []):  # offsets in UTF-16 units, as JS counts
        assert _u16(blocks[i]["text"]) == offset, "a delta that does not fit the view's copy"
        blocks[i]["text"] += text
    state["blocks"] = blocks
    state["html"] = {**state.get("html", {}), **msg.get("html", {})}
    for cid, was, keep, text in msg.get("html_splice", []):  # finished blocks kept, rest new
        old = state["html"][cid]
        assert _u16(old) == was, "an HTML splice that does not fit the view's copy"
        units = old.encode("utf-16-le", "surrogatepass")[:2 * keep]
        state["html"][cid] = units.decode("utf-16-le", "surrogatepass") + text
    state["html_len"] = {**state.get("html_len", {}), **msg.get("html_len", {})}


def load_lines(k: KernelHarness) -> list[str]:
    """``%load_ext lash_nb`` in kernel ``k``, which must succeed, and the lines it said on
    stderr but the one an ipykernel older than 7.4 gets (ADR 23)."""
    ex = k.execute("%load_ext lash_nb", stop_on_error=False)
    assert ex.status == "ok", ex.error
    return [line for line in ex.stderr.strip().splitlines()
            if line.startswith("lash_nb: ") and not line.startswith("lash_nb: ipykernel ")]
