"""``session.tools()``: the tool catalog and its membership (lash ``ToolAdmin``).

Changes apply at once to the session (the next model call sees them), publish a
``committed`` observation, and persist with the next commit of the session (every commit
carries the membership); ``await admin.persist()`` writes them now.
"""

from __future__ import annotations

from typing import Any, Mapping

from .._core.tools import ToolManifest, ToolProvider, ToolRegistry, as_tool_provider
from .parts import SessionParts
from .queue import Drainer, enqueue_command


class ToolAdmin:
    def __init__(self, parts: SessionParts, drainer: Drainer) -> None:
        self._parts = parts
        self._drainer = drainer

    @property
    def _registry(self) -> ToolRegistry:
        return self._parts.state.registry

    def state(self) -> dict[str, Any]:
        """``{generation, tools: {id: {manifest, member?: False, orphaned?: True}}}``."""
        state: dict[str, Any] = self._registry.state_json()
        return state

    def active_manifests(self) -> list[ToolManifest]:
        members: list[ToolManifest] = self._registry.members()
        return members

    def catalog(self) -> list[dict[str, Any]]:
        """The model-facing catalog: ``{id, name, description, bindings, activation,
        contract}`` per member, ordered by id (cached per catalog key)."""
        return self._parts.catalog.entries()

    def all_tools(self) -> list[dict[str, Any]]:
        """Every known tool with its membership, for UIs (ordered by id)."""
        out = []
        for tid, row in self.state()["tools"].items():
            m = row["manifest"]
            out.append({"id": tid, "name": m["name"], "description": m["description"],
                        "input_schema": m["input_schema"], "member": row.get("member", True),
                        "orphaned": row.get("orphaned", False)})
        return out

    def set_membership(self, tool: str, present: bool, *, expected_generation: int | None = None) -> int:
        return self.set_membership_many({tool: present}, expected_generation=expected_generation)

    def set_membership_many(self, changes: Mapping[str, bool], *,
                            expected_generation: int | None = None) -> int:
        generation = self._registry.set_membership(changes, expected_generation)
        self._changed()
        return int(generation)

    def add_provider(self, provider: ToolProvider | Any) -> str:
        """Add a tool provider (or a function); returns its source id for ``remove_source``."""
        source = self._registry.add_source(as_tool_provider(provider))
        self._changed()
        return str(source)

    def remove_source(self, source_id: str) -> int:
        generation = self._registry.remove_source(source_id)
        self._changed()
        return int(generation)

    async def refresh_catalog(self, reason: str = "user", idempotency_key: str = "refresh") -> Any:
        """Queue a ``refresh_tool_catalog`` session command (drained before turn work)."""
        return await enqueue_command(self._parts, self._drainer,
                                     {"kind": "refresh_tool_catalog", "reason": reason},
                                     idempotency_key)

    async def persist(self) -> None:
        await self._parts.writer.persist()

    def _changed(self) -> None:
        self._parts.catalog.invalidate()
        self._parts.feed.committed(kick=False)
