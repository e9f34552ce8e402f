"""A provider sent a tool call without a name: the runtime answers it with an error result,
and the saved record (HTML and markdown) names it ``(unnamed tool)``, as ``%lash graph``
does, rather than a bare ``tool`` that reads like a tool called "tool"."""

from __future__ import annotations

import asyncio

from lash_nb import LashCore, tool
from lash_nb._notebook.widgets.turn import TurnWidget
from lash_nb.providers import FunctionProvider, LlmPart, LlmResponse, TerminalReason
from lash_nb.stores import MemoryStore


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_a_call_without_a_name_reads_unnamed_tool_in_the_saved_record():
    replies = iter([
        LlmResponse(parts=(LlmPart.tool_call("c1", "", "{}"),),
                    terminal_reason=TerminalReason.TOOL_USE),
        LlmResponse(parts=(LlmPart.text_part("done"),)),
    ])

    async def body():
        core = LashCore.builder().provider(FunctionProvider(lambda req: next(replies))) \
            .model("m").tools(weather).store(MemoryStore()).build()
        s = await core.session("s").open()
        out = await s.turn("go").run()
        await core.close()
        return [a.to_json() for a in out.activities]

    w = TurnWidget(session_id="s", prompt="go")
    w.push_all(asyncio.run(body()))
    w.finish()
    (row,) = w.fold.tool_rows()
    assert row["status"] == "failed"
    bundle = w._repr_mimebundle_()
    assert '<span class="lash-tool-name">(unnamed tool)</span>' in bundle["text/html"]
    assert "- tool `(unnamed tool)` failed" in bundle["text/plain"]
