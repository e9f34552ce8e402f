"""The public surface is pinned: each public namespace's ``__all__`` equals the list checked in
here, every public attribute of a namespace is in its ``__all__``, and a name (and the object
behind it) is public in exactly one namespace; everything else is underscore-private (httpx
``tests/test_exported_members.py``, lash ``crates/lash/tests/one_home.rs``).

Changing the public surface means changing a list below on purpose, in review.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

SURFACE: dict[str, list[str]] = {
    "lash_nb": [
        "ApprovalDecision", "ApprovalPolicy", "ApprovalRequest", "Approvals", "AssistantOutput",
        "Attachment", "AttachmentLimits", "AttachmentRef",
        "CancellationToken", "DeliveryPolicy", "Drainer", "EnqueueBuilder",
        "ExecutionSummary", "FunctionTool", "InputItem", "LashCore", "LashCoreBuilder",
        "LashSession", "MCPServer", "Message", "OutputState", "ParkedSession", "Part", "PartKind",
        "QueuedTurnBuilder",
        "QueuedWorkBatch", "QueuedWorkItem", "Role", "SessionBuilder", "SessionPolicy",
        "SessionReadView", "SessionUsageReport", "SlotPolicy", "TokenUsage", "ToolAdmin",
        "ToolCallRecord", "ToolContext", "ToolManifest", "ToolProvider", "TurnBuilder",
        "TurnFinish", "TurnInput", "TurnIssue", "TurnOutcome", "TurnOutput", "TurnResult",
        "TurnStop", "TurnStream", "UsageReportRow", "__version__", "disable_tracing",
        "enable_tracing", "load_ipython_extension", "run_child", "run_sync", "tool",
        # configuration, prompt layers, plugins (issue 16 part A)
        "PluginCheckpointContext", "PluginOperations", "PluginTurnContext", "PromptBuiltin",
        "PromptContribution", "PromptLayer", "PromptSlot", "PromptTemplate",
        "PromptTemplateEntry", "PromptTemplateSection", "SessionAdmin", "SessionCommandAdmin",
        "SessionConfigAdmin", "SessionConfigPatch", "SessionPlugin", "TurnPhase",
    ],
    "lash_nb.errors": [
        "ClaimSuperseded", "CodeExecutionUnavailable", "ConfigurationError", "CursorError",
        "HeadRevisionConflict", "InvalidTurnInput", "LashError", "LashWarning",
        "MissingPluginTurnInput", "PluginError",
        "ProviderUnavailable", "ProviderUnconfigured", "QueryNotAllowed", "QueueRequiresStore",
        "SessionDeleted", "SessionExecutionBusy", "SessionExecutionLeaseExpired",
        "SessionExecutionLeaseLost", "SessionStillInUse", "StoreDamagedError",
        "StoreError", "StoreFullError", "StoreInterrupted", "StoreLockedError", "StorePathError",
        "StoreSchemaError",
        "StoreSessionMismatch", "ToolArgumentsInvalid", "ToolNameConflict", "ToolServerError",
        "TurnCommitConflict", "TurnIdMismatch", "TurnIdTaken", "TurnNotSaved",
        "WireScriptError",
    ],
    "lash_nb.events": [
        "AssistantProseDelta", "ChildActivity", "ChildUsage", "CodeCellCompleted",
        "CodeCellOutput", "CodeCellStarted", "CodeSandboxStarted", "ContextWindowed", "Error",
        "ModelAttemptReset", "ModelRequestStarted",
        "QueuedInputAccepted", "QueuedWorkStarted", "ReasoningDelta", "RetryStatus",
        "ToolApproval", "ToolCallCompleted", "ToolCallPrinted", "ToolCallStarted", "TurnActivity",
        "TurnEvent", "TurnOutcomeEvent",
        "Usage",
    ],
    "lash_nb.providers": [
        "Anthropic", "Completed", "FunctionProvider", "GoogleGemini", "LiteLLMProvider",
        "LlmPart", "LlmRequest",
        "LlmResponse", "LlmToolSpec", "LlmTransportError", "OfflineProvider", "OpenAICompatible",
        "OpenAIResponses", "Provider",
        "ProviderFailureKind", "ProviderInfo", "ReasoningTextDelta", "RetryPolicy",
        "TerminalReason", "TextDelta", "UsageReported", "select_provider",
    ],
    "lash_nb.stores": [
        "BlobStore", "CommitResult", "DuckDBStore", "Lease", "LeaseBusy", "MemoryStore", "PersistedSession",
        "PostgresStore", "ReadScope", "RuntimeCommit", "SessionMeta", "SessionStore",
        "TurnRecord", "migrate_duckdb",
    ],
    "lash_nb.reports": [
        "Chart", "LashTrace", "graph_frame", "llm_calls_frame", "load_prices", "queue_frame",
        "queue_wait_chart", "read_lash_trace", "tool_calls_frame", "turn_duration_chart",
        "turns_frame", "usage_chart", "usage_columns", "usage_frame", "write_lash_trace",
    ],
    "lash_nb.testing": [
        "LoopbackServer", "RecordedRequest", "ReplayTransport", "WireScript", "load_wire_script",
        "load_wire_scripts", "scripted", "tool_call",
    ],
    "lash_nb.testing.conformance": [
        "CHECKS", "Check", "StoreFactory", "StoreOpener", "draft", "node", "run_conformance",
        "store_conformance_tests", "turn_record",
    ],
}
# namespaces whose every public attribute must be exported (the re-export-only modules; the
# conformance module is also where the checks are written, so only its __all__ is pinned)
REEXPORT_ONLY = [name for name in SURFACE if name != "lash_nb.testing.conformance"]
SUBMODULES = {"errors", "events", "providers", "stores", "reports", "testing", "conformance"}


def _module(name: str) -> Any:
    return importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(SURFACE))
def test_each_public_namespace_exports_exactly_the_checked_in_names(name: str) -> None:
    module = _module(name)
    assert sorted(module.__all__) == sorted(SURFACE[name])
    assert len(set(module.__all__)) == len(module.__all__), "a name listed twice"
    for member in module.__all__:
        assert getattr(module, member) is not None, f"{name}.{member} does not resolve"


@pytest.mark.parametrize("name", REEXPORT_ONLY)
def test_every_public_attribute_of_a_namespace_is_in_its_all(name: str) -> None:
    module = _module(name)
    public = {a for a in dir(module) if not a.startswith("_") and a not in SUBMODULES}
    assert public == {a for a in module.__all__ if not a.startswith("_")}


def test_a_name_is_public_in_exactly_one_namespace() -> None:
    homes: dict[str, list[str]] = {}
    for name, members in SURFACE.items():
        for member in members:
            homes.setdefault(member, []).append(name)
    assert {m: h for m, h in homes.items() if len(h) > 1} == {}


def test_an_object_is_public_under_one_name_in_one_namespace() -> None:
    seen: dict[int, str] = {}
    twice = []
    for name, members in SURFACE.items():
        module = _module(name)
        for member in members:
            obj = getattr(module, member)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            where = f"{name}.{member}"
            if id(obj) in seen:
                twice.append((seen[id(obj)], where))
            seen[id(obj)] = where
    assert twice == []


def test_every_lash_error_has_its_public_home_in_lash_nb_errors() -> None:
    import lash_nb._errors as tree
    import lash_nb.errors as errors

    defined = {n for n, obj in vars(tree).items()
               if inspect.isclass(obj)
               and issubclass(obj, (tree.LashError, tree.LashWarning, tree.StoreInterrupted))}
    assert defined == set(errors.__all__)


def test_a_busy_session_is_caught_through_the_public_error_namespace(tmp_path: Any) -> None:
    """The user's situation: a script catches SessionExecutionBusy without a private import."""
    import asyncio

    from lash_nb import LashCore
    from lash_nb.errors import LashError, SessionExecutionBusy
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    async def go() -> str:
        store = DuckDBStore(tmp_path / "lash.duckdb")
        one = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        two = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        held = await one.session("s1").open()
        other = await two.session("s1").open()
        outcome = "not busy"
        try:
            async for _ in held.turn("hold the lease while this runs").stream():
                if outcome == "not busy":  # the first activity: the turn holds the lease
                    try:
                        await other.turn("me too").run()
                    except SessionExecutionBusy as e:
                        assert isinstance(e, LashError) and e.retryable
                        outcome = "busy"
            return outcome
        finally:
            await other.close()
            await held.close()
            await store.close()

    assert asyncio.run(go()) == "busy"


def test_old_duplicate_homes_are_gone() -> None:
    import lash_nb
    import lash_nb.testing

    for gone in ("FunctionProvider", "OfflineProvider", "LlmResponse", "run_conformance",
                 "store_conformance_tests"):
        assert not hasattr(lash_nb.testing, gone)
    assert not hasattr(lash_nb, "LashError")  # lash_nb.errors.LashError is its home
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lash_nb.testing.wire")
