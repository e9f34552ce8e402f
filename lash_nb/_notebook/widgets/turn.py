"""The live turn view: streamed prose, reasoning, tool rows, usage, outcome and a Stop button.

Theory of operation
- ``push(activity)`` folds one ``TurnActivity`` (object or JSON dict) into a Python-side
  :class:`TurnFold`. Nothing is sent to the browser yet.
- The first push after a flush schedules one flush on the running event loop with
  ``loop.call_later``, no sooner than ``interval_s`` after the previous flush. A flush sends
  only what changed since the last one: the small traits inside ``hold_sync()``, and the rows
  as one custom message ``{"type": "delta"}`` (new or changed rows whole, a growing prose or
  reasoning row as the text appended at its offset, a growing prose row's HTML as a splice
  ``[cid, its length, kept length, new part]`` that keeps its finished blocks; offsets in
  UTF-16 units, as the browser counts): the traffic of a long answer grows with its length,
  not with its length times the flushes. A 10,000-delta stream
  costs a few hundred messages, not 10,000. The final flush sends the full state to every view
  as ``{"type": "full", "final": true}``; the ``blocks`` / ``html`` / ``html_len`` traits hold
  it on the Python side only (not synced: a saved notebook's widget state would keep the
  answer for a widget the record replaced, ADR 182); a view opened mid-stream (or whose copy
  no longer fits a delta) sends ``{"type": "resync"}`` and gets ``{"type": "full"}``. Deltas are
  numbered (``seq``; a full copy names the last one it holds): a view applies each delta that
  follows its copy even while its resync is unanswered, since ipykernel 6.x answers it only
  after the cell (a view that dropped deltas until then showed nothing live), and asks for a
  full copy when one is missing (it opened mid-stream). Prose is rendered
  to sanitised HTML in Python (markdown-it-py, ``markdown.py``); the browser never parses
  markdown itself. Live, a row's finished blocks are rendered once each and its open block
  again only once it doubled (``live_prose.py``); at the end each row is rendered whole.
  Without a running loop a push flushes only when ``interval_s`` has passed.
- ``finish(result)`` / ``fail(message)`` cancel any pending flush, set the final state and flush
  now. Then the displayed output is replaced (``update_display``) by a self-contained HTML
  bundle (``snapshot.py``): a saved notebook shows the finished turn with no kernel and no
  widget state, in JupyterLab, Notebook 7, nbconvert, nbviewer, GitHub and VS Code. The live
  widget exists only while the turn runs: once the record replaced it, the widget closes its
  model (and its Layout's), so a notebook saved with widget state keeps none of a finished
  turn (ADR 189); ``_repr_mimebundle_`` of a finished widget is the same static bundle
  (``%lash replay`` returns one). The record carries the rules of ``turn.css`` its own markup
  uses (``assets.css_for``).
- The Stop button sends the custom message ``{"type": "stop"}``. The handler sets
  ``status = "stopping"`` and calls the stop callback (the session's thread-safe
  ``cancel_running_turns``). On ipykernel >= 7.4 the handler runs while the cell awaits the turn.
- A tool row ``waiting`` for approval shows Approve / Deny; they send ``{"type": "approve" |
  "deny", "call_id"}``. The handler passes the decision to the decide callback (the session's
  thread-safe ``approvals().decide(call_id, approved, by="user")``) only for a call of this
  turn that is waiting; the row moves on when the decision's ``tool_approval`` event arrives.
- States of ``status``: ``starting`` (shown, no event yet) -> ``running`` (first activity) ->
  ``stopping`` (Stop) -> one final state: ``done`` (``finished: *``), ``stopped``
  (``stopped: cancelled``) or ``failed`` (any other stopped outcome, or ``fail(message)``: a
  turn refused before its first event). Stop in a final state is ignored. A stopped turn never
  shows ``done``; its partial prose is marked interrupted and its running tool rows become
  ``cancelled`` with the time they ran.
- A restart or shutdown from the menu stops the turn first (``_runtime/kernel_shutdown.py``,
  ADR 195, 198); a kernel that died (or outran that wait) leaves its widget on the page, which
  sees it go (``static/kernel.js``), says "kernel gone (restarted from this page): the turn
  was cut" (or what else the page saw, ADR 217), drops Stop and the clock, shows the note.

State the browser reads (synced traits) and what feeds them
- ``session_id``, ``turn_id``, ``prompt``: set by the runner (``runner.py``).
- ``attachments``: one card per attachment of the input (``attachments.py``: a thumbnail
  data URL or a table preview, label, MIME, size), shown under the prompt.
- ``status``: above. ``outcome``: lash's label (``"stopped: cancelled"``).
- ``blocks``: folded rows ``{cid, kind: prose|reasoning|tool|error|notice, ...}``; prose rows
  may carry ``interrupted: true``; tool rows ``{name, args, output, status:
  running|done|failed|cancelled, duration_ms}``.
  Every string in them, and ``prompt`` / ``outcome`` / ``error``, is the text the record shows:
  no terminal escapes, control or bidi characters (``_core/visible.py``, ADR 135, 142, 143);
  the fold keeps the text as it came. A streaming text's escape cut at its end waits for its
  last bytes (the view never shows a remnant and takes it back). A prose or reasoning row
  past 100,000 characters and a prompt past 20,000 are cut, with a line saying how much is
  left out and the ``%lash sql`` that reads it whole (``long_text.py``, ADR 151).
- ``html``: ``{cid: sanitised HTML}`` of each prose row; ``html_len``: ``{cid: n}``, the HTML
  covers the first ``n`` UTF-16 units of the row's text (a growing answer's open block is
  re-rendered less often; the browser shows the rest as plain text until the next render).
- ``usage`` (the latest cumulative ``usage`` activity; ``estimated: true`` is shown as such),
  ``retries``, ``iterations``, ``elapsed_ms`` (kernel-side; the browser extrapolates between
  flushes so the timer runs while a tool runs), ``error`` (the message of ``fail``).
- ``cost``: ``{usd, note, text}`` of the finished turn, set by the runner before ``finish``
  (``costs.turn_cost``; ``usd`` None with the reason in ``note`` when it has no price; ``{}``
  when costs are off). The footer shows ``text``.

Activities the fold understands beyond lash's (additive; unknown types are ignored):
``turn_outcome {outcome, turn_id}``; ``store_wait {holder_pid, waited_s}`` (a status row
"waiting for the store, held by pid N"); any activity may carry ``at_ms`` (a clock in ms) which
tool durations then use; ``tool_call_completed`` with ``cancelled: true`` or output
``"interrupted"`` is a cancelled call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import traitlets

from ..._core.visible import visible, visible_json, visible_so_far
from .. import cells
from .assets import css, esm
from .cut_note import CutNote
from .fold import TurnFold, never_started, outcome_label
from .live_prose import LiveProse, utf16_len
from .long_text import SHOWN_PROMPT_CHARS, SHOWN_PROSE_CHARS, ProseCut, shown_prompt
from .markdown import render_markdown, without_revealed_keys
from .snapshot import FINAL_STATUSES, LIVE_FALLBACK, bundle, final_status, turn_html
from .untrusted import ShownSessionName, inert_markdown

StopCallback = Callable[[], Any]
DecideCallback = Callable[[str, bool], Any]  # (call_id, approved) -> whether it was taken


_STREAMING = {"prose": "text", "reasoning": "text", "cell": "output"}  # the field that grows


class TurnWidget(ShownSessionName, anywidget.AnyWidget):
    _esm = esm("kernel.js", "turn.js")
    _css = css("turn.css")

    session_id = traitlets.Unicode("").tag(sync=True)
    turn_id = traitlets.Unicode("").tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)
    attachments = traitlets.List(traitlets.Dict()).tag(sync=True)
    blocks = traitlets.List(traitlets.Dict()).tag(sync=True)
    usage = traitlets.Dict().tag(sync=True)
    cost = traitlets.Dict().tag(sync=True)
    retries = traitlets.List(traitlets.Dict()).tag(sync=True)
    outcome = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("starting").tag(sync=True)
    iterations = traitlets.Int(0).tag(sync=True)
    elapsed_ms = traitlets.Float(0.0).tag(sync=True)
    html = traitlets.Dict().tag(sync=True)
    html_len = traitlets.Dict().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    panel_id = traitlets.Unicode("").tag(sync=True)  # the cut-turn note the view hides (show())
    # another turn of the session ran when this one was asked: it waits for that one first
    queued_behind = traitlets.Bool(False).tag(sync=True)

    _whole_prompt = ""  # the prompt as it was set; ``prompt`` is what the views show

    @traitlets.validate("prompt", "outcome", "error")
    def _visible(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if proposal["trait"].name == "prompt":  # a long prompt is cut (ADR 151)
            self._whole_prompt = value
            value = shown_prompt(value, self.turn_id, self._session_name)
        return visible(value)  # shown live as it is shown in the record

    @traitlets.observe("turn_id", "session_id")
    def _named(self, _change: Any) -> None:
        if len(self._whole_prompt) > SHOWN_PROMPT_CHARS:  # its note names the turn now
            self.prompt = self._whole_prompt

    def __init__(
        self,
        *,
        on_stop: StopCallback | None = None,
        on_decide: DecideCallback | None = None,
        on_flush: Callable[[TurnWidget], Any] | None = None,
        interval_s: float = 0.05,
        **kwargs: Any,
    ) -> None:
        """``on_flush(widget)`` runs after every flush (a queue panel mirrors the turn with it)."""
        super().__init__(**kwargs)
        self._on_flush = on_flush
        self.fold = TurnFold()
        self.interval_s = interval_s
        self.flush_count = 0
        self.stop_requests = 0
        self._on_stop = on_stop
        self._on_decide = on_decide
        self.decisions: list[tuple[str, bool]] = []  # approvals sent on (call_id, approved)
        self._sent_version = -1
        self._last_flush = float("-inf")
        self._started = time.monotonic()
        self._pending: asyncio.TimerHandle | None = None
        self._display: Any = None
        self._note: CutNote | None = None
        self._stopped_waiting = False
        self._rendered: dict[str, LiveProse] = {}  # cid -> the live HTML of a prose row
        # what the views were sent (deltas are computed against it): per row (cid, the row
        # without its text, its text then), and the HTML / covered lengths per prose row;
        # per prose row also how much of that HTML was its finished blocks (a splice keeps it)
        self._sent_rows: list[tuple[str, dict[str, Any], str | None]] = []
        self._seq = 0  # deltas sent so far: each carries its number, a full copy the last one
        self._sent_html: dict[str, str] = {}
        self._sent_stable: dict[str, int] = {}
        self._sent_lens: dict[str, int] = {}
        self._clean: dict[int, tuple[str, str]] = {}  # id(raw) -> (raw, shown)
        self._streams: dict[str, str] = {}  # cid -> a streaming text that was clean
        self._cuts: dict[str, ProseCut] = {}  # cid -> how a long row is cut (ADR 151)
        self.render_interval_s = max(interval_s, 0.2)
        self.on_msg(self._on_custom)

    # ------------------------------------------------------------------ producer side
    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def show(self) -> TurnWidget:
        """Display with a display id, so ``finish`` can replace it by the static record."""
        import uuid

        from IPython.display import display

        self.panel_id = uuid.uuid4().hex[:12]
        self._display = display(self, display_id=True)
        # read only if the notebook is saved before the turn ends (cut_note.py); a shell
        # without a kernel (a terminal) saves no notebook and prints every display once, so
        # there the note would only say, falsely, that the turn did not end
        if cells.in_kernel():
            self._note = note = CutNote(self.panel_id, self.session_id, self.prompt)
            cells.watch(note)
            note.named(self.turn_id)  # now, or once the runner knows it
            self.observe(lambda change: note.named(str(change["new"])), "turn_id")
        return self

    def set_stop_callback(self, on_stop: StopCallback | None) -> None:
        self._on_stop = on_stop

    def set_decide_callback(self, on_decide: DecideCallback | None) -> None:
        self._on_decide = on_decide

    def push(self, activity: Any) -> None:
        if self.finished:
            return
        self.fold.apply(activity)
        if self.status == "starting":
            self.status = "running"
        self._request_flush()

    def push_all(self, activities: Any) -> None:
        for a in activities:
            self.fold.apply(a)
        self._request_flush()

    def fail(self, message: str) -> None:
        """End the view with an error: the turn was refused or failed before (or without) its
        outcome. No Stop stays active; the error is the last row and the badge says failed."""
        if self.finished:
            return
        text = " ".join(str(message).split()) or "the turn failed"
        self.fold._append("error", text)
        self.fold.outcome = self.fold.outcome or "failed"
        self.fold.version += 1
        self.error = text
        self._finalize("failed")

    def finish(self, result: Any = None, *, outcome: str | None = None,
               elapsed_ms: float | None = None, lost: bool = False) -> None:
        """Final flush. ``result`` is a ``TurnResult`` (or its JSON); ``outcome`` overrides;
        ``elapsed_ms`` is the recorded duration (a replayed turn), else the widget's clock;
        ``lost``: the turn's process died before its final commit (a replayed record)."""
        self._recorded_elapsed_ms = elapsed_ms
        if outcome is None and result is not None:
            raw = getattr(result, "outcome", None)
            if raw is None and isinstance(result, Mapping):
                raw = result.get("outcome")
            outcome = outcome_label(raw) if isinstance(raw, (Mapping, str)) else str(raw)
        if outcome:
            self.fold.outcome = outcome
            self.fold.version += 1
        if self.fold.outcome.startswith("stopped"):
            self.fold.settle_stopped()
            never_started(self.fold, waited=self._stopped_waiting, lost=lost)
        self._finalize(final_status(self.fold.outcome) if self.fold.outcome else "done")

    def _finalize(self, status: str) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self.flush(final=status)
        note, shown = self._note, self._display
        self._note = None
        if note is not None:
            cells.forget(note)

        def publish() -> None:
            if note is not None:
                note.gone()
            if shown is not None:
                shown.update(self)  # the static bundle (see _repr_mimebundle_)

        if note is not None or shown is not None:
            # under the cell running now: a notebook run by nbclient saves it (ADR 191)
            cells.sent_where_seen(publish)
        self.close()

    def close(self) -> None:
        """Close the model and its Layout's: no output shows a finished view, and saved widget
        state would keep its ``_esm`` and ``_css`` per turn (ADR 189). The record stays
        (ipywidgets' ``close`` sets ``_repr_mimebundle_`` to ``None``: undone here)."""
        layout = self.layout  # ipywidgets gave the widget a Layout model of its own
        super().close()
        layout.close()
        self.__dict__.pop("_repr_mimebundle_", None)

    def flush(self, *, final: str | bool = False) -> bool:
        """Send the changed state now. Returns False when nothing changed."""
        self._pending = None
        f = self.fold
        if f.version == self._sent_version and not final:
            return False
        rows = self._rows(bool(final))
        rendered, lens = self._render_prose(rows, bool(final))
        delta = None if final else self._delta(rows, rendered, lens)
        if delta is not None:
            self._seq = delta["seq"]
            self.send(delta)
        if final:  # the full, exact state, to every view (before the final status)
            self.send({"type": "full", "final": True, "seq": self._seq, "blocks": rows,
                       "html": rendered, "html_len": lens})
        with self.hold_sync():
            if final:  # and on the Python side, where the record is built from it
                self._unsynced(blocks=rows, html=rendered, html_len=lens)
                self._mark_sent(rows, rendered, lens)
            if f.usage != self.usage:
                self.usage = dict(f.usage)
            if len(f.retries) != len(self.retries):
                self.retries = [visible_json(r) for r in f.retries]
            if f.outcome != self.outcome:
                self.outcome = f.outcome
            if f.turn_id and f.turn_id != self.turn_id:
                self.turn_id = f.turn_id
            if f.iterations != self.iterations:
                self.iterations = f.iterations
            recorded = getattr(self, "_recorded_elapsed_ms", None)
            self.elapsed_ms = recorded if recorded is not None else round(
                (time.monotonic() - self._started) * 1000.0, 1)
            if final:
                self.status = final if isinstance(final, str) else "done"
        self._sent_version = f.version
        self._last_flush = time.monotonic()
        self.flush_count += 1
        if self._on_flush is not None:
            self._on_flush(self)
        return True

    def _delta(self, rows: list[dict[str, Any]], rendered: dict[str, str],
               lens: dict[str, int]) -> dict[str, Any] | None:
        """What changed since the last send, as a ``delta`` message (``None``: nothing)."""
        sent = self._sent_rows
        msg: dict[str, Any] = {"type": "delta", "count": len(rows), "seq": self._seq + 1}
        if len(rows) < len(sent) or any(sent[i][0] != rows[i]["cid"] for i in range(len(sent))):
            msg["reset"] = [dict(b) for b in rows]  # rows went away (a retried answer)
        else:
            changed: list[Any] = []
            grown: list[Any] = []
            for i, b in enumerate(rows):
                if i >= len(sent):
                    changed.append([i, dict(b)])
                    continue
                _, rest, was = sent[i]
                text, was = b.get("text"), was or ""
                if any(b.get(k) != v for k, v in rest.items()) or len(b) - ("text" in b) != len(rest):
                    changed.append([i, dict(b)])
                elif isinstance(text, str) and text != was:
                    if text.startswith(was):  # offsets as JS counts
                        grown.append([i, utf16_len(was), text[len(was):]])
                    else:  # taken back (code mode cut the prose at its cell): the row again
                        changed.append([i, dict(b)])
            if changed:
                msg["rows"] = changed
            if grown:
                msg["append"] = grown
        html: dict[str, str] = {}
        splices: list[Any] = []
        for c, h in rendered.items():
            old = self._sent_html.get(c)
            if old is h or old == h:
                continue
            keep = self._sent_stable.get(c, 0) if old is not None else 0
            if old is not None and h.startswith(old[:keep]):
                # the finished blocks sent stay; only what follows them travels
                splices.append([c, utf16_len(old), utf16_len(old[:keep]), h[keep:]])
            else:
                html[c] = h
        html_len = {c: n for c, n in lens.items() if self._sent_lens.get(c) != n}
        if html:
            msg["html"] = html
        if splices:
            msg["html_splice"] = splices
        if html_len:
            msg["html_len"] = html_len
        self._mark_sent(rows, rendered, lens)
        return msg if len(msg) > 2 else None

    def _unsynced(self, **values: Any) -> None:
        """Set traits on the Python side only: the views got them as a message. Once the
        record replaces the widget, no output shows it; as synced state the final rows stayed
        in a saved notebook's widget state (nbclient stores it by default), the answer twice
        more for a widget nothing shows (ADR 182). A value JSON does not round-trip is synced
        as before (the lock only holds back a value equal to it)."""
        with self._lock_property(**json.loads(json.dumps(values, default=str))):
            for name, value in values.items():
                setattr(self, name, value)

    def _mark_sent(self, rows: list[dict[str, Any]], rendered: dict[str, str],
                   lens: dict[str, int]) -> None:
        self._sent_rows = [
            (b["cid"], {k: v for k, v in b.items() if k != "text"},
             b["text"] if isinstance(b.get("text"), str) else None)
            for b in rows]
        self._sent_html, self._sent_lens = dict(rendered), dict(lens)
        self._sent_stable = {c: p.stable_html_len for c, p in self._rendered.items()
                             if rendered.get(c) is not None}

    def shown(self) -> dict[str, Any]:
        """What the views were sent so far: ``blocks``, ``html``, ``html_len`` (mid-stream the
        rows travel as deltas, so the traits hold them only at the end)."""
        if self.finished:
            return {"blocks": self.blocks, "html": self.html, "html_len": self.html_len}
        rows = [dict(rest) if text is None else {**rest, "text": text}
                for _, rest, text in self._sent_rows]
        return {"blocks": rows, "html": dict(self._sent_html), "html_len": dict(self._sent_lens)}

    def _full(self) -> dict[str, Any]:
        return {"type": "full", "seq": self._seq, **self.shown()}

    def _rows(self, final: bool) -> list[dict[str, Any]]:
        """The folded rows as the views show them, as the record does: every string without
        terminal escapes, control and bidi characters (``visible``). Live, the text still
        streaming (prose, reasoning, a cell's output) holds back an escape cut at its end
        (``visible_so_far``). A string unchanged since the last flush is not scanned again,
        and of a clean streaming text only what it grew by."""
        old: dict[int, tuple[str, str]] = self._clean
        new: dict[int, tuple[str, str]] = {}
        streams: dict[str, str] = {}

        def clean(raw: str) -> str:
            hit = old.get(id(raw))
            out = hit[1] if hit is not None and hit[0] is raw else visible(raw)
            new[id(raw)] = (raw, out)
            return out

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                return clean(value)
            if isinstance(value, Mapping):
                return {clean(k) if isinstance(k, str) else k: walk(v)
                        for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [walk(v) for v in value]
            return value

        def grown(cid: str, raw: str) -> str:
            before = self._streams.get(cid)  # the text at the last flush, when it was clean
            if before is not None and raw.startswith(before):
                tail = raw[len(before):]
                shown = visible_so_far(tail)  # no escape can start in the clean part before
                out = raw if shown is tail else before + shown
            else:
                out = visible_so_far(raw)
            if out is raw:
                streams[cid] = raw
            return out

        rows = []
        for b in self.fold.blocks:
            b = self._cut(b, final)
            field = None if final else _STREAMING.get(b["kind"])
            rows.append({k: grown(b["cid"], v) if k == field and isinstance(v, str)
                         else walk(v) for k, v in b.items()})
        self._clean, self._streams = new, streams
        return rows

    def _cut(self, b: dict[str, Any], final: bool) -> dict[str, Any]:
        """A prose or reasoning row past ``SHOWN_PROSE_CHARS``: its start and a note (ADR 151).
        Live the note does not count (the row's text stays the same while the rest arrives)."""
        text = b.get("text")
        if b["kind"] not in ("prose", "reasoning") or not isinstance(text, str) \
                or len(text) <= SHOWN_PROSE_CHARS:
            return b
        cut = self._cuts.get(b["cid"])
        if cut is None or not cut.fits(text):
            cut = self._cuts[b["cid"]] = ProseCut(text)
        return {**b, "text": cut.text(text, final=final, turn_id=self.turn_id or self.fold.turn_id,
                                      cid=b["cid"], kind=b["kind"], session_id=self._session_name)}

    def _render_prose(self, rows: list[dict[str, Any]],
                      final: bool) -> tuple[dict[str, str], dict[str, int]]:
        """HTML of each prose row and how much of its text it covers (in UTF-16 units, as the
        browser slices). Live, a row's HTML is its finished blocks, each rendered once when a
        blank line outside a code fence closes it (a row followed by another row is finished
        whole), then its open block, re-rendered only when it has doubled and at most every
        ``render_interval_s`` / 8 times its last render: every character is rendered and sent
        a bounded number of times, so a long answer's traffic is linear in its length. The
        browser shows the text past the covered part as plain text. Final: each row rendered
        whole, exactly what the saved record shows."""
        out: dict[str, str] = {}
        lens: dict[str, int] = {}
        now = time.monotonic()
        for k, b in enumerate(rows):
            if b["kind"] != "prose":
                continue
            cid, text = b["cid"], b["text"]
            if final:
                out[cid], lens[cid] = render_markdown(text), utf16_len(text)
                continue
            live = self._rendered.get(cid)
            if live is None or not live.fits(text):
                live = self._rendered[cid] = LiveProse()
            live.advance(text, k < len(rows) - 1, now, self.render_interval_s)
            if live.html is not None:
                out[cid], lens[cid] = live.html, live.covered
        return out, lens

    def _request_flush(self) -> None:
        if self._pending is not None:
            return
        due = self._last_flush + self.interval_s
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if time.monotonic() >= due:
                self.flush()
            return
        self._pending = loop.call_later(max(0.0, due - time.monotonic()), self.flush)

    # ------------------------------------------------------------------ browser side
    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, Mapping):
            return
        kind = content.get("type")
        if kind == "resync" and not self.finished:
            rows = self._rows(False)
            self._mark_sent(rows, *self._render_prose(rows, False))  # the views get it all now
            self.send(self._full())
        elif kind == "stop":
            self.request_stop()
        elif kind in ("approve", "deny"):
            self.decide(str(content.get("call_id") or ""), kind == "approve")

    def decide(self, call_id: str, approved: bool) -> bool:
        """What Approve / Deny do: pass the decision on for a call of this turn that waits
        for one. False when there is none (finished turn, unknown or answered call)."""
        if self.finished or self._on_decide is None:
            return False
        if not any(r.get("call_id") == call_id and r["status"] == "waiting"
                   for r in self.fold.tool_rows()):
            return False
        self.decisions.append((call_id, approved))
        return bool(self._on_decide(call_id, approved))

    def request_stop(self) -> None:
        """What the Stop button does; also callable from Python."""
        if self.finished:
            return
        self.stop_requests += 1
        # no activity yet, behind the session's running turn: it has not started
        self._stopped_waiting |= self.queued_behind and self.status == "starting"
        self.status = "stopping"
        if self._on_stop is not None:
            self._on_stop()

    # ------------------------------------------------------------------ fallbacks
    def to_markdown(self) -> str:
        """The turn as markdown (``text/markdown``): escapes and control characters dropped,
        raw HTML escaped so that no renderer builds it."""
        return inert_markdown(self.to_text())

    def to_text(self) -> str:
        """The same markdown as plain text (``text/plain``): raw HTML kept as written."""
        return without_revealed_keys(visible(self._markdown_source()))

    def _markdown_source(self) -> str:
        head = f"**lash turn** `{self.turn_id}`" if self.turn_id else "**lash turn**"
        if self.prompt:
            head += "\n\n" + "\n".join("> " + line for line in self.prompt.splitlines())
        if self.attachments:
            from .attachments import cards_markdown

            head += "\n\n" + cards_markdown(self.attachments)
        body = self.fold.to_markdown(self.turn_id, self._session_name)
        return f"{head}\n\n{body}" if body else head

    def state(self) -> dict[str, Any]:
        """What the views show (what ``turn_html`` renders): the trait values, with the rows
        and HTML of :meth:`shown`."""
        out = {k: getattr(self, k) for k in ("session_id", "turn_id", "prompt", "attachments",
                                             "usage", "cost",
                                             "retries", "outcome", "status", "iterations",
                                             "elapsed_ms", "error")}
        shown = self.shown()
        out["blocks"], out["html"] = shown["blocks"], shown["html"]
        return out

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.finished:  # a finished turn is a record: no widget model needed to show it
            plain = self.to_text()
            return bundle(turn_html(self.state()), plain)
        bundle_ = super()._repr_mimebundle_(**kwargs)
        data = bundle_[0] if isinstance(bundle_, tuple) else bundle_
        if isinstance(data, dict) and cells.in_kernel():  # the note after it has the prompt
            data["text/plain"] = LIVE_FALLBACK  # (a renderer without widgets shows both)
        elif isinstance(data, dict):
            data["text/markdown"] = inert_markdown(plain := self.to_text())
            data["text/plain"] = plain
        return bundle_


__all__ = ["TurnWidget"]
