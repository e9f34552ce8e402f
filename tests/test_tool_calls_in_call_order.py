"""A reply's tool calls, as the result and the store list them, are in the order the model
made them.

Tool calls of one reply run concurrently; an agent engineer coming from the Agents SDK or
pydantic-ai reads ``out.result.tool_calls[0]`` as the reply's first call. Before
(docs/adr/0201) the records were in the order the calls finished: a slow first call came
last in ``result.tool_calls`` and in the store's ``tool_calls`` rows (their ``seq``), while
the model's results were in call order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from lash_nb import LashCore, tool
from lash_nb.testing import scripted, tool_call


def test_tool_calls_are_listed_in_the_order_the_model_made_them(tmp_path: Path) -> None:
    second_done = asyncio.Event()

    @tool
    async def slow_first(key: str) -> str:
        """Waits until the second call has finished."""
        await second_done.wait()
        return "first"

    @tool
    async def quick_second(key: str) -> str:
        """Finishes at once."""
        second_done.set()
        return "second"

    path = tmp_path / "lash.duckdb"

    async def body() -> tuple[list[str], list[str]]:
        reply = [tool_call("slow_first", '{"key": "a"}'), tool_call("quick_second", '{"key": "b"}')]
        core = (LashCore.builder().provider(scripted(reply, "done"))
                .tools(slow_first, quick_second).store(path).build())
        s = await core.session("agent").open()
        out = await s.turn("go").run()
        await s.close()
        again = await LashCore.builder().provider(scripted("x")).store(path).build().session(
            "agent").open()
        rows = again.store.query("SELECT name FROM tool_calls ORDER BY seq")
        return [c.tool for c in out.result.tool_calls], rows["name"].tolist()

    in_result, in_store = asyncio.run(body())
    assert in_result == ["slow_first", "quick_second"]
    assert in_store == ["slow_first", "quick_second"]
