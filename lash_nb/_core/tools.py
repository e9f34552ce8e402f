"""Tools: manifests, the ``@tool`` decorator, tool providers and the tool registry.

Theory of operation (lash ``ToolRegistry`` / ``ToolState``, observe spec §3)
- A registry holds named sources (``"base"`` for builder tools, ``"live:<n>"`` for providers
  added later) and a state ``{generation, entries}`` keyed by tool id. Catalog order is
  tool-id order. Membership is the execution gate: a non-member does not exist to the model.
- ``generation`` changes on every effective change: membership toggles, adding a source that
  brings new tools, removing a source (always). ``apply_state`` requires the caller's
  generation to equal the current one (``GenerationMismatch`` otherwise).
- Persisted membership is restored with ``restore_membership``: the snapshot generation is
  adopted; ids no live source advertises become orphans and rebind when a source re-adds them.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


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


# --------------------------------------------------------------------------- @tool

_PARAM_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Summary plus per-parameter descriptions from a Google / NumPy-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section = "summary"
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        low = stripped.lower().rstrip(":")
        if low in ("args", "arguments", "parameters", "params"):
            section, current = "params", None
            continue
        if low in ("returns", "return", "raises", "yields", "examples", "example", "notes"):
            section, current = "other", None
            continue
        if set(stripped) <= {"-"} and stripped:
            continue
        if section == "summary":
            if not stripped and summary:
                section = "description"
            elif stripped:
                summary.append(stripped)
        elif section == "params":
            m = _PARAM_LINE.match(line)
            if m and not line.startswith("        "):
                current = m.group(1).lstrip("*")
                params[current] = m.group(2).strip()
            elif current and stripped:
                params[current] += " " + stripped
    return " ".join(summary), params


def json_schema_for(annotation: Any) -> dict[str, Any]:
    """JSON schema for a Python type hint (the subset tools need)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        schema = json_schema_for(args[0])
        for meta in args[1:]:
            if isinstance(meta, str):
                schema["description"] = meta
        return schema
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            inner = json_schema_for(non_none[0])
            return {"anyOf": [inner, {"type": "null"}]} if inner else {}
        return {"anyOf": [json_schema_for(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset, Sequence) or annotation in (list, tuple, set):
        item = json_schema_for(args[0]) if args else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin in (dict, Mapping) or annotation is dict:
        return {"type": "object"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [m.value for m in annotation]}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in simple:
        return {"type": simple[annotation]}
    return {}


def _input_schema(fn: Callable[..., Any], param_docs: Mapping[str, str]) -> dict[str, Any]:
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name in ("context", "ctx"):
            continue
        schema = json_schema_for(hints.get(name, p.annotation))
        if name in param_docs and "description" not in schema:
            schema["description"] = param_docs[name]
        if p.default is inspect.Parameter.empty:
            required.append(name)
        elif p.default is None or isinstance(p.default, (str, int, float, bool)):
            schema["default"] = p.default
        props[name] = schema
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


class FunctionTool:
    """A typed Python function (sync or async) exposed as a tool. Made by :func:`tool`."""

    def __init__(
        self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
        inline: bool = False,
    ) -> None:
        summary, param_docs = _parse_docstring(fn.__doc__)
        self.fn = fn
        self.inline = inline
        self.name = name or fn.__name__
        self.is_async = inspect.iscoroutinefunction(fn)
        self.wants_context = "context" in inspect.signature(fn).parameters
        self.manifest = ToolManifest(
            id=f"tool:{self.name}",
            name=self.name,
            description=description if description is not None else summary,
            input_schema=_input_schema(fn, param_docs),
        )
        self.__doc__ = fn.__doc__
        self.__name__ = self.name

    def tool_manifests(self) -> Sequence[ToolManifest]:
        return (self.manifest,)

    async def execute(self, name: str, args: Mapping[str, Any], context: ToolContext) -> Any:
        kwargs = dict(args)
        if self.wants_context:
            kwargs["context"] = context
        if self.is_async:
            return await self.fn(**kwargs)
        # a sync tool runs on a worker thread so the loop (widgets, Stop) stays live;
        # inline=True runs it on the loop for trivial functions
        result = self.fn(**kwargs) if self.inline else await asyncio.to_thread(self.fn, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tool {self.name}: {self.manifest.description[:50]!r}>"


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None,
    description: str | None = None, inline: bool = False,
) -> Any:
    """Turn a typed function into a tool; the docstring gives the description and the
    per-argument descriptions. Use as ``@tool`` or ``@tool(name=..., description=...)``.
    Sync functions run on a worker thread (``inline=True``: on the event loop)."""
    if fn is None:
        return lambda f: FunctionTool(f, name=name, description=description, inline=inline)
    return FunctionTool(fn, name=name, description=description, inline=inline)


def as_tool_provider(obj: Any) -> ToolProvider:
    if isinstance(obj, FunctionTool):
        return obj
    if callable(obj) and not hasattr(obj, "tool_manifests"):
        return FunctionTool(obj)
    if isinstance(obj, ToolProvider):  # runtime_checkable: it has tool_manifests and execute
        return obj
    raise TypeError(
        f"{obj!r} is not a tool: pass a function (optionally decorated with @tool) or an "
        "object with tool_manifests() and async execute(name, args, context)"
    )


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

    def add_source(self, provider: ToolProvider, source_id: str | None = None) -> str:
        if source_id is None:
            self._live_counter += 1
            source_id = f"live:{self._live_counter}"
        self.sources[source_id] = provider
        changed = False
        for m in provider.tool_manifests():
            existing = self.entries.get(m.id)
            if existing is None:
                self.entries[m.id] = _Entry(m, source_id, True)
                changed = True
            elif existing.source_id is None or existing.source_id == source_id:
                if existing.source_id != source_id or existing.manifest != m:
                    changed = True
                existing.source_id, existing.manifest = source_id, m
            # another live source already owns the id: first source wins
        if changed:
            self.generation += 1
        return source_id

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
    "FunctionTool",
    "GenerationMismatch",
    "ToolContext",
    "ToolManifest",
    "ToolProvider",
    "ToolRegistry",
    "as_tool_provider",
    "catalog_entries",
    "json_schema_for",
    "run_tool",
    "tool",
]
