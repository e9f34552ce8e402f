"""Public test doubles (product code, documented; public namespace).

- ``scripted(*responses)``: a ``lash_nb.providers.FunctionProvider`` that plays responses in
  order; ``tool_call(name, args)`` is one tool call part for such a response.
- ``ReplayTransport``, ``LoopbackServer``, ``load_wire_script(s)``, ``WireScript``,
  ``RecordedRequest``: replay Provider Wire Script v1 files in process or over real loopback
  sockets.
- ``lash_nb.testing.conformance``: checks every store must pass (its own namespace).

The providers themselves (``FunctionProvider``, ``OfflineProvider``) and ``LlmResponse`` live
in ``lash_nb.providers`` only.
"""

import typing as _typing

from .._core.llm import LlmPart as _LlmPart
from .._core.llm import LlmRequest as _LlmRequest
from .._providers.function import FunctionProvider as _FunctionProvider

_LAZY = {
    "ReplayTransport": ("lash_nb._providers.wire", "ReplayTransport"),
    "RecordedRequest": ("lash_nb._providers.wire", "RecordedRequest"),
    "WireScript": ("lash_nb._providers.wire", "WireScript"),
    "load_wire_script": ("lash_nb._providers.wire", "load_wire_script"),
    "load_wire_scripts": ("lash_nb._providers.wire", "load_wire_scripts"),
    "LoopbackServer": ("lash_nb._providers.loopback", "LoopbackServer"),
}


def scripted(*responses: _typing.Any, kind: str = "function") -> _FunctionProvider:
    """A provider answering each model call with the next response (str, LlmResponse or a
    list of LlmPart); after the last one it repeats it."""
    items = list(responses)
    if not items:
        raise ValueError("scripted() needs at least one response")
    state = {"i": 0}

    def fn(request: _LlmRequest) -> _typing.Any:
        i = min(state["i"], len(items) - 1)
        state["i"] += 1
        return items[i]

    return _FunctionProvider(fn, kind=kind)


def tool_call(name: str, args: str = "{}", call_id: str | None = None) -> _LlmPart:
    from .._core.records import fresh_id

    return _LlmPart.tool_call(call_id or fresh_id("call_"), name, args)


__all__ = [
    "LoopbackServer",
    "RecordedRequest",
    "ReplayTransport",
    "WireScript",
    "load_wire_script",
    "load_wire_scripts",
    "scripted",
    "tool_call",
]


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'lash_nb.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
