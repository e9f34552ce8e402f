"""The tool catalog and the queue panels send the browser outside text cleaned (ADR 152).

The user's situation: an MCP server's tool list (names, descriptions, the argument schema, the
server's group name) and queued prompts are outside text. Their saved snapshots dropped
terminal escapes, control and bidi characters (ADR 135, 142), but the live panels' synced
traits carried them as they came: a description with colour codes showed ``[31m`` in the
live table, and a right-to-left override reordered a queued prompt while the panel lived.
The comm is simulated: a recording comm keeps every message the kernel would send.
"""

from __future__ import annotations

import json
import re
from typing import Any

UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                    "\u2066-\u2069]")
GARBAGE = ("[31m", "[0m", "]0;", "]8;;")


class RecordingComm:
    """Stands in for the kernel's comm: keeps every message a widget sends."""

    comm_id = "recording"

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def on_msg(self, *_: Any) -> None:
        pass

    def send(self, data: Any = None, buffers: Any = None, **_: Any) -> None:
        self.sent.append(json.loads(json.dumps(data)))

    def close(self, *a: Any, **k: Any) -> None:
        pass


def _problems(value: Any) -> list[str]:
    text = json.dumps(value, ensure_ascii=False)
    return UNSAFE.findall(text) + [g for g in GARBAGE if g in text]


MCP_TOOLS = [{
    "name": "fetch\x1b[31m_url\x1b[0m",
    "description": "Fetch a page. \x1b[31mIGNORE PREVIOUS\x1b[0m\x07 \u202eenilno\u202c",
    "group": "mcp: web\x1b]0;owned\x07",
    "approval": "ask",
    "member": True,
    "input_schema": {"properties": {"url\u2066": {"type": "string",
                                                  "description": "the \x1b]8;;x\x07URL"}},
                     "required": ["url\u2066"]},
}]


def test_the_tool_catalog_sends_mcp_names_and_descriptions_cleaned_and_toggles_the_real_name():
    from lash_nb._notebook.widgets.tools import ToolCatalogWidget

    members = {MCP_TOOLS[0]["name"]: True}
    rows = lambda: [{**MCP_TOOLS[0], "member": members[MCP_TOOLS[0]["name"]]}]  # noqa: E731
    w = ToolCatalogWidget(load=rows, set_membership=lambda n, on: members.__setitem__(n, on))
    comm = RecordingComm()
    w.comm = comm
    state = w.get_state()
    assert _problems(state["tools"]) == []
    (tool,) = state["tools"]
    assert tool["name"] == "fetch_url"
    assert tool["description"] == "Fetch a page. IGNORE PREVIOUS enilno"
    assert tool["group"] == "mcp: web"
    assert tool["input_schema"]["properties"] == {"url": {"type": "string",
                                                          "description": "the URL"}}
    # the checkbox sends the name it was shown; the session gets the tool's own name
    w._on_custom(w, {"type": "toggle", "name": "fetch_url", "member": False}, [])
    assert members == {MCP_TOOLS[0]["name"]: False}
    assert comm.sent and _problems(comm.sent) == []
    assert w.tools[0]["member"] is False


def test_a_failed_toggle_message_is_sent_cleaned():
    from lash_nb._notebook.widgets.tools import ToolCatalogWidget

    def refuse(name: str, on: bool) -> None:
        raise RuntimeError("server said \x1b[31mno\x1b[0m\u202e!")

    w = ToolCatalogWidget(load=lambda: MCP_TOOLS, set_membership=refuse)
    comm = RecordingComm()
    w.comm = comm
    w.toggle("fetch_url", False)
    assert w.message == "RuntimeError: server said no!"
    assert _problems(comm.sent) == []


def test_the_queue_sends_queued_prompts_and_errors_cleaned_and_cancels_the_real_batch():
    from lash_nb._notebook.widgets.queue import QueueWidget

    batches = [{"batch_id": "b1", "items": [{"turn_input": {
        "text": "summarise \x1b[1mthis\x1b[0m\x07 \u202eevil\u202c"}}],
        "delivery_policy": "after_current_turn_commit", "slot_policy": "exclusive",
        "merge_key": "k\x1b[2J", "status": "failed", "error": "Server\x1b[31m 500\x1b[0m"}]
    cancelled: list[str] = []

    def cancel(batch_id: str) -> None:
        cancelled.append(batch_id)
        raise RuntimeError("gone \x1b[33mfast\x1b[0m")

    w = QueueWidget(load=lambda: batches, cancel=cancel)
    comm = RecordingComm()
    w.comm = comm
    w.refresh()
    state = w.get_state()
    assert _problems(state["batches"]) == []
    (row,) = state["batches"]
    assert row["text"] == "summarise this evil"
    assert row["error"] == "Server 500"
    assert row["merge_key"] == "k"
    w._on_custom(w, {"type": "cancel", "batch_id": "b1"}, [])
    assert cancelled == ["b1"]
    assert w.status == "RuntimeError: gone fast"
    assert comm.sent and _problems(comm.sent) == []
