"""Public test doubles and the store conformance suite (product code, documented).

- ``FunctionProvider``: a model written as a Python function.
- ``scripted(*responses)``: a FunctionProvider that plays responses in order.
- ``ReplayTransport``, ``LoopbackServer``, ``load_wire_script``: replay Provider Wire Script v1
  files in process or over real loopback sockets.
- ``lash_nb.testing.conformance``: checks every store must pass.
"""

from typing import Any

from .._core.llm import LlmPart, LlmRequest, LlmResponse
from .._providers.function import FunctionProvider
from .._providers.offline import OfflineProvider

_LAZY = {
    "store_conformance_tests": (".conformance", "store_conformance_tests"),
    "run_conformance": (".conformance", "run_conformance"),
    "ReplayTransport": (".wire", "ReplayTransport"),
    "LoopbackServer": (".wire", "LoopbackServer"),
    "load_wire_script": (".wire", "load_wire_script"),
}


def scripted(*responses: Any, kind: str = "function") -> FunctionProvider:
    """A provider answering each model call with the next response (str, LlmResponse or a
    list of LlmPart); after the last one it repeats it."""
    items = list(responses)
    if not items:
        raise ValueError("scripted() needs at least one response")
    state = {"i": 0}

    def fn(request: LlmRequest) -> Any:
        i = min(state["i"], len(items) - 1)
        state["i"] += 1
        return items[i]

    return FunctionProvider(fn, kind=kind)


def tool_call(name: str, args: str = "{}", call_id: str | None = None) -> LlmPart:
    from .._core.records import fresh_id

    return LlmPart.tool_call(call_id or fresh_id("call_"), name, args)


__all__ = ["FunctionProvider", "OfflineProvider", "scripted", "tool_call", "LlmResponse",
           "ReplayTransport", "LoopbackServer", "load_wire_script", "store_conformance_tests",
           "run_conformance"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, __package__), attr)
    raise AttributeError(f"module 'lash_nb.testing' has no attribute {name!r}")
