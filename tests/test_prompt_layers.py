"""Prompt layers: core, plain system prompt, session, tools/plugins, turn (``_core/prompt.py``).

The user's situation: a notebook sets a house style once on the core, a persona on one
session, a one-off instruction for one cell; the old ``system_prompt("...")`` lines written
last month must send exactly what they sent before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import (
    LashCore,
    PromptContribution,
    PromptLayer,
    PromptSlot,
    PromptTemplate,
    PromptTemplateEntry,
    PromptTemplateSection,
    SessionConfigPatch,
    tool,
)
from lash_nb._core.prompt import default_prompt_template
from lash_nb.providers import FunctionProvider
from lash_nb.stores import MemoryStore


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def recording(seen: list[str | None]) -> FunctionProvider:
    def fn(request: Any) -> str:
        seen.append(request.system_prompt)
        return "ok"
    return FunctionProvider(fn)


def test_prompt_layers_apply_across_core_session_turn_and_mutation_scopes() -> None:
    """Mirrors lash ``prompt_layers_apply_across_core_session_turn_and_mutation_scopes``
    (crates/lash/src/tests/core_session_builder.rs)."""
    seen: list[str | None] = []

    async def body() -> None:
        core = (LashCore.builder().provider(recording(seen)).model("m")
                .prompt_contribution(PromptContribution.guidance("Core", "core guidance"))
                .build())
        session = await (core.session("prompt-api")
                         .prompt_contribution(PromptContribution.guidance("Session",
                                                                          "session guidance"))
                         .open())
        await (session.turn("first")
               .prompt_contribution(PromptContribution.guidance("Turn", "turn guidance")).run())
        await session.admin().config().replace_prompt_slot(
            PromptSlot.GUIDANCE, [PromptContribution.guidance("Replacement",
                                                              "replacement guidance")])
        await session.turn("second").run()
        await session.admin().config().clear_prompt_slot(PromptSlot.GUIDANCE)
        await session.turn("third").run()

    run(body())
    first, second, third = seen
    assert first == ("## Guidance\n\n### Core\n\ncore guidance\n\n### Session\n\nsession guidance"
                     "\n\n### Turn\n\nturn guidance")
    assert second == "## Guidance\n\n### Replacement\n\nreplacement guidance"
    assert third is None  # nothing left to say: no system prompt at all


def test_template_renders_slot_contributions_in_order() -> None:
    """Mirrors lash ``template_renders_slot_contributions_in_order`` (prompt.rs)."""
    text = default_prompt_template().render([
        PromptContribution.guidance("Second Guide", "Second details.").with_priority(10),
        PromptContribution.guidance("First Guide", "First details.").with_priority(0),
    ])
    assert text == ("## Guidance\n\n### First Guide\n\nFirst details.\n\n"
                    "### Second Guide\n\nSecond details.")


def test_template_can_place_project_instructions_separately_and_skips_empty_sections() -> None:
    """Mirrors lash ``template_can_place_project_instructions_separately`` and
    ``empty_sections_are_skipped``."""
    template = PromptTemplate((
        PromptTemplateSection((PromptTemplateEntry.of_slot(PromptSlot.PROJECT_INSTRUCTIONS),),
                              "Rules"),
        PromptTemplateSection((PromptTemplateEntry.of_slot("guidance"),), "Guidance"),
        PromptTemplateSection((PromptTemplateEntry.of_slot("environment"),), "Environment"),
    ))
    text = template.render([PromptContribution.project_instructions("Repo rules"),
                            PromptContribution.guidance("Shell", "Use exec_command.")])
    assert text == ("## Rules\n\n### Project Instructions\n\nRepo rules\n\n"
                    "## Guidance\n\n### Shell\n\nUse exec_command.")
    assert template.render([]) == ""


def test_the_plain_system_prompt_builders_still_send_exactly_their_text() -> None:
    """``system_prompt(...)`` is now a layer; alone it renders its text unchanged, and the
    session's replaces the core's, as before."""
    seen: list[str | None] = []

    async def body() -> None:
        core = LashCore.builder().provider(recording(seen)).model("m").system_prompt(
            "You are terse.").build()
        await (await core.session("a").open()).turn("x").run()
        await (await core.session("b").system_prompt("You are verbose.").open()).turn("x").run()
        await (await core.session("c").open()).turn("x").system("Reply in one word.").run()

    run(body())
    assert seen == ["You are terse.", "You are verbose.", "You are terse.\n\nReply in one word."]


def test_the_rendered_prompt_is_cached_per_layer_revision() -> None:
    """lash's ``PromptCache``: turns with unchanged layers do not render again; a configured
    session layer, a turn layer or a tool catalog change does."""
    seen: list[str | None] = []

    async def body() -> list[int]:
        core = (LashCore.builder().provider(recording(seen)).model("m").system_prompt("hi")
                .tools(Lookup()).build())
        s = await core.session("s").open()
        renders = []
        for _ in range(3):
            await s.turn("x").run()
        renders.append(s.parts.surface.cache.renders)
        await s.configure(SessionConfigPatch(prompt="hello"))
        await s.turn("x").run()
        await s.turn("x").run()
        renders.append(s.parts.surface.cache.renders)
        await s.turn("x").system("once").run()
        renders.append(s.parts.surface.cache.renders)
        s.tools().set_membership("lookup", False)
        await s.turn("x").run()
        renders.append(s.parts.surface.cache.renders)
        return renders

    assert run(body()) == [1, 2, 3, 4]
    lookup = "## Guidance\n\n### Lookup\n\nUse lookup for keys."
    # a str patch replaces the Intro slot: the builder's "hi" gives way to "hello"
    assert seen == [f"hi\n\n{lookup}"] * 3 + [f"hello\n\n{lookup}"] * 2 + [
        f"hello\n\nonce\n\n{lookup}", "hello"]


class Lookup:
    """A tool provider that also contributes a prompt line, gated on its own tool."""

    def __init__(self) -> None:
        self.inner = tool(self.lookup)

    @staticmethod
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    def tool_manifests(self) -> Any:
        return self.inner.tool_manifests()

    async def execute(self, name: str, args: Any, context: Any) -> Any:
        return await self.inner.execute(name, args, context)

    def prompt_contributions(self) -> list[PromptContribution]:
        return [PromptContribution.guidance("Lookup", "Use lookup for keys.").requires_tool(
            "lookup")]


def test_a_tool_contribution_renders_only_while_its_tool_is_a_member() -> None:
    seen: list[str | None] = []

    async def body() -> None:
        core = LashCore.builder().provider(recording(seen)).model("m").tools(Lookup()).build()
        s = await core.session("s").open()
        await s.turn("x").run()
        s.tools().set_membership("lookup", False)
        await s.turn("y").run()

    run(body())
    assert seen == ["## Guidance\n\n### Lookup\n\nUse lookup for keys.", None]


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_prompt_set_on_the_session_survives_a_reopen(kind: str, tmp_path: Any) -> None:
    target: Any = MemoryStore() if kind == "memory" else str(tmp_path / "l.duckdb")
    seen: list[str | None] = []

    async def body() -> str | None:
        core = LashCore.builder().provider(recording(seen)).model("m").store(target).build()
        try:
            s = await core.session("s").open()
            await s.admin().config().add_prompt_contribution(
                PromptContribution.environment("Data", "df has 3 columns \x00"))
        finally:
            await core.close()
        core2 = LashCore.builder().provider(recording(seen)).model("m").store(target).build()
        try:
            again = await core2.session("s").open()
            await again.turn("x").run()
            return again.rendered_prompt()
        finally:
            await core2.close()

    assert run(body()) == "## Environment\n\n### Data\n\ndf has 3 columns \ufffd"
    assert seen == ["## Environment\n\n### Data\n\ndf has 3 columns \ufffd"]


def test_an_unknown_slot_is_one_line_naming_the_slots() -> None:
    with pytest.raises(ValueError, match="unknown prompt slot 'guidence'; use one of intro"):
        PromptLayer().with_cleared_slot("guidence")


def test_a_bad_contribution_is_one_line_saying_what_to_pass() -> None:
    with pytest.raises(TypeError, match="priority must be an int"):
        PromptContribution(PromptSlot.GUIDANCE, "x", priority="high")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="content must be a str"):
        PromptContribution(PromptSlot.GUIDANCE, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"PromptContribution\.guidance"):
        LashCore.builder().prompt_contribution("be kind")  # type: ignore[arg-type]
