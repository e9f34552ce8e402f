"""An MCP server's tool list, less the tools lash_nb cannot offer a model.

The SDK validates a ``tools/list`` answer whole: one tool whose ``inputSchema`` is not an
object schema (``{"type": "string"}``, an array, none) made it refuse the list, so the server
did not start and none of its tools could be used. A schema of more than
:data:`MAX_SCHEMA_CHARS` characters of JSON is left out too: it would go with every model
call. :class:`ToolListFilter` sits on the
server's read stream (the SDK's ``ReadStream`` protocol) and takes such entries out of every
``tools/list`` answer before the SDK sees it; :func:`left_out_reason` says, in one line, why
one was left out. The rest of the list, and every other message, pass unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .._core.text import clean_text

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SHOWN = 80  # characters of a refused schema quoted in the warning
MAX_SCHEMA_CHARS = 65536  # JSON of one tool's input schema, sent with every model call


def shown_name(name: str) -> str:
    """A server's tool name as the catalog would spell it (letters, digits, ``_``, ``-``)."""
    return _UNSAFE.sub("_", name)[:64]


def printable(name: str) -> str:
    """A server's tool name to quote in a message: printable ASCII, the rest ``_``."""
    return re.sub(r"[^\x21-\x7e]", "_", name)[:64]


def _quoted(value: Any) -> str:
    text = clean_text(json.dumps(value, ensure_ascii=True, default=str))
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _object_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "object"


def left_out_reason(server: str, entry: Any) -> tuple[str, str] | None:
    """``(tool name, one-line reason)`` when ``entry`` of a ``tools/list`` answer cannot be
    offered (``name`` ``""`` when it is no tool at all); None when it can."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return "", (f"MCP server {server!r}: an entry of its tool list is not a tool "
                    f"({_quoted(entry)}); left out")
    name = shown_name(entry["name"])
    fix = ("its other tools work; the server must declare the tool's arguments as an object "
           "to be usable")
    if "inputSchema" not in entry:
        return name, (f"MCP server {server!r}: tool {name!r} left out: it has no inputSchema; "
                      f"{fix}")
    if not _object_schema(entry["inputSchema"]):
        return name, (f"MCP server {server!r}: tool {name!r} left out: its inputSchema is "
                      f"{_quoted(entry['inputSchema'])}, not an object schema "
                      f'({{"type": "object", ...}}); {fix}')
    size = len(json.dumps(entry["inputSchema"], default=str))
    if size > MAX_SCHEMA_CHARS:
        return name, (f"MCP server {server!r}: tool {name!r} left out: its inputSchema is "
                      f"{size} characters of JSON, more than the {MAX_SCHEMA_CHARS} a model is "
                      "sent for one tool; its other tools work")
    output = entry.get("outputSchema")
    if output is not None and not _object_schema(output):
        return name, (f"MCP server {server!r}: tool {name!r} left out: its outputSchema is "
                      f"{_quoted(output)}, not an object schema; its other tools work")
    from mcp import types
    from pydantic import ValidationError

    try:
        types.Tool.model_validate(entry)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "the entry"
        return name, (f"MCP server {server!r}: tool {name!r} left out: its {where} is not "
                      f"valid ({clean_text(str(first.get('msg', '')))[:120]}); its other "
                      "tools work")
    return None


class ToolListFilter:
    """A server's read stream whose ``tools/list`` answers lose the entries
    :func:`left_out_reason` refuses; ``on_left_out(name, reason)`` hears of each."""

    def __init__(self, stream: Any, server: str,
                 on_left_out: Callable[[str, str], None]) -> None:
        self._stream = stream
        self._server = server
        self._on_left_out = on_left_out

    def _filtered(self, item: Any) -> Any:
        from mcp.types import JSONRPCResponse

        message = getattr(item, "message", None)
        if not isinstance(message, JSONRPCResponse):
            return item
        tools = message.result.get("tools")
        if not isinstance(tools, list):
            return item
        kept = []
        for entry in tools:
            refused = left_out_reason(self._server, entry)
            if refused is None:
                kept.append(entry)
            else:
                self._on_left_out(*refused)
        if len(kept) != len(tools):
            message.result = {**message.result, "tools": kept}
        return item

    async def receive(self) -> Any:
        return self._filtered(await self._stream.receive())

    def __aiter__(self) -> ToolListFilter:
        return self

    async def __anext__(self) -> Any:
        return self._filtered(await self._stream.__anext__())

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> ToolListFilter:
        await self._stream.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        result: bool | None = await self._stream.__aexit__(*exc)
        return result

    def __getattr__(self, name: str) -> Any:  # ``last_context`` and the like
        return getattr(self._stream, name)
