"""An ``async def`` tool that blocks the event loop (``time.sleep``, blocking I/O) is named.

While it blocks, nothing else on the loop runs: the Stop button's message, ``%lash stop``,
the live widget. The turn cannot be stopped until the tool returns, and nothing told the user
why. Now the turn logs one warning naming the tool, how long it held the loop and what to do
(a plain ``def`` runs on a thread; or await the I/O). A tool that awaits is not named.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call


@tool
async def fetch_blocking(url: str) -> str:
    """Fetch a page (with a blocking call inside async def)."""
    time.sleep(1.3)  # noqa: ASYNC251 (the mistake this test is about)
    return f"page of {url}"


@tool
async def fetch_awaiting(url: str) -> str:
    """Fetch a page (awaiting)."""
    await asyncio.sleep(1.3)
    return f"page of {url}"


class Script:
    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)

    def __call__(self, request: Any) -> Any:
        return self.responses.pop(0) if self.responses else "done"


def _turn(name: str) -> Any:
    model = Script([tool_call(name, '{"url": "https://example.org"}', "c1")])

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            fetch_blocking, fetch_awaiting).build()
        s = await core.session("s").open()
        out = await s.turn("fetch it").run()
        await core.close()
        return out

    return asyncio.run(body())


def test_an_async_tool_that_blocks_the_loop_is_named_with_what_to_do(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="lash_nb.tools"):
        out = _turn("fetch_blocking")
    assert out.result.tool_calls[0].output == "page of https://example.org"
    [warning] = [r.getMessage() for r in caplog.records if r.name == "lash_nb.tools"]
    assert warning.startswith("tool 'fetch_blocking' held the event loop for ")
    assert warning.endswith(" s without awaiting (time.sleep or blocking I/O in an async def?): "
                            "Stop and the live widget waited for it; make it a plain def (it "
                            "then runs on a thread) or await its I/O")


def test_an_async_tool_that_awaits_is_not_named(caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="lash_nb.tools"):
        out = _turn("fetch_awaiting")
    assert out.result.tool_calls[0].output == "page of https://example.org"
    assert [r.getMessage() for r in caplog.records if r.name == "lash_nb.tools"] == []


@tool
def lookup(key: str) -> str:
    """Look a key up (a plain def: it runs on a thread)."""
    time.sleep(0.3)
    return f"value of {key}"


def test_only_the_tool_that_blocked_the_loop_is_named_among_parallel_calls(caplog: Any) -> None:
    # one reply calls three tools; the blocking one comes last, so the other two were
    # already waiting (on a thread, on a sleep) while it held the loop: they did nothing
    # wrong, and telling the user to make a plain def of a plain def misleads
    calls = [tool_call("lookup", '{"key": "k"}', "c1"),
             tool_call("fetch_awaiting", '{"url": "https://a.example"}', "c2"),
             tool_call("fetch_blocking", '{"url": "https://b.example"}', "c3")]

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(Script(calls))).model("m").tools(
            lookup, fetch_awaiting, fetch_blocking).build()
        s = await core.session("s").open()
        out = await s.turn("fetch them").run()
        await core.close()
        return out

    with caplog.at_level(logging.WARNING, logger="lash_nb.tools"):
        out = asyncio.run(body())
    assert [c.success for c in out.result.tool_calls] == [True, True, True]
    named = [r.getMessage().split("'")[1] for r in caplog.records if r.name == "lash_nb.tools"]
    assert named == ["fetch_blocking"]
