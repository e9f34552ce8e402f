"""Tool catalog view: one row per tool manifest (name, description, input schema) with a
membership toggle, grouped by where the tools come from (``group``: Python functions, each MCP
server), a tool's approval policy shown when it is not ``always``. A toggle sends
``{"type": "toggle", "name", "member"}``; the handler calls ``set_membership(name, member)``
(sync or async) and then reloads the rows from ``load()``.
Displayed with a kernel-free snapshot of the table (``panel.py``).

A catalog entry may carry ``orphaned: true`` (a tool listed in the session, e.g. after a
kernel restart, whose function is not defined in this kernel): the row says so ("no
implementation in this kernel") instead of looking like a usable tool.

The synced ``tools`` and ``message`` hold outside text (an MCP server's names, descriptions
and schema, its errors) as the snapshot shows it: no terminal escapes, control or bidi
characters (``visible``, ADR 152); a toggle names the tool by the name it was shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anywidget
import traitlets

from ..._core.visible import visible, visible_json
from .actions import call_action, kernel_loop
from .assets import css, esm
from .panel import PanelSnapshot
from .snapshot import grouped, schema_summary, tools_html

Loader = Callable[[], Sequence[Mapping[str, Any]]]
Toggle = Callable[[str, bool], Any]


def _row(entry: Mapping[str, Any]) -> dict[str, Any]:
    contract = entry.get("contract") or {}
    return {
        "id": str(entry.get("id") or entry.get("name") or ""),
        "name": str(entry.get("name") or ""),
        "description": str(entry.get("description") or ""),
        "input_schema": dict(entry.get("input_schema") or contract.get("input_schema") or {}),
        "member": bool(entry.get("member", True)),
        # False: the stored catalog lists it but no function in this kernel implements it
        "implemented": not entry.get("orphaned", False),
        "group": str(entry.get("group") or ""),
        "approval": str(entry.get("approval") or "always"),
    }


class ToolCatalogWidget(anywidget.AnyWidget, PanelSnapshot):
    _esm = esm("kernel.js", "panel.js", "tools.js")
    _css = css("turn.css")

    tools = traitlets.List(traitlets.Dict()).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)

    @traitlets.validate("tools", "message")
    def _visible(self, proposal: Any) -> Any:
        return visible_json(proposal["value"])  # shown live as the snapshot shows it (ADR 152)

    def __init__(self, *, load: Loader, set_membership: Toggle | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._load = load
        self._set_membership = set_membership
        self._loop = kernel_loop()
        self.toggles: list[tuple[str, bool]] = []
        self._names: dict[str, str] = {}  # the name a row shows -> the tool's own name
        self._init_panel()
        self.refresh()
        self.on_msg(self._on_custom)

    def refresh(self) -> None:
        rows = [_row(e) for e in self._load()]
        self._names = {visible(r["name"]): r["name"] for r in rows}
        self.tools = rows
        self.update_snapshot()

    def _on_custom(self, _w: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, Mapping):
            return
        kind = content.get("type")
        if kind == "refresh":
            self.refresh()
        elif kind == "toggle" and self._set_membership is not None:
            self.toggle(str(content.get("name")), bool(content.get("member")))

    def toggle(self, name: str, member: bool) -> None:
        """What clicking a membership checkbox does."""
        assert self._set_membership is not None
        name = self._names.get(name, name)  # the browser sends the name it was shown
        self.toggles.append((name, member))
        set_membership = self._set_membership
        call_action(self._loop, lambda: set_membership(name, member), self._done)

    def _done(self, exc: BaseException | None) -> None:
        self.message = f"{type(exc).__name__}: {exc}" if exc else ""
        self.refresh()

    def snapshot_html(self) -> str:
        return tools_html(self.panel_id, self.tools)

    def snapshot_text(self) -> str:
        lines, group = [], None
        for t in grouped(self.tools):
            if t["group"] and t["group"] != group:
                group = t["group"]
                lines.append(f"{group}:")
            ask = "" if t["approval"] == "always" else f" [{t['approval']}]"
            lines.append(f"{'[x]' if t['member'] else '[ ]'} {t['name']}"
                         f"({schema_summary(t['input_schema'])}){ask}: {t['description']}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._panel_bundle(super()._repr_mimebundle_(**kwargs))


__all__ = ["ToolCatalogWidget"]
