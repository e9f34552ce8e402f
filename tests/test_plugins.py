"""Session plugins (``lash_nb.SessionPlugin``): tools, prompt contributions, turn input,
checkpoint hooks, operations, and the plugin revision in the tool-catalog cache key.

The user's situation: a team packages "our data tools + our house rules" as one plugin and
attaches it to every session; when the plugin grows a tool mid-notebook, the next turn must
see it; a broken plugin must end the turn with an outcome, not lose it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore, PromptContribution, SessionPlugin, tool
from lash_nb.errors import ConfigurationError, MissingPluginTurnInput, PluginError
from lash_nb.providers import FunctionProvider
from lash_nb.stores import MemoryStore
from lash_nb.testing import scripted


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@tool
def rows(table: str) -> int:
    """Count the rows of a table."""
    return 3


@tool
def columns(table: str) -> int:
    """Count the columns of a table."""
    return 2


class DataPlugin:
    plugin_id = "data"

    def __init__(self) -> None:
        self.revision = 0
        self.tools: list[Any] = [rows]
        self.seen_inputs: list[Any] = []

    def tool_providers(self) -> list[Any]:
        return list(self.tools)

    def prompt_contributions(self, ctx: Any) -> list[PromptContribution]:
        self.seen_inputs.append(ctx.plugin_input)
        return [PromptContribution.project_instructions("Tables live in DuckDB.")]

    def operations(self) -> dict[str, Any]:
        return {"table_count": lambda args: {"tables": 2, "args": args}}


def tool_names_provider(seen: list[list[str]]) -> FunctionProvider:
    def fn(request: Any) -> str:
        seen.append(sorted(t.name for t in request.tools))
        return "ok"
    return FunctionProvider(fn)


def test_a_plugin_brings_tools_and_prompt_contributions() -> None:
    assert isinstance(DataPlugin(), SessionPlugin)
    prompts: list[str | None] = []
    tools_seen: list[list[str]] = []

    def fn(request: Any) -> str:
        prompts.append(request.system_prompt)
        tools_seen.append(sorted(t.name for t in request.tools))
        return "ok"

    async def body() -> None:
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").build()
        s = await core.session("s").plugin(DataPlugin()).open()
        await s.turn("how many rows?").run()

    run(body())
    assert tools_seen == [["rows"]]
    assert prompts == ["## Guidance\n\n### Project Instructions\n\nTables live in DuckDB."]


def test_the_plugin_revision_enters_the_tool_catalog_cache_key() -> None:
    """lash ``Session::tool_catalog_key`` carries ``plugin_revision`` (lash-core session.rs):
    a plugin that bumps its revision changes the catalog of the next turn without any
    refresh command. Before, ``plugin_revision`` was always 0 and the catalog stayed cached."""
    seen: list[list[str]] = []

    async def body() -> None:
        plugin = DataPlugin()
        core = LashCore.builder().provider(tool_names_provider(seen)).model("m").plugin(
            plugin).build()
        s = await core.session("s").open()
        await s.turn("one").run()
        plugin.tools.append(columns)  # not visible until the plugin says its surface changed
        await s.turn("two").run()
        plugin.revision += 1
        await s.turn("three").run()
        plugin.tools.remove(rows)
        plugin.revision += 1
        await s.turn("four").run()

    run(body())
    assert seen == [["rows"], ["rows"], ["columns", "rows"], ["columns"]]


class NeedsInput:
    plugin_id = "tone"
    requires_turn_input = True

    def prompt_contributions(self, ctx: Any) -> list[PromptContribution]:
        return [PromptContribution.intro(None, f"Tone: {ctx.plugin_input}.")]


def test_a_plugin_that_requires_turn_input_refuses_a_turn_without_it_and_writes_nothing() -> None:
    """lash ``requires_turn_input``: every turn fails ``MissingPluginTurnInput`` unless it
    brings the plugin's input; nothing reaches the store."""
    prompts: list[str | None] = []

    def fn(request: Any) -> str:
        prompts.append(request.system_prompt)
        return "ok"

    async def body() -> tuple[int, int]:
        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(store).build()
        s = await core.session("s").plugin(NeedsInput()).open()
        with pytest.raises(MissingPluginTurnInput, match=r"\.plugin_input\('tone', value\)"):
            await s.turn("hello").run()
        before = len(await store.load_turns("s"))
        await s.turn("hello").plugin_input("tone", "dry").run()
        with pytest.raises(ConfigurationError, match="no such plugin is attached"):
            await s.turn("x").plugin_input("tone", "dry").plugin_input("tonne", 1).run()
        return before, len(await store.load_turns("s"))

    assert run(body()) == (0, 1)
    assert prompts == ["Tone: dry."]


