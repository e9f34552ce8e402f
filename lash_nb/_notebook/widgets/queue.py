"""Queue view: pending queued-work batches, a cancel button per batch and a drain button.

Buttons send ``{"type": "cancel", "batch_id"}``, ``{"type": "drain"}`` or
``{"type": "refresh"}``. Callbacks may be sync or async; async ones run on the kernel loop
(see ``actions.py``). After every action the rows are reloaded from ``load()``.
``follow(events)`` keeps the rows live: it reloads on every observation event whose payload
kind is ``queue_changed`` or ``committed`` until the iterator ends.

Drain. A click while a drain runs is ignored (counted in ``ignored_drains``), and the button is
disabled while ``draining``. A ``drain`` callback that takes one argument gets this widget as
its *drain view* and reports through it:
- ``start_drain(total)``: ``progress = {"done": 0, "total": total}`` (batches);
- ``turn_view()``: a :class:`TurnWidget` that is not displayed on its own; its flushes stream
  the turn into ``ran`` (``[{turn_id, html}]``, the turn's HTML as it runs), so the answers of a
  drain appear in the queue panel;
- ``turn_done()``: reloads and sets ``progress.done`` to how many of the batches are gone.
A ``NotebookDrain`` (``drain.py``) reports instead through ``show_drain_progress(p)`` (its
``DrainProgress``) and ``show_drain_activity(a)`` (each activity of the running turn); both are
shown the same way.
The drain's running turn may wait for a tool call's approval: its waiting calls are synced as
``questions`` (``[{call_id, tool, args}]``, the arguments one line, scrubbed and bounded as an
approval notice quotes them) and the panel shows Approve / Deny for each; a click sends
``{"type": "decide", "call_id", "ok"}``, decided ``by: user`` as a turn widget's buttons do.
While it drains the panel shows Stop, ``{"type": "stop"}``: the ``stop`` callback (the
``NotebookDrain``'s) cancels the running turn and ends the drain (ADR 212).
Rows may carry ``status`` (``failed``) and ``error``; they are shown (a failed batch's error).
The synced ``batches``, ``status`` and ``session_id`` hold outside text (queued prompts, a
server's error) as the snapshot shows it: no terminal escapes, control or bidi characters
(``visible``, ADR 152), the session's name as its card shows it (``shown_name``: escaped
when it holds such a character, ADR 219); a cancel names the batch by the id it was shown.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anywidget
import traitlets

from ..._core.visible import visible, visible_json
from .actions import call_action, kernel_loop, run_action
from .assets import css, esm
from .panel import PanelSnapshot
from .snapshot import queue_counts, queue_html, turn_fragment
from .untrusted import ShownSessionName

Loader = Callable[[], Any]  # -> Sequence[batch] or an awaitable of it
# the panel whose Drain runs the code logging now (its task, and the tasks and tool threads
# it starts, carry it): a tool's warning goes to that panel's running turn (ADR 225)
_DRAINING: contextvars.ContextVar[QueueWidget | None] = contextvars.ContextVar(
    "lash_draining_panel", default=None)


class _ToThePanel(logging.Handler):
    """``lash_nb.tools`` warnings raised inside a panel's drain, as a notice row of the turn
    the panel shows running: a drain started by a click has no cell, so its log went only to
    JupyterLab's log console, where nobody looks (a tool holding the event loop delayed the
    panel's Stop with nothing saying why)."""

    def emit(self, record: logging.LogRecord) -> None:
        panel = _DRAINING.get()
        if panel is None or record.levelno < logging.WARNING:
            return
        loop = panel._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(panel.tell, record.getMessage())


_TO_THE_PANEL = _ToThePanel()


