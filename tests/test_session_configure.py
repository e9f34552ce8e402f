"""``session.configure(SessionConfigPatch(...))`` / ``session.admin().config().update(...)``.

The user's situation: a data scientist starts a session on a cheap model, switches it to a
better model (or another provider) in the middle of the notebook, restarts the kernel the
next morning and expects the session to still be on the model they chose; an operator's
configure call that cannot get the session (another process holds it) must change nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb import LashCore, PromptLayer, SessionConfigPatch
from lash_nb.errors import (
    ConfigurationError,
    LashWarning,
    ProviderUnavailable,
    SessionExecutionBusy,
)
from lash_nb.providers import FunctionProvider
from lash_nb.stores import MemoryStore, RuntimeCommit

STORE_PARAMS = ["memory", "duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def answering(kind: str, reply: str, seen: list[tuple[str, str]] | None = None) -> FunctionProvider:
    """A provider of this kind that always answers ``reply`` and records (kind, model)."""
    def fn(request: Any) -> str:
        if seen is not None:
            seen.append((kind, request.model))
        return reply
    return FunctionProvider(fn, kind=kind)


def store_target(kind: str, tmp_path: Any, request: Any) -> Any:
    if kind == "memory":
        return MemoryStore()
    if kind == "duckdb":
        return str(tmp_path / "lash.duckdb")
    return request.getfixturevalue("pg_server").create_database()


def test_provider_overrides_apply_at_core_session_turn_and_config_scopes() -> None:
    """Mirrors lash ``provider_overrides_apply_at_core_session_turn_and_config_scopes``
    (crates/lash/src/tests/core_session_builder.rs): core < session < config patch < turn."""
    async def body() -> None:
        core = LashCore.builder().provider(answering("core-provider", "core")).model(
            "core-model").build()
        session = await core.session("main").provider(
            answering("session-provider", "session")).open()

        assert (await session.turn("hello").run()).result.assistant_message() == "session"
        turn = await session.turn("hello").provider(answering("turn-provider", "turn")).run()
        assert turn.result.assistant_message() == "turn"
        assert (await session.turn("hello").run()).result.assistant_message() == "session"

        await session.admin().config().update(SessionConfigPatch(
            provider=answering("updated-provider", "updated"), model="updated-model"))
        assert (await session.turn("hello").run()).result.assistant_message() == "updated"
        # a turn's own provider still wins over the patch
        again = await session.turn("hello").provider(answering("turn-provider", "turn")).run()
        assert again.result.assistant_message() == "turn"
        assert session.policy_snapshot().provider_id == "updated-provider"
    run(body())


def test_provider_only_patch_keeps_the_session_model() -> None:
    """Mirrors lash ``provider_only_overrides_keep_session_model_and_variant``: a patch with
    only a provider keeps the model the session runs on."""
    async def body() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        core = LashCore.builder().provider(answering("core-provider", "core", seen)).model(
            "core-model").build()
        session = await core.session("main").open()
        await session.turn("hello").run()
        await session.turn("hello").provider(answering("turn-provider", "turn", seen)).run()
        await session.configure(SessionConfigPatch(
            provider=answering("updated-provider", "updated", seen)))
        await session.turn("hello").run()
        await session.configure(SessionConfigPatch(model="bigger-model"))
        await session.turn("hello").run()
        return seen

    assert run(body()) == [("core-provider", "core-model"), ("turn-provider", "core-model"),
                           ("updated-provider", "core-model"),
                           ("updated-provider", "bigger-model")]


@pytest.mark.parametrize("kind", STORE_PARAMS)
def test_a_reopened_session_keeps_the_configured_model_and_prompt(
        kind: str, tmp_path: Any, request: Any) -> None:
    """The patch is committed: after a kernel restart (a new core on the same store) the
    session runs on the configured model with the configured prompt layer."""
    target = store_target(kind, tmp_path, request)
    seen_prompts: list[str | None] = []

    def fn(req: Any) -> str:
        seen_prompts.append(req.system_prompt)
        return f"model={req.model}"

    async def body() -> tuple[str, str]:
        core = LashCore.builder().provider(FunctionProvider(fn)).model("small").store(target).build()
        try:
            s = await core.session("s").open()
            await s.turn("one").run()
            await s.configure(SessionConfigPatch(model="large", prompt="Answer in French."))
        finally:
            await core.close()
        # a memory store lives as long as its object: the same object stands for the file
        core2 = LashCore.builder().provider(FunctionProvider(fn)).model("small").store(
            target).build()
        try:
            again = await core2.session("s").open()
            out = (await again.turn("two").run()).result.assistant_message()
            # a session builder that names the model itself wins over the stored patch
            named = await core2.session("s").model("tiny").open()
            out2 = (await named.turn("three").run()).result.assistant_message()
        finally:
            await core2.close()
        return out, out2

    assert run(body()) == ("model=large", "model=tiny")
    assert seen_prompts == [None, "Answer in French.", "Answer in French."]


def test_configure_without_the_session_lease_changes_nothing() -> None:
    """Another runtime holds the session (its turn runs): the configure call fails with one
    line and the session keeps its model, in memory and in the store."""
    async def body() -> tuple[str, str, str]:
        store = MemoryStore()
        core = LashCore.builder().provider(answering("p", "x")).model("m1").store(store).build()
        s = await core.session("s").open()
        await s.turn("one").run()
        other = await store.try_acquire_lease("s", "pid:1:other-runtime", 60_000)
        with pytest.raises(SessionExecutionBusy):
            await s.configure(SessionConfigPatch(model="m2"))
        await store.release_lease(other)
        persisted = await store.load_session("s")
        assert persisted is not None
        return s.policy_snapshot().model, persisted.meta.model, persisted.meta.policy["model"]

    assert run(body()) == ("m1", "m1", "m1")


def test_a_running_turn_keeps_its_model_and_configure_waits_for_it() -> None:
    """configure waits for the writer lock: the running turn's model calls all use the model
    it started with; the next turn uses the new one."""
    async def body() -> list[str]:
        models: list[str] = []
        entered, release = asyncio.Event(), asyncio.Event()

        async def fn(req: Any) -> str:
            models.append(req.model)
            if len(models) == 1:
                entered.set()
                await release.wait()
            return "ok"

        core = LashCore.builder().provider(FunctionProvider(fn)).model("old").build()
        s = await core.session("s").open()
        turn = asyncio.ensure_future(s.turn("first").run())
        await asyncio.wait_for(entered.wait(), 30)
        patch = asyncio.ensure_future(s.configure(SessionConfigPatch(model="new")))
        await asyncio.sleep(0)
        assert not patch.done()  # held back by the running turn
        release.set()
        await turn
        await asyncio.wait_for(patch, 30)
        await s.turn("second").run()
        return models

    assert run(body()) == ["old", "new"]


def test_reopen_with_another_live_provider_names_the_configured_one() -> None:
    """A provider is code, not data: the reopened session records the configured provider's
    id, and a turn with another live provider is refused with one line naming both."""
    async def body() -> None:
        store = MemoryStore()
        core = LashCore.builder().provider(answering("alpha", "a")).model("m").store(store).build()
        s = await core.session("s").open()
        await s.configure(SessionConfigPatch(provider=answering("beta", "b")))
        assert (await s.turn("x").run()).result.assistant_message() == "b"
        again = await core.session("s").open()
        with pytest.raises(ProviderUnavailable, match="beta"):
            await again.turn("y").run()
        rebound = await core.session("s").provider(answering("beta", "b2")).open()
        assert (await rebound.turn("y").run()).result.assistant_message() == "b2"
    run(body())


def test_a_bad_patch_is_one_line_and_nothing_changes() -> None:
    with pytest.raises(ConfigurationError, match="model"):
        SessionConfigPatch(model="  ")
    with pytest.raises(ConfigurationError, match="provider"):
        SessionConfigPatch(provider="openai")
    with pytest.raises(ConfigurationError, match="PromptLayer"):
        SessionConfigPatch(prompt=42)  # type: ignore[arg-type]

    async def body() -> None:
        core = LashCore.builder().provider(answering("p", "x")).model("m").build()
        s = await core.session("s").open()
        with pytest.raises(ConfigurationError, match="SessionConfigPatch"):
            await s.configure({"model": "m2"})  # type: ignore[arg-type]
        assert s.policy_snapshot().model == "m"
        assert s.policy_snapshot().prompt is None
        await s.configure(SessionConfigPatch(prompt=PromptLayer()))
        assert s.policy_snapshot().configured == ("prompt",)
    run(body())


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_a_handle_opened_earlier_does_not_write_its_old_configuration_back(
        kind: str, tmp_path: Any) -> None:
    """Two notebooks on one session: A configures it, B (opened before) runs a turn. B's
    commit must not put the old model back into the store: B adopts A's patch when it
    reloads the moved head."""
    target: Any = MemoryStore() if kind == "memory" else str(tmp_path / "lash.duckdb")

    async def body() -> tuple[str, str, str]:
        core = LashCore.builder().provider(answering("p", "x")).model("small").store(
            target).build()
        try:
            a = await core.session("s").open()
            await a.turn("one").run()
            b = await core.session("s").open()
            await a.configure(SessionConfigPatch(model="large", prompt="Be brief."))
            await b.turn("two").run()
            persisted = await core.store.load_session("s")
            assert persisted is not None
            reopened = await core.session("s").open()
            return (persisted.meta.policy["model"], b.policy_snapshot().model,
                    str(reopened.rendered_prompt()))
        finally:
            await core.close()

    assert run(body()) == ("large", "large", "Be brief.")


def test_a_session_builder_prompt_wins_over_the_stored_patch_on_reopen() -> None:
    """A prompt-layer method on the session builder is the user's latest word, like
    ``.model(..)``: the reopened session uses the builder's layer, not the stored one."""
    seen: list[str | None] = []

    def fn(req: Any) -> str:
        seen.append(req.system_prompt)
        return "ok"

    async def body() -> None:
        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(fn)).model("m").store(store).build()
        s = await core.session("s").open()
        await s.configure(SessionConfigPatch(prompt="stored persona"))
        plain = await core.session("s").open()
        await plain.turn("x").run()
        named = await core.session("s").prompt_layer(PromptLayer()).open()
        await named.turn("y").run()

    run(body())
    assert seen == ["stored persona", None]


def test_a_stored_prompt_layer_this_version_cannot_read_does_not_lock_the_session_out() -> None:
    """A newer lash_nb wrote a slot this one does not know: the session still opens (and its
    turns run), with a warning saying what to do, and the configured model still applies."""
    async def body() -> str:
        store = MemoryStore()
        core = LashCore.builder().provider(answering("p", "ok")).model("m").store(store).build()
        lease = await store.try_acquire_lease("s", "pid:1:writer", 60_000)
        await store.commit(RuntimeCommit("s", lease, provider_id="p", model="m2", policy={
            "provider_id": "p", "model": "m2", "max_turns": 50, "system_prompt": None,
            "prompt": {"slots": {"future_slot": {"reset": True, "contributions": []}}},
            "configured": ["model", "prompt"]}, release_lease=True))
        with pytest.warns(LashWarning, match="could not be read .*session.configure"):
            s = await core.session("s").open()
        assert s.policy_snapshot().model == "m2"
        return (await s.turn("hi").run()).result.assistant_message()

    assert run(body()) == "ok"
