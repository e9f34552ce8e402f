"""Tools: manifests, the ``@tool`` decorator, tool providers and the tool registry.

Theory of operation (lash ``ToolRegistry`` / ``ToolState``, observe spec §3)
- A registry holds named sources (``"base"`` for builder tools, ``"live:<n>"`` for providers
  added later) and a state ``{generation, entries}`` keyed by tool id. Catalog order is
  tool-id order. Membership is the execution gate: a non-member does not exist to the model.
- ``generation`` changes on every effective change: membership toggles, adding a source that
  brings new tools, removing a source (always). ``apply_state`` requires the caller's
  generation to equal the current one (``GenerationMismatch`` otherwise).
- Tool names are unique across live sources: a source bringing a name another live source
  already has is refused whole (``ToolNameConflict``) and nothing changes. Re-adding a source
  under its own id refreshes it: new tools join, tools it no longer lists leave.
- The typed-function tools (``@tool``) and MCP servers live in ``lash_nb._tools`` (they need
  pydantic / mcp); this module is stdlib only.
- Persisted membership is restored with ``restore_membership``: the snapshot generation is
  adopted; ids no live source advertises become orphans and rebind when a source re-adds them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .._errors import ToolNameConflict


@dataclass(frozen=True, slots=True)
class ToolManifest:
    id: str
    name: str
    description: str
    input_schema: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "input_schema": dict(self.input_schema),
        }


@dataclass(frozen=True)
class ToolContext:
    session_id: str
    turn_id: str
    call_id: str


@runtime_checkable
class ToolProvider(Protocol):
    """A set of tools: manifests plus execution by name."""

    def tool_manifests(self) -> Sequence[ToolManifest]: ...

    async def execute(self, name: str, args: Mapping[str, Any], context: ToolContext) -> Any: ...


# --------------------------------------------------------------------------- registry


class GenerationMismatch(Exception):
    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(
            f"tool state generation {actual} is stale (current is {expected}); "
            "read session.tools().state() again and re-apply your change"
        )
        self.expected = expected
        self.actual = actual


@dataclass
class _Entry:
    manifest: ToolManifest
    source_id: str | None  # None = orphaned (persisted, no live source)
    member: bool = True


@dataclass
class ToolRegistry:
    sources: dict[str, ToolProvider] = field(default_factory=dict)
    entries: dict[str, _Entry] = field(default_factory=dict)
    generation: int = 0
    _live_counter: int = 0
    # ``shared_state_json``'s last answer and what it was made of (field, not slot: dataclass)
    _shared: tuple[Any, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def add_source(self, provider: ToolProvider, source_id: str | None = None) -> str:
        manifests = list(provider.tool_manifests())
        self._check_names(manifests, source_id)
        if source_id is None:
            self._live_counter += 1
            source_id = f"live:{self._live_counter}"
        self.sources[source_id] = provider
        changed = False
        listed = {m.id for m in manifests}
        for tid in [t for t, e in self.entries.items() if e.source_id == source_id and t not in listed]:
            del self.entries[tid]  # a refreshed source no longer lists it
            changed = True
        for m in manifests:
            existing = self.entries.get(m.id)
            if existing is None:
                self.entries[m.id] = _Entry(m, source_id, True)
                changed = True
            elif existing.source_id is None or existing.source_id == source_id:
                if existing.source_id != source_id or existing.manifest != m:
                    changed = True
                existing.source_id, existing.manifest = source_id, m
        if changed:
            self.generation += 1
        return source_id

    def _check_names(self, manifests: Sequence[ToolManifest], source_id: str | None) -> None:
        seen: dict[str, str] = {}
        for m in manifests:
            if m.name in seen:
                raise ToolNameConflict(f"the tool source lists two tools named {m.name!r}; "
                                       "give one another name (@tool(name=...))")
            seen[m.name] = m.id
        for e in self.entries.values():
            if e.source_id is None or e.source_id == source_id:
                continue
            if e.manifest.name in seen or e.manifest.id in seen.values():
                err = ToolNameConflict(
                    f"a tool named {e.manifest.name!r} is already registered (source "
                    f"{e.source_id!r}); rename the new one with @tool(name=...) or remove the "
                    f"old one with session.tools().remove_source({e.source_id!r})")
                err.tool_name, err.taken_by = e.manifest.name, e.source_id  # for a source's own advice
                raise err

    def remove_source(self, source_id: str) -> int:
        if source_id not in self.sources:
            raise KeyError(f"unknown tool source {source_id!r}")
        del self.sources[source_id]
        for tid in [t for t, e in self.entries.items() if e.source_id == source_id]:
            del self.entries[tid]
        self.generation += 1
        return self.generation

    def set_membership(self, changes: Mapping[str, bool], expected_generation: int | None = None) -> int:
        if expected_generation is not None and expected_generation != self.generation:
            raise GenerationMismatch(self.generation, expected_generation)
        resolved: dict[str, bool] = {}
        for key, present in changes.items():
            tid = self.resolve_id(key)
            if tid is None:
                known = ", ".join(sorted(e.manifest.name for e in self.entries.values()))
                raise KeyError(f"unknown tool {key!r}; known tools: {known or '(none)'}")
            resolved[tid] = bool(present)
        if any(self.entries[t].member != p for t, p in resolved.items()):
            for t, p in resolved.items():
                self.entries[t].member = p
            self.generation += 1
        return self.generation

    def resolve_id(self, key: str) -> str | None:
        if key in self.entries:
            return key
        for tid, e in self.entries.items():
            if e.manifest.name == key:
                return tid
        return None

    def members(self) -> list[ToolManifest]:
        return [
            e.manifest for _, e in sorted(self.entries.items()) if e.member and e.source_id
        ]

    def provider_for(self, name: str) -> tuple[ToolProvider, ToolManifest] | None:
        for e in self.entries.values():
            if e.manifest.name == name and e.member and e.source_id:
                return self.sources[e.source_id], e.manifest
        return None

    def shared_state_json(self) -> dict[str, Any]:
        """``state_json()``, the same object as last time while nothing it shows changed (the
        generation, and each entry's manifest, source and membership): a commit carries the
        state every time, and a store tells an unchanged one by identity and does not write
        it again. Read it, never change it (``state_json()`` gives a copy to change)."""
        key = (self.generation, tuple((tid, e.manifest, e.source_id is None, e.member)
                                      for tid, e in self.entries.items()))
        if self._shared is not None and self._shared[0] == key:
            return self._shared[1]
        state = self.state_json()
        self._shared = (key, state)
        return state

    def state_json(self) -> dict[str, Any]:
        tools: dict[str, Any] = {}
        for tid, e in sorted(self.entries.items()):
            row: dict[str, Any] = {"manifest": e.manifest.to_json()}
            if e.source_id is None:
                row["orphaned"] = True
            if not e.member:
                row["member"] = False
            tools[tid] = row
        return {"generation": self.generation, "tools": tools}

    def restore_membership(self, state: Mapping[str, Any]) -> list[str]:
        """Adopt a persisted state's generation and membership; return orphaned ids."""
        orphaned: list[str] = []
        snapshot_tools = dict(state.get("tools", {}))
        for tid, row in snapshot_tools.items():
            member = row.get("member", True)
            if tid in self.entries:
                self.entries[tid].member = member
            else:
                m = row["manifest"]
                manifest = ToolManifest(m["id"], m["name"], m.get("description", ""),
                                        m.get("input_schema", {}))
                self.entries[tid] = _Entry(manifest, None, member)
                orphaned.append(tid)
        self.generation = int(state.get("generation", 0))
        live_only = set(self.entries) - set(snapshot_tools)
        if orphaned or live_only:
            self.generation += 1  # the reconciled live surface differs from the snapshot
        return orphaned


@dataclass(frozen=True)
class CatalogKey:
    include_base_tools: bool
    context_overlay_revision: int
    tool_generation: int
    plugin_revision: int


def catalog_entries(manifests: Sequence[ToolManifest]) -> list[dict[str, Any]]:
    """lash's projected catalog JSON: ``{id, name, description, bindings, activation,
    contract}`` per member, ordered by id."""
    return [
        {
            "id": m.id,
            "name": m.name,
            "description": m.description,
            "bindings": {},
            "activation": "always",
            "contract": {"name": m.name, "input_schema": dict(m.input_schema)},
        }
        for m in sorted(manifests, key=lambda m: m.id)
    ]


async def run_tool(
    provider: ToolProvider, name: str, args: Mapping[str, Any], context: ToolContext
) -> Any:
    # the protocol says async, but a provider written with a plain ``def`` returns the value
    result: Any = provider.execute(name, args, context)
    if isinstance(result, Awaitable):
        return await result
    return result


__all__ = [
    "CatalogKey",
    "GenerationMismatch",
    "ToolContext",
    "ToolManifest",
    "ToolProvider",
    "ToolRegistry",
    "catalog_entries",
    "run_tool",
]
