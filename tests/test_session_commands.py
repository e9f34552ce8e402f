"""``session.commands()`` (``refresh_tool_catalog``, ``reset``) and
``session.set_turn_phase_probe(...)``.

The user's situation: a notebook's tool module was edited and reloaded, and the session must
pick the new tool list up; a user wants a clean conversation on the same session id (the
spend so far stays on the books); a host wants to time each phase of a turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore, TokenUsage, ToolManifest, TurnPhase
from lash_nb.providers import FunctionProvider, LlmPart, LlmResponse
from lash_nb.stores import MemoryStore
from lash_nb.testing import scripted, tool_call

STORE_PARAMS = ["memory", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Editable:
    """A tool source whose tool list the user edits in place (a reloaded module)."""

    def __init__(self) -> None:
        self.names = ["alpha"]

    def tool_manifests(self) -> list[ToolManifest]:
        return [ToolManifest(n, n, f"tool {n}", {"type": "object", "properties": {}})
                for n in self.names]

    async def execute(self, name: str, args: Any, context: Any) -> str:
        return name


def test_runtime_scenario_drains_command_before_turn_work() -> None:
    """Mirrors lash ``runtime_scenario_drains_command_before_turn_work_and_commits_checkpoint``
    and ``runtime_scenario_command_only_queue_drain_completes_without_turn_work``
    (lash-core runtime/tests/runtime_scenarios/cases.rs): a refresh command enqueued before
    turn work is drained first; a command-only drain runs no turn."""
    seen: list[list[str]] = []

    def fn(request: Any) -> str:
        seen.append(sorted(t.name for t in request.tools))
        return "ok"

    async def body() -> tuple[list[str], Any, Any]:
        source = Editable()
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").tools(source).store(
            MemoryStore()).build()
        s = await core.session("s").open()
        await s.turn("before").run()
        source.names.append("beta")
        command = await s.commands().refresh_tool_catalog("module reloaded", "reload-1")
        same = await s.commands().refresh_tool_catalog("module reloaded", "reload-1")
        assert same.batch_id == command.batch_id  # idempotent by key
        await s.enqueue("wake after command").send()
        classes = [b.work_class for b in await s.queued_work()]
        out = await s.queued_turn().run()
        await s.commands().refresh_tool_catalog("again", "reload-2")
        command_only = await s.queued_turn().run()
        return classes, out, command_only

    classes, out, command_only = run(body())
    assert classes == ["session_command", "turn_work"]
    assert out is not None and out.result.assistant_message() == "ok"
    assert command_only is None
    assert seen == [["alpha"], ["alpha", "beta"]]


@pytest.mark.parametrize("kind", STORE_PARAMS)
def test_reset_empties_the_graph_durably_and_keeps_the_spend(
        kind: str, tmp_path: Any, request: Any) -> None:
    """lash ``SessionCommand::ResetSession`` (lash-core runtime/session_api.rs
    ``apply_session_command``): the session starts over with an empty graph that replaces the
    stored one; here the usage ledger and turn count stay (as ``open_fresh``, ADR 26)."""
    if kind == "memory":
        target: Any = MemoryStore()
    elif kind == "duckdb":
        target = str(tmp_path / "lash.duckdb")
    else:
        target = request.getfixturevalue("pg_server").create_database()
    prompts: list[list[str]] = []

    def fn(req: Any) -> LlmResponse:
        prompts.append([m.text() for m in req.messages])
        return LlmResponse((LlmPart.text_part("answer"),), TokenUsage(10, 2))

    async def body() -> tuple[list[str], int, int]:
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(target).build()
        try:
            s = await core.session("s").open()
            await s.turn("secret plan").run()
            await s.commands().reset("start over", "reset-1")
            assert await s.queued_turn().run() is None
            assert s.read_view().messages() == []
        finally:
            await core.close()
        core2 = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(target).build()
        try:
            again = await core2.session("s").open()
            reopened = [m.text() for m in again.read_view().messages()]
            await again.turn("new plan").run()
            return reopened, again.state.turn_index, again.usage_report().usage.input_tokens
        finally:
            await core2.close()

    reopened, turns, input_tokens = run(body())
    assert reopened == []
    assert prompts == [["secret plan"], ["new plan"]]
    assert turns == 2
    assert input_tokens == 20  # both turns' spend: the reset did not erase the first one


class Probe:
    def __init__(self) -> None:
        self.log: list[str] = []

    def begin(self, phase: TurnPhase) -> None:
        self.log.append(f"begin {phase.value}")

    def end(self, phase: TurnPhase) -> None:
        self.log.append(f"end {phase.value}")

    def begin_named(self, name: str) -> None:
        self.log.append(f"begin_named {name}")

    def end_named(self, name: str) -> None:
        self.log.append(f"end_named {name}")


def test_a_turn_phase_probe_sees_each_phase_in_order() -> None:
    """lash ``LashSession::set_turn_phase_probe`` / ``RuntimeTurnPhaseProbe`` (``begin`` /
    ``end`` per ``RuntimeTurnPhase``, named phases optional; lash-core
    ``runtime_phase_probe_slot_routes_session_fallback_and_scope_override``): a tool turn
    reports the hooks, the prompt build, the effect loop with the machine's waiting states,
    and the final commit."""
    async def body() -> tuple[list[str], list[str]]:
        source = Editable()
        provider = scripted([tool_call("alpha")], "done")
        core = LashCore.builder().provider(provider).model("m").tools(source).build()
        s = await core.session("s").open()
        probe = Probe()
        await s.set_turn_phase_probe(probe)
        await s.turn("go").run()
        first = list(probe.log)
        await s.set_turn_phase_probe(None)
        await s.turn("quiet").run()
        return first, probe.log

    first, after = run(body())
    assert first == [
        "begin before_turn_hooks", "end before_turn_hooks",
        "begin effect_loop",
        "begin_named await_progress", "end_named await_progress",
        "begin_named await_llm", "begin prompt_build", "end prompt_build", "end_named await_llm",
        "begin_named await_tools", "end_named await_tools",
        "begin_named await_checkpoint", "end_named await_checkpoint",
        "begin_named await_llm", "end_named await_llm",
        "begin_named await_checkpoint", "end_named await_checkpoint",
        "begin_named sealing", "end_named sealing",
        "end effect_loop",
        "begin final_commit", "end final_commit",
    ]
    assert after == first  # removed: the next turn reports nothing
