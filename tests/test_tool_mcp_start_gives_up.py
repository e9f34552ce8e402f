"""A server that never answers its start leaves one error, not a stray traceback later.

``%lash mcp add slow -- python -c 'import time; time.sleep(100)'`` ends in one line ("did not
start: no answer in 60 s"). The start's own wait was cancelled meanwhile and stored as an
exception nobody read, so asyncio later printed "Future exception was never retrieved" with
a ``ToolServerError('CancelledError()')`` under whatever ran next (at the kernel's exit, or
under an unrelated cell when the garbage collector found it).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import pytest

pytest.importorskip("mcp")

from lash_nb import MCPServer
from lash_nb._tools import mcp as mcp_module
from lash_nb.errors import ToolServerError


def test_a_start_that_gets_no_answer_leaves_no_unread_error(monkeypatch: Any) -> None:
    monkeypatch.setattr(mcp_module, "START_WAIT_S", 1.0)  # the wait, not its length, matters
    reported: list[dict[str, Any]] = []

    async def body() -> str:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx))
        server = MCPServer.stdio("slow", sys.executable, "-c", "import time; time.sleep(30)",
                                 timeout_s=1.0)
        try:
            await server.start()
        except ToolServerError as err:
            line = str(err)
        else:
            raise AssertionError("the server started")
        del server
        gc.collect()  # an unread exception is reported when its future is collected
        await asyncio.sleep(0)
        return line

    line = asyncio.run(body())
    assert "did not start: no answer in 1 s" in line
    assert [c.get("message") for c in reported] == []
