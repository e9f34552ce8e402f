"""Stop during a plain-``def`` tool: the turn ends at once, and the user is told that the
function itself runs on.

A sync tool runs on a worker thread so the loop stays live; Python cannot stop a thread, so
after Stop the function runs to its end and whatever it does (write a file, send a message)
still happens; only its result is dropped. The record says ``interrupted``, which reads as
"it did not happen": one warning now says the function still runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from lash_nb import LashCore, tool
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

SENT: list[str] = []
RELEASE = threading.Event()
STARTED = threading.Event()
RETURNED = threading.Event()


@tool
def send_report(to: str) -> str:
    """Mail the weekly report."""
    STARTED.set()
    RELEASE.wait(60)
    SENT.append(to)
    RETURNED.set()
    return f"sent to {to}"


class Script:
    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)

    def __call__(self, request: Any) -> Any:
        return self.responses.pop(0) if self.responses else "done"


def test_stop_during_a_thread_tool_says_the_function_runs_on(caplog: Any) -> None:
    model = Script([tool_call("send_report", '{"to": "board@example.org"}', "c1")])

    async def body() -> Any:
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(
            send_report).build()
        s = await core.session("s").open()
        turn = asyncio.ensure_future(s.turn("mail the report").run())
        await asyncio.to_thread(STARTED.wait, 60)
        s.cancel_running_turns()
        try:
            out = await turn
            stopped_with = list(SENT)
        finally:
            RELEASE.set()  # the function goes on and sends
        await core.close()
        return out, stopped_with

    with caplog.at_level(logging.WARNING, logger="lash_nb.tools"):
        out, stopped_with = asyncio.run(body())
    # the function runs on a daemon thread of its own, which asyncio.run does not wait for
    # (a script that stopped a turn can exit): the test waits for the function's return
    assert RETURNED.wait(60)
    assert stopped_with == [] and SENT == ["board@example.org"]  # it happened after Stop
    assert str(out.result.outcome).startswith("stopped: cancelled")
    [call] = out.result.tool_calls
    assert call.status == "cancelled"
    [warning] = [r.getMessage() for r in caplog.records if r.name == "lash_nb.tools"]
    assert warning == ("tool 'send_report' was stopped while its function ran on a thread: "
                       "Python cannot stop a thread, so the function runs on until it returns "
                       "and what it does still happens (its result is dropped)")
