"""``ToolBatch``: one batch of a model reply's tool calls, run concurrently.

Every call gets a result message part in call order: its output, or (when the turn was
stopped before it finished) an ``interrupted`` marker whose record keeps the time it ran.
A tool that raises anything (``SystemExit`` too), an unknown tool or a missing required
argument gives the model an error result; ``KeyboardInterrupt`` in a tool cancels the turn.
(A tool that validates its own arguments, ``validates_arguments``, checks required ones
itself: they count in its retry bound.) Before a call runs its approval policy is resolved
(``approval.py``): ``never`` and a denied ``ask`` give the model a denial result; a call
waiting for its answer is cancelled by a stop like a running one.
A tool that returns an image (a matplotlib figure, a PIL image, an object with
``_repr_png_``) gives a text result describing it and, once its bytes are stored, an
attachment part after the results, so the model sees the picture. A DataFrame is the text an
attached one gets (whole as CSV when small, else a summary; ``attachments.table_text``), not
pandas' console repr, which hides middle columns and rows behind ``...``.
A tool that holds the event loop for a second or more without awaiting (``time.sleep`` in an
``async def``) is named in one warning of the ``lash_nb.tools`` logger: Stop waited for it.
A stop during a plain function's call is warned about too: the call ends ``interrupted``,
but its thread cannot be stopped and the function runs on until it returns.
The text of an error a tool raised is scrubbed like a provider's error (the turn provider's
key in any encoding, credential shapes) and loses every other key this process knows (ADR
196) before the model, the widget or the store sees it: an HTTP client's error in a tool
often names the request, key and all.
A successful output is the tool's data: only keys are taken out of it (a tool returning
``dict(os.environ)``): the turn provider's own, every other provider key this process knows
(a keyed provider alive, a provider variable of the environment: ADR 196), each in any
encoding, and a source's own secrets when it knows them (``scrub_result``: an MCP server's
``env`` values, URL passwords and credential shapes, since its text comes from another
program); every other value stays as returned.
Every output is bounded (``_core/tool_output.py``, ADR 174) before it is cleaned and scrubbed:
past ``max_output`` characters (the tool's, its server's, else the session's) the model, the
record, the events and the store get its head and tail around a line saying what was left
out. A code-mode cell's host call gets the whole (cleaned, scrubbed) value; its record is
bounded like any.
What a call prints while it runs (``tool_print.py``: stdout, stderr, warnings, logging) is
kept on its record and completion, bounded by the same ``max_output``, cleaned and scrubbed as
an error's text; its whole lines stream as ``tool_call_printed`` activities; the model is not
sent it (ADR 197).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from .._core import events as ev
from .._core.approval import ApprovalDecision, ApprovalPolicy, denial_text
from .._core.attachments import (
    Attachment,
    TextWithImages,
    attachment_from,
    is_image_like,
    is_table,
    table_text,
)
from .._core.cancel import CancellationToken
from .._core.json_text import keyed_as_text
from .._core.llm import LlmPart
from .._core.records import Message, Part, PartKind, Role, ToolCallRecord, fresh_id
from .._core.secrets import scrub as scrub_shapes
from .._core.secrets import scrub_strings
from .._core.text import clean_json, clean_text
from .._core.tool_output import DEFAULT_MAX_OUTPUT, bounded
from .._core.tools import ToolContext, ToolManifest, ToolProvider, ToolRegistry
from .._errors import ToolArgumentsInvalid
from .._providers.redaction import scrub_known_in, scrub_known_values
from .._store.waits import waits_shown
from .approval import ApprovalRequest, Approvals
from .tool_print import Printed
from .turn_records import (
    args_problem,
    as_text,
    error_text,
    jsonable,
    parse_args,
    tool_traceback,
)

Emit = Callable[[ev.TurnEvent, str], None]
log = logging.getLogger("lash_nb.tools")
# a tool whose longest step (the time between two of its awaits) reached HELD_WARN_S held the
# loop that long: its own steps are timed, so a call that waited while another tool of the
# same reply blocked the loop is not named
HELD_WARN_S = 1.0


def now_ms() -> int:
    return int(time.time() * 1000)


class ToolBatch:
    def __init__(self, calls: list[LlmPart], *, registry: ToolRegistry, session_id: str,
                 turn_id: str, emit: Emit, records: list[ToolCallRecord],
                 token: CancellationToken, approvals: Approvals | None = None,
                 scrub: Callable[[str], str] = scrub_shapes,
                 scrub_output: Callable[[Any], Any] | None = None,
                 max_output: int = DEFAULT_MAX_OUTPUT, keep_whole: bool = False) -> None:
        self.calls = calls
        self.max_output = max_output  # the session's bound; a tool's own max_output wins
        # a code-mode cell's host calls: call id -> the whole output the cell is given
        self.whole: dict[str, Any] | None = {} if keep_whole else None
        self.sources: dict[str, ToolProvider] = {}  # call id -> the provider that ran it
        self.scrub = scrub  # for the text of errors tools raise
        self.scrub_output = scrub_output  # the provider's own key out of a tool's output
        self.approvals = approvals
        self.decisions: dict[str, ApprovalDecision] = {}  # call -> its approval (not always)
        self.questions: dict[str, ApprovalRequest] = {}  # call -> its open question
        self.token = token
        self.registry = registry
        self.session_id = session_id
        self.turn_id = turn_id
        self.emit = emit
        self.records = records  # the turn's tool call records (appended to)
        self._first_record = len(records)  # this batch's records start here
        self.results: dict[str, tuple[str, bool]] = {}
        self.images: dict[str, list[Attachment]] = {}  # call id -> the images its tool returned
        self.clock: dict[str, tuple[int, float]] = {}  # running call -> (started_ms, t0)
        self.on_thread: set[str] = set()  # calls whose function was started on a worker thread
        self.tracebacks: dict[str, str] = {}  # call id -> the scrubbed traceback it raised
        self.printed: dict[str, Printed] = {}  # call id -> what it printed (ADR 197)

    async def run(self) -> None:
        if len(self.calls) == 1:
            await self._run_one(self.calls[0])
        else:
            await asyncio.gather(*(self._run_one(c) for c in self.calls))

    async def _run_one(self, call: LlmPart) -> None:
        call_id, name = call.call_id or fresh_id("call_"), call.tool_name or ""
        cid = f"tool:{call_id}"
        args = parse_args(call.input_json)
        self.emit(ev.ToolCallStarted(call_id, name, args), cid)
        started, t0 = now_ms(), time.perf_counter()
        self.clock[call_id] = (started, t0)
        broken = args_problem(call.input_json, name)
        output: Any
        if broken is not None:  # never run a call on arguments the model did not send
            output, success = scrub_known_values(self.scrub(broken)), False
        else:
            output, success = await self._execute(name, args, call_id)
        printed = self._printed_text(call_id)
        started, t0 = self.clock[call_id]  # an approved call's clock starts at its approval
        duration = round((time.perf_counter() - t0) * 1000, 3)
        if success and isinstance(output, TextWithImages):  # an MCP result's pictures
            self.images[call_id] = list(output.images)
            output = output.text
        elif success and is_image_like(output):
            try:
                image = attachment_from(output, name=f"{name} output")
            except Exception as err:  # e.g. past the size limit: the model is told why
                output, success = f"the tool's image could not be attached: {self._error(err)}", False
            else:
                self.images[call_id] = [image]
                output = f"an image {image.ref.describe()}, attached below"
        try:
            if success and is_table(output):  # every column and row, not pandas' console repr
                output = table_text(output)
            output = self._shaped(call_id, output)
        except Exception as err:  # an output that cannot be shown as text
            output = (f"the tool returned a {type(output).__name__} that cannot be shown as "
                      f"text: {self._error(err)}")
            success = False
        self.results[call_id] = (as_text(output), success)
        self.records.append(ToolCallRecord(call_id, name, args, output, success, duration, started,
                                           approval=self.decisions.get(call_id),
                                           printed=printed,
                                           traceback=self.tracebacks.get(call_id)))
        self.emit(ev.ToolCallCompleted(call_id, name, args, output, duration, success,
                                       "success" if success else "failure", printed,
                                       self.images.get(call_id)), cid)

    def _printing(self, call_id: str, name: str, provider: ToolProvider) -> Printed:
        """The call's capture of what it prints (``tool_print.py``), bounded like its output,
        its whole lines shown live on its row."""
        limit = getattr(provider, "max_output", None) or self.max_output
        taken = self.printed[call_id] = Printed(
            limit, live=functools.partial(self._live, call_id, name),
            loop=asyncio.get_running_loop(),
            # no widget shows this turn's rows: the lines also go where they went before
            echo=None if waits_shown() else scrub_known_values)
        return taken

    def _live(self, call_id: str, name: str, text: str, more: bool) -> None:
        self.emit(ev.ToolCallPrinted(call_id, name, self._logs(text), True if more else None),
                  f"tool:{call_id}")

    def _printed_text(self, call_id: str) -> str | None:
        """What the call printed as the session keeps it (None: nothing, or it never ran)."""
        taken = self.printed.get(call_id)
        text = None if taken is None else taken.text(self._scrub_log)
        return None if text is None else self._logs(text)

    def _scrub_log(self, text: str) -> str:
        return scrub_known_values(self.scrub(text))

    def _logs(self, text: str) -> str:
        """Printed text as the session keeps it: cleaned (core/text.py), without credential
        shapes and every key this process knows, as an error's text (ADR 197)."""
        return self._scrub_log(clean_text(text))

    def _shaped(self, call_id: str, output: Any) -> Any:
        """``output`` as the session keeps it: bounded, cleaned (core/text.py), without the
        provider's key and the source's own secrets (the module docstring)."""
        source = self.sources.get(call_id)
        limit = getattr(source, "max_output", None) or self.max_output
        own = getattr(source, "scrub_result", None)
        own = own if callable(own) else None
        provider = self.scrub_output
        if not getattr(source, "keys_as_json", False):  # @tool's did it before pydantic
            output = keyed_as_text(output)  # {1: "a", "1": "b"}: JSON would keep one (0219)

        def scrub_text(text: str) -> str:
            text = own(text) if own is not None else text
            text = provider(text) if provider is not None else text
            return scrub_known_values(text)

        def scrubbed(value: Any) -> Any:
            value = clean_json(value)  # tool output enters the session (core/text.py)
            if own is not None:
                value = scrub_strings(value, own)
            value = provider(value) if provider is not None else value
            return scrub_known_in(value)  # the keys lash knows (ADR 196)

        if self.whole is not None:
            self.whole[call_id] = scrubbed(jsonable(output))
        return scrubbed(bounded(output, limit, scrub=scrub_text))

    async def _execute(self, name: str, args: dict[str, Any], call_id: str) -> tuple[Any, bool]:
        found = self.registry.provider_for(name)
        if found is None:
            names = ", ".join(m.name for m in self.registry.members()) or "(none)"
            return f"unknown tool {name!r}; available tools: {names}", False
        provider, manifest = found
        self.sources[call_id] = provider
        if not getattr(provider, "validates_arguments", False):
            missing = [r for r in manifest.input_schema.get("required", ()) if r not in args]
            if missing:
                return f"missing required argument(s) {', '.join(missing)} for tool {name!r}", False
        context = ToolContext(self.session_id, self.turn_id, call_id)
        if self.approvals is not None:
            refused = await self._approve(name, args, context, provider, manifest)
            if refused is not None:
                return refused, False
        if getattr(provider, "runs_on_thread", False) is True:
            self.on_thread.add(call_id)
        stepped = _Stepped(provider.execute(name, args, context))
        try:
            # only the tool's own run: lash's warnings about it stay under the cell
            with self._printing(call_id, name, provider):
                output = await stepped
        except asyncio.CancelledError as err:
            if self.token.cancelled or _being_cancelled():
                raise
            return self._raised(name, call_id, err), False  # the tool's own, not a cancel
        except KeyboardInterrupt:
            # Ctrl-C / a kernel interrupt landed inside the tool: the user wants the turn
            # stopped. Cancel it here; letting it escape would stop the loop.
            self.token.cancel("keyboard_interrupt", f"KeyboardInterrupt in tool {name!r}")
            raise asyncio.CancelledError from None
        except BaseException as err:  # Exception, SystemExit, ...: an error result
            return self._raised(name, call_id, err), False
        finally:
            _tell_if_held(name, stepped.longest, inline=getattr(provider, "inline", False) is True)
        return output, True

    def _error(self, err: BaseException) -> str:
        return scrub_known_values(self.scrub(error_text(err)))

    def _raised(self, name: str, call_id: str, err: BaseException) -> str:
        """The one line the model gets for an error the tool raised; its traceback, scrubbed
        the same way, is kept for the call's record and logged at INFO (ADR 192)."""
        if not isinstance(err, ToolArgumentsInvalid):  # the model's mistake, not the tool's
            text = scrub_known_values(self.scrub(tool_traceback(err)))
            self.tracebacks[call_id] = text
            log.info("tool %r (call %s, turn %s) raised:\n%s", name, call_id, self.turn_id, text)
        return self._error(err)

    async def _approve(self, name: str, args: dict[str, Any], context: ToolContext,
                       provider: ToolProvider, manifest: ToolManifest) -> str | None:
        """Resolve the call's policy; None: run it, else the text the model reads instead."""
        approvals = self.approvals
        assert approvals is not None
        entry = self.registry.entries.get(manifest.id)
        policy = approvals.policy_for(name, entry.source_id if entry else None, provider)
        if policy is ApprovalPolicy.ALWAYS:
            return None
        call_id, cid = context.call_id, f"tool:{context.call_id}"
        if policy is ApprovalPolicy.NEVER:
            decision = ApprovalDecision("denied", "policy", now_ms(), policy.value)
        else:
            check = getattr(provider, "check_arguments", None)
            if check is not None:  # do not ask about a call that cannot run
                try:
                    check(args, context)
                except ToolArgumentsInvalid as err:
                    return str(err)
            request = ApprovalRequest(session_id=self.session_id, turn_id=self.turn_id,
                                      call_id=call_id, tool=name, args=args,
                                      source=entry.source_id if entry else None,
                                      loop=asyncio.get_running_loop())
            self.questions[call_id] = request
            approvals.open(request)
            self.emit(ev.ToolApproval(call_id, name, "pending", policy.value), cid)
            try:
                decision = await approvals.wait(request)
            finally:
                approvals.close(request)
        self.decisions[call_id] = decision
        self.emit(ev.ToolApproval(call_id, name, decision.decision, decision.policy, decision.by,
                                  decision.reason or None, decision.at_ms), cid)
        self.clock[call_id] = (now_ms(), time.perf_counter())  # the tool's time, not the wait
        return None if decision.approved else denial_text(name, decision)

    def _close_question(self, call_id: str, name: str) -> None:
        """A stop reached a call waiting for its answer: the question closes ``cancelled``
        by the stop's origin (a script awaiting it gets that decision)."""
        request = self.questions.get(call_id)
        if request is None or call_id in self.decisions:
            return
        request._decide("cancelled", self.token.origin or "cancel", self.token.reason or "")
        decision = request.decision
        assert decision is not None
        self.decisions[call_id] = decision
        self.emit(ev.ToolApproval(call_id, name, decision.decision, decision.policy, decision.by,
                                  decision.reason or None, decision.at_ms), f"tool:{call_id}")

    def settle(self) -> None:
        """After a cancel: record every unfinished call as interrupted (the time it ran is
        real, keep it)."""
        for c in self.calls:
            cid = c.call_id or ""
            if cid in self.results:
                continue
            if cid in self.on_thread:
                log.warning("tool %r was stopped while its function ran on a thread: Python "
                            "cannot stop a thread, so the function runs on until it returns and "
                            "what it does still happens (its result is dropped)", c.tool_name)
            started, t0 = self.clock.get(cid, (now_ms(), time.perf_counter()))
            ran = round((time.perf_counter() - t0) * 1000, 3)
            args = parse_args(c.input_json)
            self._close_question(cid, c.tool_name or "")
            printed = self._printed_text(cid)  # what it printed before the stop
            self.records.append(ToolCallRecord(cid, c.tool_name or "", args, "interrupted",
                                               False, ran, started, True,
                                               approval=self.decisions.get(cid),
                                               printed=printed))
            self.emit(ev.ToolCallCompleted(cid, c.tool_name or "", args, "interrupted", ran,
                                           False, "cancelled", printed), f"tool:{cid}")

    def result_message(self, *, with_images: bool = False) -> Message:
        """The results in call order; ``with_images``: then the returned images (only once
        their bytes are stored). The batch's records are put in call order too (they were
        appended as calls finished): ``result.tool_calls`` and the stored rows list the
        reply's calls as the model made them (docs/adr/0201)."""
        order = {c.call_id: i for i, c in enumerate(self.calls)}
        self.records[self._first_record:] = sorted(
            self.records[self._first_record:], key=lambda r: order.get(r.call_id, len(order)))
        mid = fresh_id("m")
        parts = []
        for i, c in enumerate(self.calls):
            cid = c.call_id or ""
            text, ok = self.results.get(cid, ("interrupted: the turn was stopped", False))
            parts.append(Part(f"{mid}.p{i}", PartKind.TOOL_RESULT, text, cid, c.tool_name,
                              interrupted=cid not in self.results, is_error=not ok))
        if with_images:
            for image in (i for images in self.images.values() for i in images):
                parts.append(Part(f"{mid}.p{len(parts)}", PartKind.ATTACHMENT,
                                  image.ref.describe(), attachment=image.ref))
        return Message(mid, Role.USER, tuple(parts))