def batch_row(batch: Any) -> dict[str, Any]:
    """A ``QueuedWorkBatch`` (or its JSON) as a table row."""
    data: Mapping[str, Any] = batch if isinstance(batch, Mapping) else batch.to_json()
    text = getattr(batch, "text", None)
    if not isinstance(text, str):
        text = "\n\n".join(
            str((i.get("turn_input") or {}).get("text", "")) for i in data.get("items") or ()
        ).strip()
    return {
        "batch_id": str(data.get("batch_id", "")),
        "text": text,
        "source_key": data.get("source_key"),
        "delivery_policy": str(data.get("delivery_policy", "")),
        "slot_policy": str(data.get("slot_policy", "")),
        "merge_key": data.get("merge_key"),
        "enqueued_at_ms": data.get("enqueued_at_ms"),
        "claimed": bool(data.get("claim_id") or getattr(batch, "claim_id", None)),
        "status": str(data.get("status") or getattr(batch, "status", "") or ""),
        "error": data.get("error") or getattr(batch, "error", None),
    }


class QueueWidget(ShownSessionName, anywidget.AnyWidget, PanelSnapshot):
    _esm = esm("kernel.js", "panel.js", "queue.js")
    _css = css("turn.css")

    session_id = traitlets.Unicode("").tag(sync=True)
    batches = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    draining = traitlets.Bool(False).tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    ran = traitlets.List(traitlets.Dict()).tag(sync=True)
    questions = traitlets.List(traitlets.Dict()).tag(sync=True)

    @traitlets.validate("batches", "status", "questions")
    def _visible(self, proposal: Any) -> Any:
        return visible_json(proposal["value"])  # shown live as the snapshot shows it (ADR 152)

    def __init__(
        self,
        *,
        load: Loader,
        cancel: Callable[[str], Any] | None = None,
        drain: Callable[..., Any] | None = None,
        stop: Callable[[], Any] | None = None,
        decide: Callable[[str, bool], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._load, self._cancel, self._drain = load, cancel, drain
        self._stop, self._decide = stop, decide
        self._loop = kernel_loop()
        self.actions: list[tuple[str, str]] = []
        self.ignored_drains = 0
        self._ids: dict[str, str] = {}  # the batch id a row shows -> the batch's own id
        self._not_cancelled: str | None = None  # the batch a cancel found claimed or gone
        self._init_panel()
        self.on_msg(self._on_custom)

    async def refresh_async(self) -> None:
        rows = self._load()
        if inspect.isawaitable(rows):
            rows = await rows
        batches = [batch_row(b) for b in rows]
        self._ids = {visible(b["batch_id"]): b["batch_id"] for b in batches}
        self.batches = batches
        if self.progress.get("total") and self._drain_ids:  # a NotebookDrain counts its own
            gone = self.progress["total"] - sum(1 for b in self.batches if b["batch_id"] in self._drain_ids)
            self.progress = {**self.progress, "done": max(0, gone)}
        self.update_snapshot()

    def refresh(self) -> None:
        run_action(self._loop, self.refresh_async(), self._shown)

    async def follow(self, events: AsyncIterator[Any]) -> None:
        async for ev in events:
            kind = _payload_kind(ev)
            if kind in ("queue_changed", "committed", "gap"):
                await self.refresh_async()

    def _on_custom(self, _w: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, Mapping):
            return
        kind = content.get("type")
        if kind == "refresh":
            self.refresh()
        elif kind == "cancel" and self._cancel is not None:
            self.cancel(str(content.get("batch_id")))
        elif kind == "drain" and self._drain is not None:
            self.drain()
        elif kind == "stop" and self._stop is not None and self.draining:
            self.actions.append(("stop", ""))
            self.status = "stopping the drain…"
            self._stop()
        elif kind == "decide":
            self.decide(str(content.get("call_id") or ""), content.get("ok") is True)

    def decide(self, call_id: str, ok: bool) -> bool:
        """Approve / Deny of a question the panel shows (a call of the running drained turn
        that waits): decided ``by: user``. False for a call that does not wait."""
        if self._decide is None or call_id not in {q["call_id"] for q in self.questions}:
            return False
        self.actions.append(("approve" if ok else "deny", call_id))
        return bool(self._decide(call_id, ok))

    def cancel(self, batch_id: str) -> None:
        assert self._cancel is not None
        batch_id = self._ids.get(batch_id, batch_id)  # the browser sends the id it was shown
        self.actions.append(("cancel", batch_id))
        self._run(lambda: self._cancel_one(batch_id), f"cancelling {batch_id}…",
                  lambda exc: self._cancelled(batch_id, exc))

    async def _cancel_one(self, batch_id: str) -> None:
        got = self._cancel(batch_id) if self._cancel else None
        if inspect.isawaitable(got):
            got = await got
        self._not_cancelled = batch_id if got is None else None

    def _cancelled(self, batch_id: str, exc: BaseException | None) -> None:
        self._done(exc)
        if exc is None and self._not_cancelled == batch_id:
            self.status = (f"{visible(batch_id)} was not cancelled: a drain or a worker claimed "
                           "it first, or it already ran")

    def drain(self) -> None:
        assert self._drain is not None
        if self.draining:  # a double click: one drain runs, and the panel says so
            self.ignored_drains += 1
            self.status = "a drain is already running; this click did nothing"
            return
        self.actions.append(("drain", ""))
        self.draining = True
        self.ran = []
        self.progress = {}
        drain = self._drain
        takes_view = _arity(drain) >= 1
        self._run(lambda: self._as_this_panel(
            (lambda: drain(self)) if takes_view else drain), "draining…", self._drained)

    async def _as_this_panel(self, call: Callable[[], Any]) -> Any:
        """Run the drain with this panel as the one its tools' warnings go to."""
        tools_log = logging.getLogger("lash_nb.tools")
        if _TO_THE_PANEL not in tools_log.handlers:
            tools_log.addHandler(_TO_THE_PANEL)
        token = _DRAINING.set(self)
        try:
            got = call()
            return await got if inspect.isawaitable(got) else got
        finally:
            _DRAINING.reset(token)

    def tell(self, text: str) -> None:
        """A warning during the drain: a notice row of the running turn, else the status."""
        live = self._live_turn
        if live is not None and not live.finished:
            live.push({"type": "lash_notice", "text": text})
        else:
            self.status = text

    # the drain view (see the module docstring)
    _drain_ids: frozenset[str] = frozenset()

    def start_drain(self, total: int) -> None:
        self._drain_ids = frozenset(b["batch_id"] for b in self.batches)
        self.progress = {"done": 0, "total": int(total)}

    def turn_view(self, **kwargs: Any) -> Any:
        from .turn import TurnWidget

        slot: list[int] = []  # its row in ``ran``, made on the first flush (a turn ran)

        def mirror(w: Any) -> None:
            ran = list(self.ran)
            row = {"turn_id": w.turn_id, "html": turn_fragment(w.state())}
            if not slot:
                slot.append(len(ran))
                ran.append(row)
            else:
                ran[slot[0]] = row
            self.ran = ran
            if w.finished:
                self.update_snapshot()

        return TurnWidget(session_id=self.session_id, on_flush=mirror, **kwargs)

    async def turn_done(self) -> None:
        await self.refresh_async()

    # the hooks a NotebookDrain reports through (``progress`` / ``activity`` callbacks)
    _live_turn: Any = None

    def show_drain_progress(self, p: Any) -> None:
        """A drain's progress (``done``, ``total``, ``running``, ``ran`` rows): N of M, and a
        turn the activity feed did not show is added from its ``ran`` row."""
        self.progress = {"done": int(p.done), "total": int(p.total)}
        if p.running:
            self.status = p.label() + "…"
        shown = len(self.ran)
        for row in list(p.ran)[shown:]:
            if self._live_turn is not None and not self._live_turn.finished:
                self._live_turn.finish(outcome=str(row.get("outcome") or ""))
                continue
            view = self.turn_view(turn_id=str(row.get("turn_id") or ""))
            view.push({"id": "answer", "correlation_id": "answer", "type": "assistant_prose_delta",
                       "text": str(row.get("answer") or "")})
            view.finish(outcome=str(row.get("outcome") or ""))
        if not p.running and self._live_turn is not None and not self._live_turn.finished:
            self._live_turn.finish()

    def show_drain_activity(self, activity: Any) -> None:
        """One activity of the turn a drain is running: streamed into the panel."""
        data = activity if isinstance(activity, Mapping) else activity.to_json()
        turn_id = str(data.get("turn_id") or "")
        live = self._live_turn
        if live is None or live.finished or (turn_id and live.fold.turn_id and turn_id != live.fold.turn_id):
            if live is not None and not live.finished:
                live.finish()
            live = self._live_turn = self.turn_view(turn_id=turn_id)
        if data.get("type") == "queued_work_started":  # quote what was asked, not only ids
            texts = {b.get("batch_id"): b.get("text") for b in self.batches}
            live.prompt = "\n".join(str(texts[i]) for i in data.get("batch_ids") or ()
                                    if texts.get(i))
        live.push(activity)  # the object: a tool's pictures keep their bytes (ADR 234)
        if data.get("type") == "turn_outcome":
            live.finish()
        self._ask(live)

    def _ask(self, live: Any) -> None:
        """The running turn's calls that wait for approval, as the panel's questions."""
        from ..._runtime.approval import shown_args

        asks = [] if live.finished else [
            {"call_id": str(r.get("call_id") or ""), "tool": str(r.get("name") or ""),
             "args": shown_args(_parsed(r.get("args")))}
            for r in live.fold.tool_rows() if r.get("status") == "waiting"]
        if asks != self.questions:
            self.questions = asks

    def _run(self, call: Callable[[], Any], busy: str,
             done: Callable[[BaseException | None], Any] | None = None) -> None:
        self.status = busy
        call_action(self._loop, call, done or self._done)

    def _done(self, exc: BaseException | None) -> None:
        self.status = f"{type(exc).__name__}: {exc}" if exc else ""
        self.refresh()

    def _drained(self, exc: BaseException | None) -> None:
        self.draining, self.questions = False, []
        p = self.progress
        ran = f"ran {len(self.ran)} turn{'s' if len(self.ran) != 1 else ''}"
        self.status = (f"{type(exc).__name__}: {exc}" if exc else
                       f"{ran}; {p.get('done', 0)} of {p['total']} batches done" if p.get("total")
                       else ran)
        self.refresh()

    def snapshot_html(self) -> str:
        return queue_html(self.panel_id, self.session_id, self.batches, self.status, self.ran)

    def snapshot_text(self) -> str:
        lines = [f"{queue_counts(self.batches)} batch(es)"] + [
            f"- {b['batch_id']} {b['delivery_policy']}/{b['slot_policy']}: {b['text'][:60]}"
            + (f" [{b['status']}: {b['error']}]" if b.get("error") else
               f" [{b['status']}]" if b.get("status") not in (None, "", "pending") else "")
            for b in self.batches
        ]
        return "\n".join(lines)

    def _shown(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.status = f"{type(exc).__name__}: {exc}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._panel_bundle(super()._repr_mimebundle_(**kwargs))


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _parsed(args: Any) -> Any:
    """A call's arguments as the model sent them: JSON text read back, else as given."""
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return {} if args is None else args


def _payload_kind(ev: Any) -> str:
    if isinstance(ev, Mapping):
        return str(ev.get("kind") or ev.get("type") or "")
    payload = getattr(ev, "payload", ev)
    kind = getattr(payload, "kind", None) or getattr(payload, "type", None)
    if isinstance(kind, str):
        return kind
    name = type(payload).__name__
    return {"QueueChanged": "queue_changed", "Committed": "committed", "LiveReplayGap": "gap"}.get(
        name, name
    )


__all__ = ["QueueWidget", "batch_row"]
