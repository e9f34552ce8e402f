"""``session.approvals()``: who may run which tool, and the questions waiting for an answer.

Theory of operation
- Every tool call of a turn resolves its policy (``lash_nb._core.approval``) before it runs:
  the session's override for the tool's name, else for its source (the source id, or an MCP
  server's name), else the tool's own (``@tool(approval=...)``, ``MCPServer(approval=...)``),
  else the session default (``set_policy(policy)``; ``always`` unless set). ``always`` costs
  one dictionary probe and one attribute read: nothing is asked, nothing recorded.
- ``never``: the call is denied by ``policy`` at once. ``ask``: an :class:`ApprovalRequest`
  is opened, a ``tool_approval`` event with state ``pending`` goes out (the live widget shows
  Approve / Deny on the tool row), the approver callback (if any) is called, and the call
  waits. The first decision wins: a button click (``user``), the callback or a script's
  ``decide`` / ``request.approve()`` (``api``). Decisions are thread-safe (a widget message
  may arrive on another thread). A second ``tool_approval`` event carries the decision.
- A stop (Stop button, ``%lash stop``, kernel interrupt, a remote cancel) cancels the waiting
  call like any running tool: the request is closed with decision ``cancelled`` by the cancel's
  origin, the call is recorded interrupted.
- Unattended (a queue worker): an ``ask`` call with no approver callback is denied by
  ``worker`` at once rather than parking the turn (docs/adr/0055).
- A wait is never silent (docs/adr/0204): a question nothing can answer (no approver, not a
  worker, its turn not shown on a live widget with Approve / Deny, no script awaiting
  ``next()`` when it opened) and still open after :data:`NOTICE_AFTER_S` is told to a
  person. In a running ipykernel the notebook's presenter shows it under the awaiting cell
  (Approve / Deny buttons on ipykernel >= 7.4, else the one line saying what to do);
  elsewhere, and when the presenter cannot, one warning on ``lash_nb.tools`` names the tool,
  its arguments (scrubbed, bounded), the call id and the ways to answer. The turn still waits:
  a script may answer from another task or thread.
- States of a request: open -> decided (approved | denied | cancelled). Nothing leaves
  ``decided``; a late decision is refused (``decide`` returns False).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .._core.approval import ApprovalDecision, ApprovalPolicy, approval_policy
from .._core.secrets import scrub_urls
from .._core.text import clean_text
from .._errors import ConfigurationError
from .._providers.redaction import scrub_known
from .._store.waits import waits_shown
from .kernel_shutdown import running_kernel
from .sync import on_private_loop

log = logging.getLogger("lash_nb.tools")

Approver = Callable[["ApprovalRequest"], Any]
"""``approver(request)`` -> ``True`` (approve), ``False`` (deny), ``None`` (leave the question
open for the widget or a script), or an awaitable of one of these."""
Presenter = Callable[["ApprovalRequest"], bool]
"""Shows a question nothing else answers to a person; True when it did (ADR 204)."""

# a question answered within this long (a script polling ``pending()``, another thread's
# ``decide``) is not told about: the notice is for a wait that would otherwise look like a hang
NOTICE_AFTER_S = 1.0
ARGS_SHOWN = 200  # characters of a call's arguments a notice quotes
# the kernel's presenter: the notebook layer, loaded by name and only in a running ipykernel,
# since a Python-API user of a notebook need not have run %load_ext (ADR 204)
KERNEL_PRESENTER = "lash_nb._notebook.question"


def now_ms() -> int:
    return int(time.time() * 1000)


class ApprovalRequest:
    """One tool call waiting for a decision. ``approve()`` / ``deny(reason)`` from any thread;
    ``await request`` gives the :class:`~lash_nb.ApprovalDecision`."""

    def __init__(self, *, session_id: str, turn_id: str, call_id: str, tool: str,
                 args: Any, source: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.session_id = session_id
        self.turn_id = turn_id
        self.call_id = call_id
        self.tool = tool
        self.args = args
        self.source = source
        self.asked_at_ms = now_ms()
        self._loop = loop
        self._future: asyncio.Future[ApprovalDecision] = loop.create_future()
        self._lock = threading.Lock()
        self._decision: ApprovalDecision | None = None
        self._awaited = False  # a script awaited ``approvals().next()`` when it opened

    @property
    def decision(self) -> ApprovalDecision | None:
        return self._decision

    @property
    def decided(self) -> bool:
        return self._decision is not None

    def approve(self, *, by: str = "api") -> bool:
        """Let the call run. False if it was already decided (the first decision wins)."""
        return self._decide("approved", by, "")

    def deny(self, reason: str = "", *, by: str = "api") -> bool:
        """Refuse the call; the model reads a denial result with ``reason``."""
        return self._decide("denied", by, reason)

    def _decide(self, decision: str, by: str, reason: str) -> bool:
        with self._lock:
            if self._decision is not None:
                return False
            self._decision = d = ApprovalDecision(
                decision, clean_text(str(by))[:40] or "api", now_ms(), ApprovalPolicy.ASK.value,
                clean_text(str(reason or ""))[:500], self.asked_at_ms)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            _resolve(self._future, d)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                self._loop.call_soon_threadsafe(_resolve, self._future, d)
        return True

    def __await__(self) -> Any:
        return asyncio.shield(self._future).__await__()

    def __repr__(self) -> str:
        state = self._decision.decision if self._decision else "open"
        return f"<ApprovalRequest {self.tool} call {self.call_id} {state}>"


def _resolve(future: asyncio.Future[ApprovalDecision], decision: ApprovalDecision) -> None:
    if not future.done():
        future.set_result(decision)


class Approvals:
    """A session's approval policies, its approver callback and its open questions."""

    def __init__(self) -> None:
        self.default = ApprovalPolicy.ALWAYS
        self.unattended = False  # a queue worker: nobody to ask (ADR 55)
        self._overrides: dict[str, ApprovalPolicy] = {}
        self._approver: Approver | None = None
        self._open: dict[str, ApprovalRequest] = {}
        self._waiters: list[asyncio.Future[None]] = []

    # ------------------------------------------------------------------ configuration
    def set_policy(self, policy: str | ApprovalPolicy, tool: str | None = None) -> None:
        """``set_policy("ask")``: the session default for tools without a policy of their
        own; ``set_policy("never", tool="rm")``: for one tool name, a source id
        (``"live:1"``) or an MCP server's name; it overrides the tool's own policy
        (``clear_policy(tool)`` removes it)."""
        p = approval_policy(policy)
        if tool is None:
            self.default = p
            return
        if not isinstance(tool, str) or not tool:
            raise ConfigurationError("tool must be a tool name, a source id or an MCP server name")
        self._overrides[tool] = p

    def clear_policy(self, tool: str) -> None:
        """Forget the session's override for ``tool`` (its own policy applies again)."""
        self._overrides.pop(tool, None)

    def policies(self) -> dict[str, str]:
        """The session's overrides (``{name: policy}``) and ``"*"``: the default."""
        return {"*": self.default.value, **{k: v.value for k, v in self._overrides.items()}}

    def set_approver(self, approver: Approver | None) -> None:
        """Answer ``ask`` calls with a callback (see :data:`Approver`); None removes it."""
        if approver is not None and not callable(approver):
            raise ConfigurationError("the approver must be a callable taking an ApprovalRequest")
        self._approver = approver

    # ------------------------------------------------------------------ questions
    def pending(self) -> list[ApprovalRequest]:
        """The open questions, oldest first."""
        return [r for r in self._open.values() if not r.decided]

    async def next(self, timeout: float | None = None) -> ApprovalRequest:  # noqa: ASYNC109
        """The oldest open question, waiting for one if there is none (``TimeoutError``
        after ``timeout`` seconds)."""
        async with asyncio.timeout(timeout):
            while True:
                waiting = self.pending()
                if waiting:
                    return waiting[0]
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                try:
                    await fut
                finally:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)

    def decide(self, call_id: str, approve: bool, *, reason: str = "", by: str = "api") -> bool:
        """Approve or deny the open question of ``call_id``; False when there is none (already
        decided, or the turn ended). Thread-safe."""
        request = self._open.get(call_id)
        if request is None:
            return False
        return request.approve(by=by) if approve else request.deny(reason, by=by)

    # ------------------------------------------------------------------ the runtime's side
    def policy_for(self, name: str, source_id: str | None, provider: Any) -> ApprovalPolicy:
        if self._overrides:
            o = self._overrides
            found = o.get(name) or (o.get(source_id) if source_id else None)
            if found is None:
                server = getattr(provider, "name", None)
                found = o.get(server) if isinstance(server, str) else None
            if found is not None:
                return found
        own = getattr(provider, "approval_for", None)
        if own is not None:
            p = own(name)
            if p is not None:
                return p  # type: ignore[no-any-return]
        return self.default

    def open(self, request: ApprovalRequest) -> None:
        self._open[request.call_id] = request
        waiters, self._waiters = self._waiters, []
        request._awaited = any(not w.done() for w in waiters)
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def close(self, request: ApprovalRequest) -> None:
        self._open.pop(request.call_id, None)

    async def wait(self, request: ApprovalRequest) -> ApprovalDecision:
        """Ask: the callback first (it runs beside the wait, so the widget or a script may
        still answer), then wait for the first decision. Cancelling the wait closes nothing:
        the caller records the cancel (``ToolBatch``)."""
        approver = self._approver
        if approver is None and self.unattended:
            request._decide("denied", "worker",
                            "this tool needs approval and the turn runs in a worker")
        task = None
        if approver is not None and not request.decided:
            task = asyncio.ensure_future(_ask_callback(approver, request))
        elif not request.decided and not request._awaited and not waits_shown():
            task = asyncio.ensure_future(_tell_unanswered(request))  # the wait is not silent
        try:
            decision: ApprovalDecision = await request
            return decision
        finally:
            if task is not None and not task.done():
                task.cancel()


