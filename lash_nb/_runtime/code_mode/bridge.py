"""The code run inside the sandbox kernel so that a cell can reach the host: ``submit``,
``llm_query``, ``call_tool`` and one function per host tool. Each sends one request as an
``input`` prompt (``sandbox.BRIDGE_PREFIX`` + JSON) and reads the host's JSON reply."""

from __future__ import annotations

import json
import keyword
from collections.abc import Iterable

BRIDGE_PREFIX = "\x00lash-bridge:"  # an input prompt starting with this is a host call

_BRIDGE = '''
def __lash_bridge():
    import builtins, json

    class HostCallError(Exception):
        """A host call (tool, llm_query, submit) failed; the message says why."""

    def plain(value):
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            return value.item()
        if hasattr(value, "to_dict"):
            return value.to_dict()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    def call(op, **fields):
        request = json.dumps({"op": op, **fields}, default=plain)
        reply = json.loads(builtins.input(PREFIX + request))
        if not reply.get("ok"):
            raise HostCallError(reply.get("error") or "the host call failed")
        return reply.get("value")

    def submit(value):
        """The final answer: ends the turn after this cell."""
        call("submit", value=value)

    def llm_query(prompt):
        """Ask a helper model about a piece of text; returns its answer as a str."""
        return call("llm_query", prompt=str(prompt))

    def call_tool(tool, /, **args):
        """Call a host tool by name with keyword arguments (any names, ``name`` too)."""
        return call("tool", name=tool, args=args)

    globals().update(submit=submit, llm_query=llm_query, call_tool=call_tool,
                     HostCallError=HostCallError)

__lash_bridge()
del __lash_bridge
'''


def bridge_code() -> str:
    return _BRIDGE.replace("PREFIX + request", f"{json.dumps(BRIDGE_PREFIX)} + request")


def tool_stubs(names: Iterable[str]) -> str:
    """One function per tool whose name is a Python identifier."""
    return "\n".join(
        f"def {name}(**args):\n    return call_tool({name!r}, **args)\n" for name in names
        if name.isidentifier() and not keyword.iskeyword(name)
        and name not in ("submit", "llm_query", "call_tool"))


__all__ = ["BRIDGE_PREFIX", "bridge_code", "tool_stubs"]