class Reminder:
    plugin_id = "reminder"

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def checkpoint(self, ctx: Any) -> list[str]:
        self.kinds.append(ctx.checkpoint)
        if ctx.checkpoint == "before_completion" and len(self.kinds) == 1:
            return ["checkpoint injected"]
        return []


def test_checkpoint_hook_can_inject_messages() -> None:
    """Mirrors lash ``checkpoint_hook_can_inject_messages`` (lash-core runtime/tests/
    turns.rs): a hook answering at ``before_completion`` injects its message and the turn
    goes on with another model call."""
    async def body() -> tuple[list[str], str, list[str]]:
        plugin = Reminder()
        core = LashCore.builder().provider(scripted("First answer.", "Second answer.")).model(
            "m").build()
        s = await core.session("s").plugin(plugin).open()
        out = await s.turn("hello").run()
        texts = [m.text() for m in s.read_view().messages()]
        return texts, out.result.assistant_message(), plugin.kinds

    texts, answer, kinds = run(body())
    assert texts == ["hello", "First answer.", "checkpoint injected", "Second answer."]
    assert answer == "Second answer."
    assert kinds == ["before_completion", "before_completion"]


def test_a_hook_that_always_injects_is_bounded_by_max_turns() -> None:
    class Nag:
        plugin_id = "nag"

        def checkpoint(self, ctx: Any) -> str:
            return "again"

    async def body() -> int:
        provider = scripted("answer")
        core = LashCore.builder().provider(provider).model("m").max_turns(3).build()
        s = await core.session("s").plugin(Nag()).open()
        out = await s.turn("hello").run()
        assert out.result.assistant_message() == "answer"
        return provider.calls

    assert run(body()) == 4  # the first call, then one per allowed injection


def test_plugin_operations_query_and_run_command() -> None:
    async def body() -> None:
        core = LashCore.builder().provider(scripted("ok")).model("m").build()
        s = await core.session("s").plugin(DataPlugin()).open()
        ops = s.plugin_operations()
        assert await ops.query("table_count", {"schema": "main"}) == (
            "data", {"tables": 2, "args": {"schema": "main"}})
        assert await ops.run_command("table_count") == {"tables": 2, "args": None}
        with pytest.raises(PluginError, match="did you mean 'table_count'"):
            await ops.query("table_cont")
    run(body())


def test_a_plugin_that_raises_ends_the_turn_with_an_outcome() -> None:
    class Broken:
        plugin_id = "broken"

        def prompt_contributions(self, ctx: Any) -> list[PromptContribution]:
            raise RuntimeError("no config file; tried api_key=sk-live-0123456789abcdef")

    async def body() -> tuple[str, list[str], int]:
        store = MemoryStore()
        core = LashCore.builder().provider(scripted("never")).model("m").store(store).build()
        s = await core.session("s").plugin(Broken()).open()
        out = await s.turn("hello").run()
        turns = await store.load_turns("s")
        return (out.result.outcome.stop.value, [e.message for e in out.result.errors],
                len(turns))

    stop, errors, turns = run(body())
    assert stop == "provider_error"
    # the plugin's text is scrubbed before it is stored: its key does not reach the store
    assert errors == [("plugin 'broken': prompt_contributions failed: no config file; tried "
                       "api_key=[redacted]")]
    assert turns == 1


def test_a_plugin_error_that_quotes_the_session_providers_key_stores_it_redacted() -> None:
    """A plugin that builds its own client from the session's key and fails quotes it
    plainly (no ``api_key=`` around it, no known key shape): only the exact value is known,
    and it must not reach the turn's errors or the store."""
    from lash_nb.providers import OpenAICompatible

    key = "lnb-plugin-echo-5f3a9e21c7"

    class Leaky:
        plugin_id = "leaky"

        def prompt_contributions(self, ctx: Any) -> list[PromptContribution]:
            raise RuntimeError(f"client refused the key {key} for project 7")

    async def body() -> tuple[list[str], str]:
        store = MemoryStore()
        provider = OpenAICompatible(base_url="http://127.0.0.1:9/v1", api_key=key, model="m")
        core = LashCore.builder().provider(provider).store(store).build()
        s = await core.session("s").plugin(Leaky()).open()
        out = await s.turn("hello").run()
        turns = await store.load_turns("s")
        await core.close()
        return [e.message for e in out.result.errors], repr([t.result for t in turns])

    errors, stored = run(body())
    assert errors == [("plugin 'leaky': prompt_contributions failed: client refused the key "
                       "[redacted] for project 7")]
    assert key not in stored


