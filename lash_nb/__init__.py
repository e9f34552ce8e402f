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

from ._version import __version__

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is lazy
    from ._core.approval import ApprovalDecision, ApprovalPolicy
    from ._core.attachments import Attachment, AttachmentLimits, AttachmentRef
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
    from ._runtime.approval import ApprovalRequest, Approvals
    from ._runtime.children import run_child
    from ._runtime.config import (
        SessionAdmin,
        SessionCommandAdmin,
        SessionConfigAdmin,
        SessionConfigPatch,
    )
    from ._runtime.core import LashCore, LashCoreBuilder, SessionBuilder
    from ._runtime.lifecycle import ParkedSession
    from ._runtime.plugins import (
        PluginCheckpointContext,
        PluginOperations,
        PluginTurnContext,
        SessionPlugin,
    )
    from ._runtime.prompt_layers import TurnPhase
    from ._runtime.queue import Drainer, EnqueueBuilder, QueuedTurnBuilder
    from ._runtime.session import LashSession
    from ._runtime.state import SessionPolicy, SessionReadView
    from ._runtime.sync import run_sync
    from ._runtime.tool_admin import ToolAdmin
    from ._runtime.tracing import disable_tracing, enable_tracing
    from ._runtime.turn import TurnBuilder, TurnStream
    from ._tools.function import FunctionTool, tool
    from ._tools.mcp import MCPServer

# ``import lash_nb`` imports no submodule but the version: each public name is imported from its
# home on first use (PEP 562) and then kept here, so ``%load_ext lash_nb`` and a worker's start
# pay only for what they touch (tests/test_import_cost.py; ADR 80)
_HOMES: dict[str, tuple[str, ...]] = {
    "._core.approval": ("ApprovalDecision", "ApprovalPolicy"),
    "._core.attachments": ("Attachment", "AttachmentLimits", "AttachmentRef"),
    "._core.cancel": ("CancellationToken",),
    "._core.prompt": (
        "PromptBuiltin", "PromptContribution", "PromptLayer", "PromptSlot", "PromptTemplate",
        "PromptTemplateEntry", "PromptTemplateSection",
    ),
    "._core.queue": ("DeliveryPolicy", "QueuedWorkBatch", "QueuedWorkItem", "SlotPolicy"),
    "._core.records": (
        "AssistantOutput", "ExecutionSummary", "InputItem", "Message", "OutputState", "Part",
        "PartKind", "Role", "ToolCallRecord", "TurnFinish", "TurnInput", "TurnIssue",
        "TurnOutcome", "TurnOutput", "TurnResult", "TurnStop",
    ),
    "._core.tools": ("ToolContext", "ToolManifest", "ToolProvider"),
    "._core.usage": ("SessionUsageReport", "TokenUsage", "UsageReportRow"),
    "._runtime.core": ("LashCore", "LashCoreBuilder", "SessionBuilder"),
    "._runtime.sync": ("run_sync",),
    "._runtime.tracing": ("disable_tracing", "enable_tracing"),
    "._tools.function": ("FunctionTool", "tool"),
    "._tools.mcp": ("MCPServer",),
    "._runtime.session": ("LashSession",),
    "._runtime.turn": ("TurnBuilder", "TurnStream"),
    "._runtime.queue": ("EnqueueBuilder", "QueuedTurnBuilder", "Drainer"),
    "._runtime.tool_admin": ("ToolAdmin",),
    "._runtime.approval": ("Approvals", "ApprovalRequest"),
    "._runtime.lifecycle": ("ParkedSession",),
    "._runtime.children": ("run_child",),
    "._runtime.state": ("SessionPolicy", "SessionReadView"),
    "._runtime.config": (
        "SessionConfigPatch", "SessionAdmin", "SessionConfigAdmin", "SessionCommandAdmin",
    ),
    "._runtime.plugins": (
        "SessionPlugin", "PluginOperations", "PluginTurnContext", "PluginCheckpointContext",
    ),
    "._runtime.prompt_layers": ("TurnPhase",),
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "Approvals",
    "AssistantOutput",
    "Attachment",
    "AttachmentLimits",
    "AttachmentRef",
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
    "disable_tracing",
    "enable_tracing",
    "load_ipython_extension",
    "run_child",
    "run_sync",
    "tool",
]


def load_ipython_extension(ipython: _typing.Any) -> None:
    from ._notebook.extension import load_ipython_extension as _load

    _load(ipython)


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lash_nb' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
