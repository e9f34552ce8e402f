"""Hand-written MCP stdio servers for tests: a server that misbehaves where the SDK's server
would not (bytes that are not UTF-8, a storm of notifications, schemas that are not objects,
a chatty stderr). The JSON-RPC loop is written once here; each test gives its tools and how
a ``tools/call`` is answered.

``stdio_server(...)`` returns the script's text (write it to a file, run it with
``sys.executable``). In ``on_call`` the names ``msg``, ``rid``, ``name`` (the tool's),
``send(obj)`` and ``answer(rid, text, is_error=False)`` are in scope; ``prelude`` runs once
at the start (and may define ``TOOLS``); ``on_list`` runs before each ``tools/list`` answer.
The loop runs at module level, so the prelude's variables can be counted up in both.
"""

from __future__ import annotations

import json
import textwrap

_SCRIPT = '''\
# a hand-written MCP stdio server (tests/mcp_stdio.py)
import json, os, sys

@PRELUDE@


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()


def answer(rid, text, is_error=False):
    result = {"content": [{"type": "text", "text": text}]}
    if is_error:
        result["isError"] = True
    send({"jsonrpc": "2.0", "id": rid, "result": result})


for line in sys.stdin:
    msg = json.loads(line)
    method, rid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": @CAPABILITIES@},
            "serverInfo": {"name": @NAME@, "version": "1"}}})
    elif method == "tools/list":
@ON_LIST@
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": @TOOLS@}})
    elif method == "tools/call":
        name = msg["params"]["name"]
@ON_CALL@
    elif rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
'''


def stdio_server(name: str, *, tools: str, on_call: str, prelude: str = "",
                 on_list: str = "pass", list_changed: bool = False) -> str:
    """The script of a server called ``name``; ``tools`` is a Python expression (the
    ``tools/list`` answer), the other arguments Python statements (see the module's text)."""
    def block(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip("\n"), " " * 8)

    return (_SCRIPT
            .replace("@PRELUDE@", textwrap.dedent(prelude).strip("\n"))
            .replace("@CAPABILITIES@", '{"listChanged": True}' if list_changed else "{}")
            .replace("@NAME@", json.dumps(name))
            .replace("@TOOLS@", tools)
            .replace("@ON_LIST@", block(on_list))
            .replace("@ON_CALL@", block(on_call)))
