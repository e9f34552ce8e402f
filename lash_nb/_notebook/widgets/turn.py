"""The live turn view: streamed prose, reasoning, tool rows, usage, outcome and a Stop button.

Theory of operation
- ``push(activity)`` folds one ``TurnActivity`` (object or JSON dict) into a Python-side
  :class:`TurnFold`. Nothing is sent to the browser yet.
- The first push after a flush schedules one flush on the running event loop with
  ``loop.call_later``, no sooner than ``interval_s`` after the previous flush. A flush copies
  the changed parts of the fold into synced traits inside ``hold_sync()``: one comm message per
  flush, so a 10,000-delta stream costs a few hundred messages, not 10,000.
  Without a running loop a push flushes only when ``interval_s`` has passed.
- ``finish(result)`` cancels any pending flush, sets the outcome and flushes now. The final state
  lives in synced traits, so it is saved in the notebook's widget state.
- The Stop button sends the custom message ``{"type": "stop"}``. The handler sets
  ``status = "stopping…"`` and calls the stop callback (the session's thread-safe
  ``cancel_running_turns``). On ipykernel >= 7.4 the handler runs while the cell awaits the turn.
- States of ``status``: ``idle`` -> ``streaming`` (first push) -> ``stopping…`` (Stop) ->
  ``done`` (finish). Stop after ``done`` is ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import traitlets

from ..._core.events import TurnActivity
from .assets import css, esm
from .fold import TurnFold, outcome_label

StopCallback = Callable[[], Any]


def _as_json(activity: Mapping[str, Any] | TurnActivity) -> Mapping[str, Any]:
    if isinstance(activity, Mapping):
        return activity
    return activity.to_json()


class TurnWidget(anywidget.AnyWidget):
    _esm = esm("markdown.js", "turn.js")
    _css = css("turn.css")

    session_id = traitlets.Unicode("").tag(sync=True)
    turn_id = traitlets.Unicode("").tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)
    blocks = traitlets.List(traitlets.Dict()).tag(sync=True)
    usage = traitlets.Dict().tag(sync=True)
    retries = traitlets.List(traitlets.Dict()).tag(sync=True)
    outcome = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    iterations = traitlets.Int(0).tag(sync=True)
    elapsed_ms = traitlets.Float(0.0).tag(sync=True)

    def __init__(
        self,
        *,
        on_stop: StopCallback | None = None,
        interval_s: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fold = TurnFold()
        self.interval_s = interval_s
        self.flush_count = 0
        self.stop_requests = 0
        self._on_stop = on_stop
        self._sent_version = -1
        self._last_flush = float("-inf")
        self._started = time.monotonic()
        self._pending: asyncio.TimerHandle | None = None
        self._display: Any = None
        self.on_msg(self._on_custom)

    # ------------------------------------------------------------------ producer side
    def show(self) -> TurnWidget:
        """Display with a display id, so ``finish`` can refresh the text/markdown fallback."""
        from IPython.display import display

        self._display = display(self, display_id=True)
        return self

    def set_stop_callback(self, on_stop: StopCallback | None) -> None:
        self._on_stop = on_stop

    def push(self, activity: Any) -> None:
        self.fold.apply(_as_json(activity))
        if self.status == "idle":
            self.status = "streaming"
        self._request_flush()

    def push_all(self, activities: Any) -> None:
        for a in activities:
            self.fold.apply(_as_json(a))
        self._request_flush()

    def finish(self, result: Any = None, *, outcome: str | None = None,
               elapsed_ms: float | None = None) -> None:
        """Final flush. ``result`` is a ``TurnResult`` (or its JSON); ``outcome`` overrides;
        ``elapsed_ms`` is the recorded duration (a replayed turn), else the widget's clock."""
        self._recorded_elapsed_ms = elapsed_ms
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if outcome is None and result is not None:
            raw = getattr(result, "outcome", None)
            if raw is None and isinstance(result, Mapping):
                raw = result.get("outcome")
            outcome = outcome_label(raw) if isinstance(raw, (Mapping, str)) else str(raw)
        if outcome:
            self.fold.outcome = outcome
            self.fold.version += 1
        if self.fold.outcome.startswith("stopped"):
            for row in self.fold.tool_rows():
                if row["status"] == "running":
                    row["status"] = "interrupted"
        self.flush(final=True)
        if self._display is not None:
            self._display.update(self)

    def flush(self, *, final: bool = False) -> bool:
        """Send the changed state now. Returns False when nothing changed."""
        self._pending = None
        f = self.fold
        if f.version == self._sent_version and not final:
            return False
        with self.hold_sync():
            self.blocks = [dict(b) for b in f.blocks]
            if f.usage != self.usage:
                self.usage = dict(f.usage)
            if len(f.retries) != len(self.retries):
                self.retries = list(f.retries)
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
                self.status = "done"
        self._sent_version = f.version
        self._last_flush = time.monotonic()
        self.flush_count += 1
        return True

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
        if not isinstance(content, Mapping) or content.get("type") != "stop":
            return
        self.request_stop()

    def request_stop(self) -> None:
        """What the Stop button does; also callable from Python."""
        if self.status == "done":
            return
        self.stop_requests += 1
        self.status = "stopping…"
        if self._on_stop is not None:
            self._on_stop()

    # ------------------------------------------------------------------ fallbacks
    def to_markdown(self) -> str:
        head = f"**lash turn** `{self.turn_id}`" if self.turn_id else "**lash turn**"
        body = self.fold.to_markdown()
        return f"{head}\n\n{body}" if body else head

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            md = self.to_markdown()
            data["text/markdown"] = md
            data["text/plain"] = md
        return bundle


__all__ = ["TurnWidget"]
