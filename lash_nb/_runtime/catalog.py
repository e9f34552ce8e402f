"""``ToolCatalog``: the model-facing tool specs and catalog entries of a session, cached per
catalog key (tool registry generation, context overlay revision, plugin revision)."""

from __future__ import annotations

from typing import Any

from .._core.llm import LlmToolSpec
from .._core.tools import CatalogKey, catalog_entries
from .plugins import PluginSet
from .state import SessionState


class ToolCatalog:
    def __init__(self, state: SessionState) -> None:
        self.state = state
        self.context_overlay_revision = 0
        self._cached: tuple[CatalogKey, tuple[LlmToolSpec, ...], list[dict[str, Any]]] | None = None
        self.plugins: PluginSet | None = None  # their revision enters the key (plugins.py)

    def invalidate(self) -> None:
        self._cached = None

    def _current(self) -> tuple[CatalogKey, tuple[LlmToolSpec, ...], list[dict[str, Any]]]:
        reg = self.state.registry
        plugin_revision = 0
        if self.plugins is not None:
            self.plugins.sync_tools(reg)  # a moved plugin revision re-reads its tools
            plugin_revision = self.plugins.revision
        key = CatalogKey(True, self.context_overlay_revision, reg.generation, plugin_revision)
        if self._cached is None or self._cached[0] != key:
            members = reg.members()
            specs = tuple(LlmToolSpec(m.name, m.description, m.input_schema) for m in members)
            self._cached = (key, specs, catalog_entries(members))
        return self._cached

    def specs(self) -> tuple[LlmToolSpec, ...]:
        return self._current()[1]

    def entries(self) -> list[dict[str, Any]]:
        return self._current()[2]