async def _ask_callback(approver: Approver, request: ApprovalRequest) -> None:
    try:
        answer = approver(request)
        if inspect.isawaitable(answer):
            answer = await answer
    except asyncio.CancelledError:
        raise
    except Exception as err:  # a broken approver must not run the tool: deny, say why
        log.warning("the approver failed for tool %s: %s: %s", request.tool,  # shown in the
                    type(err).__name__, scrub_urls(clean_text(str(err))))  # notebook: scrubbed
        request.deny(f"the approver failed ({type(err).__name__})")
        return
    if answer is True:
        request.approve()
    elif answer is False:
        request.deny()
    elif answer is not None:
        request.deny(f"the approver answered {type(answer).__name__}, not True/False/None")


def shown_args(args: Any) -> str:
    """A call's arguments for a notice: JSON on one line, every key this process knows and
    credential shapes taken out (the model wrote them: outside text), at most
    :data:`ARGS_SHOWN` characters."""
    try:
        text = json.dumps(args, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(args)
    text = scrub_urls(scrub_known(clean_text(text)))
    if len(text) > ARGS_SHOWN:
        text = f"{text[:ARGS_SHOWN]}… ({len(text):,} characters)"
    return text


def waiting_line(request: ApprovalRequest) -> str:
    """What waits: the session, turn, tool, call and arguments (the start of every notice)."""
    return (f"lash_nb: turn {request.turn_id} of session {request.session_id!r} waits for "
            f"approval of tool {request.tool!r} (call {request.call_id}) with arguments "
            f"{shown_args(request.args)}")


def unanswered_line(request: ApprovalRequest) -> str:
    """The warning of a question nothing answers, outside a kernel's cell (a script), or in
    a cell that waits in ``run_sync``: that cell holds the kernel, so nothing but the
    interrupt reaches it (ADR 212)."""
    if on_private_loop() and running_kernel() is not None:
        return (f"{waiting_line(request)}; this cell waits in run_sync, which holds the kernel: "
                "nothing can answer the question until the cell ends. Interrupt the kernel "
                "(the turn ends stopped: cancelled, the tool does not run), then run the turn "
                "with out = await s.turn(...).run() (Approve / Deny show under the cell), or "
                "set s.approvals().set_approver(fn) before run_sync")
    return (f"{waiting_line(request)}; nothing is set to answer it: call "
            f"session.approvals().decide({request.call_id!r}, True) (or False) from another "
            "task or thread, or set session.approvals().set_approver(fn) before the turn; "
            "Ctrl-C or session.cancel_running_turns() stops the turn")


def _kernel_presenter() -> Presenter | None:
    if "ipykernel" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return None  # no kernel, or a turn on run_sync's own loop thread: no cell to show it in
    try:
        module = importlib.import_module(KERNEL_PRESENTER)
    except ImportError:  # lash-nb-core without the notebook extras
        return None
    present: Presenter = module.present
    return present


async def _tell_unanswered(request: ApprovalRequest) -> None:
    await asyncio.sleep(NOTICE_AFTER_S)
    if request.decided:
        return
    present = _kernel_presenter()
    try:
        if present is not None and present(request):
            return
    except Exception:  # a notice must never break the turn; the log line still goes out
        log.debug("the kernel's approval notice failed", exc_info=True)
    log.warning("%s", unanswered_line(request))


__all__ = ["ApprovalRequest", "Approvals", "Approver", "Presenter"]
