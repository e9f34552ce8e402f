"""A tool's own parameter named ``context`` (or ``ctx``) is the model's to fill.

``def search(query: str, context: str = "web")`` is an ordinary tool; the runtime took every
parameter named ``context`` or ``ctx`` as the slot for its ``ToolContext``: it was left out of
the schema, the model's ``"context": "docs"`` was refused as an unknown argument, and the
function got a ``ToolContext`` object where it expected text. The slot is a parameter
annotated ``ToolContext`` (any name), or one named ``context`` / ``ctx`` with no annotation
(as before); one annotated with another type is an argument like any other.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lash_nb import LashCore, ToolContext, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


def _run(fn: Any, args: str) -> tuple[Any, dict[str, Any]]:
    def model(request: Any) -> Any:
        if request.messages[-1].tool_results():
            return "done"
        return [tool_call(fn.name, args, "c1")]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(fn).build()
        s = await core.session("s").open()
        schema = next(t for t in s.tools().catalog() if t["name"] == fn.name)
        out = await s.turn("go").run()
        await core.close()
        return out, schema["contract"]["input_schema"]

    return asyncio.run(body())


def test_a_parameter_named_context_with_a_type_is_an_argument() -> None:
    got: list[Any] = []

    @tool
    def search(query: str, context: str = "web") -> str:
        """Search for a query in a context."""
        got.append(context)
        return f"{query} in {context}"

    out, schema = _run(search, '{"query": "q", "context": "docs"}')
    assert "context" in schema["properties"]
    assert out.result.tool_calls[0].output == "q in docs"
    assert got == ["docs"]


def test_a_ctx_parameter_with_a_type_is_an_argument() -> None:
    @tool
    def grep(pattern: str, ctx: int = 0) -> str:
        """Lines matching a pattern, with ctx lines around each."""
        return f"{pattern} +-{ctx}"

    out, schema = _run(grep, '{"pattern": "x", "ctx": 2}')
    assert schema["properties"]["ctx"]["type"] == "integer"
    assert out.result.tool_calls[0].output == "x +-2"


def test_a_parameter_annotated_tool_context_gets_it_whatever_its_name() -> None:
    got: list[Any] = []

    @tool
    def where(city: str, run: ToolContext) -> str:
        """Where the call runs."""
        got.append(run)
        return city

    _out, schema = _run(where, '{"city": "Oslo"}')
    assert list(schema["properties"]) == ["city"]
    assert isinstance(got[0], ToolContext)
    assert got[0].call_id == "c1"


def test_an_unannotated_context_parameter_still_gets_the_tool_context() -> None:
    got: list[Any] = []

    @tool
    def plain(city: str, context=None) -> str:  # type: ignore[no-untyped-def]
        """Old style."""
        got.append(context)
        return city

    _out, schema = _run(plain, '{"city": "Oslo"}')
    assert list(schema["properties"]) == ["city"]
    assert isinstance(got[0], ToolContext)