class _Stepped:
    """Awaits a coroutine step by step and keeps its longest step: how long it held the event
    loop without awaiting (nothing else ran meanwhile: Stop, widgets, other tools)."""

    __slots__ = ("coro", "longest")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        # a provider's execute may return any awaitable (a future, a task): drive it through
        # a coroutine of our own, whose steps are then its steps
        self.coro = awaitable if inspect.iscoroutine(awaitable) else _awaited(awaitable)
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        value: Any = None
        error: BaseException | None = None
        while True:
            t0 = time.perf_counter()
            try:
                out = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self.longest = max(self.longest, time.perf_counter() - t0)
            try:
                value, error = (yield out), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as err:  # a cancel, thrown in at the await: the tool's to see
                value, error = None, err


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _tell_if_held(name: str, lag: float, *, inline: bool) -> None:
    """One warning when a tool's own code ran ``HELD_WARN_S`` or more without awaiting:
    nothing else ran meanwhile (Stop, widgets, other tools)."""
    if lag < HELD_WARN_S:
        return
    if inline:
        log.warning("tool %r held the event loop for %.1f s (it runs inline): Stop and the "
                    "live widget waited for it; drop inline=True (it then runs on a thread)",
                    name, lag)
        return
    log.warning("tool %r held the event loop for %.1f s without awaiting (time.sleep or "
                "blocking I/O in an async def?): Stop and the live widget waited for it; "
                "make it a plain def (it then runs on a thread) or await its I/O", name, lag)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