def test_a_plugin_error_that_quotes_a_key_from_the_environment_stores_it_redacted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin reads ``OPENAI_API_KEY`` from the environment for a client of its own (the
    session runs on the offline provider, which has no key) and its error quotes the value.
    ADR 196 took environment keys out of prompts and tool output, but a plugin's error
    text only lost the keys of providers alive in the process: this one reached the turn's
    errors and the store."""
    key = "envkey-plugin-quoted-8c2e61"  # not shaped like a known key: only the value tells

    class Leaky:
        plugin_id = "leaky"

        def prompt_contributions(self, ctx: Any) -> list[PromptContribution]:
            raise RuntimeError(f"client refused {key} for project 7")

    async def body() -> tuple[list[str], str]:
        store = MemoryStore()
        core = LashCore.builder().provider(scripted("ok")).store(store).build()
        s = await core.session("s").plugin(Leaky()).open()
        out = await s.turn("hello").run()
        turns = await store.load_turns("s")
        await core.close()
        return [e.message for e in out.result.errors], repr([t.result for t in turns])

    monkeypatch.setenv("OPENAI_API_KEY", key)
    errors, stored = run(body())
    assert errors == [("plugin 'leaky': prompt_contributions failed: client refused "
                       "[redacted] for project 7")]
    assert key not in stored


def test_a_malformed_plugin_is_refused_at_the_builder() -> None:
    with pytest.raises(ConfigurationError, match="plugin_id"):
        LashCore.builder().plugin(object())
    core = LashCore.builder().provider(scripted("ok")).model("m").plugin(DataPlugin()).build()

    async def body() -> None:
        with pytest.raises(ConfigurationError, match="attached twice"):
            await core.session("s").plugin(DataPlugin()).open()
    run(body())


class UnitsNote:
    """Adds the unit convention to every turn's input (a turn input hook), async."""

    plugin_id = "units"

    async def on_turn_input(self, turn_input: Any, ctx: Any) -> str:
        return f"{turn_input.joined_text()}\n(units: {ctx.plugin_input or 'metric'})"


def test_a_turn_input_hook_rewrites_the_input_of_direct_and_queued_turns() -> None:
    """What the model sees and what is stored is the hook's input; a queued turn passes the
    same hook (lash plugins see every turn's input through their before-turn hook)."""
    seen: list[str] = []

    def fn(request: Any) -> str:
        seen.append(request.messages[-1].text())
        return "ok"

    async def body() -> list[str]:
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(
            MemoryStore()).build()
        s = await core.session("s").plugin(UnitsNote()).open()
        await s.turn("how hot?").run()
        await s.turn("how far?").plugin_input("units", "imperial").run()
        await s.enqueue("how heavy?").send()
        await s.queued_turn().run()
        return [m.text() for m in s.read_view().messages() if m.role.value == "user"]

    stored = run(body())
    assert seen == ["how hot?\n(units: metric)", "how far?\n(units: imperial)",
                    "how heavy?\n(units: metric)"]
    assert stored == seen


def test_a_turn_input_hook_that_raises_refuses_the_turn_and_writes_nothing() -> None:
    class Broken:
        plugin_id = "broken"

        def on_turn_input(self, turn_input: Any, ctx: Any) -> Any:
            raise KeyError("units")

    async def body() -> tuple[int, int]:
        store = MemoryStore()
        core = LashCore.builder().provider(scripted("never")).model("m").store(store).build()
        s = await core.session("s").plugin(Broken()).open()
        with pytest.raises(PluginError, match="plugin 'broken': on_turn_input failed: 'units'"):
            await s.turn("hello").run()
        return len(await store.load_turns("s")), len(s.read_view().messages())

    assert run(body()) == (0, 0)
