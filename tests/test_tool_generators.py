"""A tool written as a generator (``yield`` each row) gives the model what it yields.

A ``def`` with ``yield`` (or an ``async def`` with ``yield``) returns a generator object when
called; its repr, ``<generator object rows at 0x7f...>``, was what the model read and the
store kept, and the function body never ran. Now the rows it yields are the output, a list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


@tool
def rows(n: int) -> Iterator[dict[str, int]]:
    """The first n rows."""
    for i in range(n):
        yield {"row": i}


@tool
async def pages(n: int) -> AsyncIterator[str]:
    """The first n pages."""
    for i in range(n):
        await asyncio.sleep(0)
        yield f"page {i}"


def test_a_generator_tool_gives_the_model_what_it_yields() -> None:
    seen: list[str] = []

    def model(request: Any) -> Any:
        results = request.messages[-1].tool_results()
        if results:
            seen.extend(r.content for r in results)
            return "done"
        return [tool_call("rows", '{"n": 2}', "c1"), tool_call("pages", '{"n": 2}', "c2")]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            rows, pages).build()
        s = await core.session("s").open()
        out = await s.turn("list them").run()
        await core.close()
        return out

    out = asyncio.run(body())
    calls = {c.call_id: c for c in out.result.tool_calls}
    assert calls["c1"].output == [{"row": 0}, {"row": 1}]
    assert calls["c2"].output == ["page 0", "page 1"]
    assert seen == ['[{"row": 0}, {"row": 1}]', '["page 0", "page 1"]']
