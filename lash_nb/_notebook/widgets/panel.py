"""What the tool catalog and the queue share: a snapshot output that outlives the kernel.

A panel is a live control, so unlike a turn it cannot turn into static HTML when it is done.
The first time it is displayed, it first displays a snapshot (``snapshot.py``: the same table
without buttons, ``text/html`` + ``text/plain``) under a display id, then itself. Every
``update_snapshot()`` refreshes that output, so the saved notebook holds the panel as it last
was. The widget's JS hides the snapshot while the widget lives; a saved notebook opened with no
kernel shows the snapshot (and the snapshot's style hides JupyterLab's "model not found" line of
the widget output next to it). A widget restored from saved widget state with no kernel says
"kernel not connected" when a button gets no answer (see ``queue.js`` / ``tools.js``); a live
panel whose kernel is restarted or shut down says so and disables its controls (ADR 137).
"""

from __future__ import annotations

import uuid
from typing import Any

import traitlets

from ..._core.visible import visible


class _Snapshot:
    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, visible(text)  # the HTML escapes its outside text itself

    def _repr_mimebundle_(self, **_kw: Any) -> dict[str, str]:
        return {"text/html": self.html, "text/plain": self.text}


class PanelSnapshot(traitlets.HasTraits):
    """Mixin for an ``AnyWidget`` panel; subclasses implement ``snapshot_html/_text``."""

    panel_id = traitlets.Unicode("").tag(sync=True)

    def _init_panel(self) -> None:
        self.panel_id = uuid.uuid4().hex[:12]
        self._snapshot_display: Any = None

    def snapshot_html(self) -> str:
        raise NotImplementedError

    def snapshot_text(self) -> str:
        raise NotImplementedError

    def snapshot(self) -> _Snapshot:
        return _Snapshot(self.snapshot_html(), self.snapshot_text())

    def update_snapshot(self) -> None:
        if self._snapshot_display is not None:
            self._snapshot_display.update(self.snapshot())

    def _panel_bundle(self, bundle: Any) -> Any:
        if self._snapshot_display is None:
            from IPython.display import display

            self._snapshot_display = display(self.snapshot(), display_id=True)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["text/plain"] = visible(self.snapshot_text())
        return bundle


__all__ = ["PanelSnapshot"]
