"""lash_nb: durable LLM agent sessions for Jupyter.

Everyday names live here (the core and its builders, a session, turn input and results,
queue policies, tools, usage). Each other public name has exactly one home:

- ``lash_nb.errors``: the whole error tree (``LashError`` and below) and ``LashWarning``
- ``lash_nb.events``: what a turn's stream yields (``TurnActivity``) and its event kinds
- ``lash_nb.providers``: model providers and the provider protocol
- ``lash_nb.stores``: stores and the store protocol
- ``lash_nb.reports``: DataFrames and charts
- ``lash_nb.testing`` (and ``lash_nb.testing.conformance``): test doubles, the store suite

Everything else is private (a leading underscore). ``tests/test_public_surface.py`` holds
each namespace's ``__all__`` against a checked-in list. In a notebook: ``%load_ext lash_nb``
then ``%lash help``.
"""

import typing as _typing

from ._core.cancel import CancellationToken
from ._core.prompt import (
    PromptBuiltin,
    PromptContribution,
    PromptLayer,
    PromptSlot,
    PromptTemplate,
    PromptTemplateEntry,
    PromptTemplateSection,
)
from ._core.queue import DeliveryPolicy, QueuedWorkBatch, QueuedWorkItem, SlotPolicy
from ._core.records import (
    AssistantOutput,
    ExecutionSummary,
    InputItem,
    Message,
    OutputState,
    Part,
    PartKind,
    Role,
    ToolCallRecord,
    TurnFinish,
    TurnInput,
    TurnIssue,
    TurnOutcome,
    TurnOutput,
    TurnResult,
    TurnStop,
)
from ._core.tools import ToolContext, ToolManifest, ToolProvider
from ._core.usage import SessionUsageReport, TokenUsage, UsageReportRow
from ._runtime.core import LashCore, LashCoreBuilder, SessionBuilder
from ._runtime.sync import run_sync
from ._tools.function import FunctionTool, tool
from ._tools.mcp import MCPServer
from ._version import __version__

# the runtime's session-side classes load with the first session, not with ``import lash_nb``
_LAZY = {
    "LashSession": ("._runtime.session", "LashSession"),
    "TurnBuilder": ("._runtime.turn", "TurnBuilder"),
    "TurnStream": ("._runtime.turn", "TurnStream"),
    "EnqueueBuilder": ("._runtime.queue", "EnqueueBuilder"),
    "QueuedTurnBuilder": ("._runtime.queue", "QueuedTurnBuilder"),
    "Drainer": ("._runtime.queue", "Drainer"),
    "ToolAdmin": ("._runtime.tool_admin", "ToolAdmin"),
    "ParkedSession": ("._runtime.lifecycle", "ParkedSession"),
    "run_child": ("._runtime.children", "run_child"),
    "SessionPolicy": ("._runtime.state", "SessionPolicy"),
    "SessionReadView": ("._runtime.state", "SessionReadView"),
    "SessionConfigPatch": ("._runtime.config", "SessionConfigPatch"),
    "SessionAdmin": ("._runtime.config", "SessionAdmin"),
    "SessionConfigAdmin": ("._runtime.config", "SessionConfigAdmin"),
    "SessionCommandAdmin": ("._runtime.config", "SessionCommandAdmin"),
    "SessionPlugin": ("._runtime.plugins", "SessionPlugin"),
    "PluginOperations": ("._runtime.plugins", "PluginOperations"),
    "PluginTurnContext": ("._runtime.plugins", "PluginTurnContext"),
    "PluginCheckpointContext": ("._runtime.plugins", "PluginCheckpointContext"),
    "TurnPhase": ("._runtime.prompt_layers", "TurnPhase"),
}

__all__ = [
    "AssistantOutput",
    "CancellationToken",
    "DeliveryPolicy",
    "Drainer",
    "EnqueueBuilder",
    "ExecutionSummary",
    "FunctionTool",
    "InputItem",
    "LashCore",
    "LashCoreBuilder",
    "LashSession",
    "MCPServer",
    "Message",
    "OutputState",
    "ParkedSession",
    "Part",
    "PartKind",
    "PluginCheckpointContext",
    "PluginOperations",
    "PluginTurnContext",
    "PromptBuiltin",
    "PromptContribution",
    "PromptLayer",
    "PromptSlot",
    "PromptTemplate",
    "PromptTemplateEntry",
    "PromptTemplateSection",
    "QueuedTurnBuilder",
    "QueuedWorkBatch",
    "QueuedWorkItem",
    "Role",
    "SessionAdmin",
    "SessionBuilder",
    "SessionCommandAdmin",
    "SessionConfigAdmin",
    "SessionConfigPatch",
    "SessionPlugin",
    "SessionPolicy",
    "SessionReadView",
    "SessionUsageReport",
    "SlotPolicy",
    "TokenUsage",
    "ToolAdmin",
    "ToolCallRecord",
    "ToolContext",
    "ToolManifest",
    "ToolProvider",
    "TurnBuilder",
    "TurnFinish",
    "TurnInput",
    "TurnIssue",
    "TurnOutcome",
    "TurnOutput",
    "TurnPhase",
    "TurnResult",
    "TurnStop",
    "TurnStream",
    "UsageReportRow",
    "__version__",
    "load_ipython_extension",
    "run_child",
    "run_sync",
    "tool",
]


def load_ipython_extension(ipython: _typing.Any) -> None:
    from ._notebook.extension import load_ipython_extension as _load

    _load(ipython)


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, __name__), attr)
    raise AttributeError(f"module 'lash_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
