"""``session.tools()``: the tool catalog and its membership (lash ``ToolAdmin``).

Changes apply at once to the session (the next model call sees them), publish a
``committed`` observation, and persist with the next commit of the session (every commit
carries the membership); ``await admin.persist()`` writes them now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .._core.tools import ToolManifest, ToolProvider, ToolRegistry
from .._errors import LashError, ToolNameConflict
from .._tools.function import FunctionTool, as_tool_provider
from .._tools.mcp import MCPServer
from .parts import SessionParts
from .queue import Drainer, enqueue_command

log = logging.getLogger("lash_nb.tools")
_stopping: set[asyncio.Task[None]] = set()


def stop_later(server: MCPServer) -> None:
    """Stop a server from sync code (``remove_source``) on the running loop, if any."""
    try:
        task = asyncio.get_running_loop().create_task(server.aclose())
    except RuntimeError:
        return
    _stopping.add(task)
    task.add_done_callback(_stopping.discard)


def source_group(tool_id: str, provider: Any, source_id: str | None = None) -> str:
    """Where a tool comes from, as the tools widget groups it (an orphaned MCP tool keeps its
    server's group: its id names the server)."""
    if source_id is not None and source_id.startswith("plugin:"):
        return f"plugin {source_id.split(':')[1]}"
    if isinstance(provider, MCPServer):
        return f"MCP server {provider.name}"
    if provider is None and tool_id.startswith("mcp:"):
        return f"MCP server {tool_id.split(':')[1]}"
    if provider is None or isinstance(provider, FunctionTool):
        return "Python functions"
    return type(provider).__name__


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
        """Every known tool with its membership, source id (``None`` when orphaned), ``group``
        (where it comes from: ``"Python functions"``, ``"MCP server <name>"``) and effective
        approval policy, for UIs (ordered by id)."""
        out = []
        registry, approvals = self._registry, self._parts.approvals
        entries = registry.entries
        for tid, row in self.state()["tools"].items():
            m = row["manifest"]
            source = entries[tid].source_id if tid in entries else None
            provider = registry.sources.get(source) if source else None
            out.append({"id": tid, "name": m["name"], "description": m["description"],
                        "input_schema": m["input_schema"], "member": row.get("member", True),
                        "orphaned": row.get("orphaned", False), "source": source,
                        "group": source_group(tid, provider, source),
                        "approval": approvals.policy_for(m["name"], source, provider).value})
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

    async def add_server(self, server: MCPServer) -> str:
        """Start an MCP server (``lash_nb.MCPServer``) and add its tools as one source; the
        catalog follows the server's tool list changes; the server stops with the session
        (``close()``). Returns the source id for ``remove_source`` (which also stops it)."""
        await server.start()
        try:
            source = self.add_provider(server)
        except ToolNameConflict as err:
            await server.aclose()
            if err.tool_name is None:
                raise
            name, fix = server.name, f"{server.name}_"
            rest = "--url ..." if server.transport == "http" else "-- ..."
            raise ToolNameConflict(
                f"MCP server {name!r} has a tool named {err.tool_name!r}, which the session "
                f"already has (source {err.taken_by!r}); add the server with a prefix: "
                f"%lash mcp add {name} --prefix {fix} {rest}, or "
                f"MCPServer.{server.transport}(..., prefix={fix!r})") from None
        except BaseException:
            await server.aclose()
            raise
        registry = self._registry
        changed = self._changed

        def refresh() -> None:
            current: Any = registry.sources.get(source)
            if current is server:
                try:
                    registry.add_source(server, source)
                except LashError as err:  # e.g. a new tool's name is taken: keep the old list
                    log.warning("MCP server %s: its new tool list was not taken: %s", server.name, err)
                    return
                changed()

        server.on_tools_changed.append(refresh)
        return source

    def servers(self) -> list[tuple[str, MCPServer]]:
        """``(source id, server)`` of every MCP server among the sources."""
        return [(sid, p) for sid, p in self._registry.sources.items() if isinstance(p, MCPServer)]

    def remove_source(self, source_id: str) -> int:
        provider = self._registry.sources.get(source_id)
        generation = self._registry.remove_source(source_id)
        if isinstance(provider, MCPServer) and source_id.startswith("live:"):
            stop_later(provider)  # a session's own server stops with its source
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
