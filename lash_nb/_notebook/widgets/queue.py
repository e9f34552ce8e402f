"""Queue view: pending queued-work batches, a cancel button per batch and a drain button.

Buttons send ``{"type": "cancel", "batch_id"}``, ``{"type": "drain"}`` or
``{"type": "refresh"}``. Callbacks may be sync or async; async ones run on the kernel loop
(see ``actions.py``). After every action the rows are reloaded from ``load()``.
``follow(events)`` keeps the rows live: it reloads on every observation event whose payload
kind is ``queue_changed`` or ``committed`` until the iterator ends.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anywidget
import traitlets

from .actions import call_action, kernel_loop, run_action
from .assets import css, esm

Loader = Callable[[], Any]  # -> Sequence[batch] or an awaitable of it


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
    }


class QueueWidget(anywidget.AnyWidget):
    _esm = esm("queue.js")
    _css = css("turn.css")

    session_id = traitlets.Unicode("").tag(sync=True)
    batches = traitlets.List(traitlets.Dict()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        *,
        load: Loader,
        cancel: Callable[[str], Any] | None = None,
        drain: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._load, self._cancel, self._drain = load, cancel, drain
        self._loop = kernel_loop()
        self.actions: list[tuple[str, str]] = []
        self.on_msg(self._on_custom)

    async def refresh_async(self) -> None:
        rows = self._load()
        if inspect.isawaitable(rows):
            rows = await rows
        self.batches = [batch_row(b) for b in rows]

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

    def cancel(self, batch_id: str) -> None:
        assert self._cancel is not None
        self.actions.append(("cancel", batch_id))
        self._run(lambda: self._cancel(batch_id) if self._cancel else None, f"cancelling {batch_id}…")

    def drain(self) -> None:
        assert self._drain is not None
        self.actions.append(("drain", ""))
        self._run(self._drain, "draining…")

    def _run(self, call: Callable[[], Any], busy: str) -> None:
        self.status = busy
        call_action(self._loop, call, self._done)

    def _done(self, exc: BaseException | None) -> None:
        self.status = f"{type(exc).__name__}: {exc}" if exc else ""
        self.refresh()

    def _shown(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.status = f"{type(exc).__name__}: {exc}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            lines = [f"{len(self.batches)} pending batch(es)"] + [
                f"- `{b['batch_id']}` {b['delivery_policy']}/{b['slot_policy']}: {b['text'][:60]}"
                for b in self.batches
            ]
            data["text/markdown"] = "\n".join(lines)
            data["text/plain"] = "\n".join(lines)
        return bundle


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
