"""The Python a turn runs on the event loop (issue 21, ADR 0103): work that does nothing in the
common case is skipped, and still happens when its feature is on. Counts, never times."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmPart, LlmResponse, TerminalReason
from lash_nb._core.queue import DeliveryPolicy, QueuedWorkDraft, SlotPolicy
from lash_nb._core.records import PartKind
from lash_nb._errors import SessionExecutionLeaseLost
from lash_nb._runtime import catalog as catalog_mod
from lash_nb._runtime import children as children_mod
from lash_nb._runtime.writer import new_commit
from lash_nb._store.base import RuntimeCommit, SessionMeta
from lash_nb.providers import FunctionProvider
from lash_nb.stores import MemoryStore


def run(coro):
    return asyncio.run(coro)


@tool
async def get_weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


def tool_calls_then_answer(rounds: int = 1):
    """A model that asks for get_weather ``rounds`` times in a turn, then answers."""

    def model(request):
        last = request.messages[-1]
        done = sum(1 for m in request.messages[-2 * rounds:]
                   if m.parts and m.parts[-1].kind is PartKind.TOOL_RESULT)
        if last.parts and last.parts[-1].kind is PartKind.TOOL_RESULT and done >= rounds:
            return LlmResponse(parts=(LlmPart.text_part("It is sunny."),))
        return LlmResponse(parts=(LlmPart.tool_call(f"c{len(request.messages)}", "get_weather",
                                                    '{"city": "Paris"}'),),
                           terminal_reason=TerminalReason.TOOL_USE)
    return model


async def open_session(store, model, *tools):
    core = (LashCore.builder().provider(FunctionProvider(model)).model("m").store(store)
            .tools(*(tools or (get_weather,))).build())
    return await core.session("s").open()


class CountingMemoryStore(MemoryStore):
    def __init__(self):
        super().__init__()
        self.claims = 0
        self.commits: list[RuntimeCommit] = []

    async def claim_queued_work(self, lease, **kw):
        self.claims += 1
        return await super().claim_queued_work(lease, **kw)

    async def commit(self, commit):
        self.commits.append(commit)
        return await super().commit(commit)


def test_a_turn_with_nothing_queued_makes_no_claim_on_the_memory_store():
    """Before: two checkpoint claims per turn (after the tools, before completing) even with
    an empty queue."""
    async def body():
        store = CountingMemoryStore()
        s = await open_session(store, tool_calls_then_answer())
        for i in range(3):
            out = await s.turn(f"turn {i}").run()
            assert out.result.is_success()
        assert store.claims == 0
    run(body())


def test_input_queued_during_a_turn_is_still_claimed_at_its_checkpoint():
    """The slow path: a batch queued while the tool runs is claimed at the next checkpoint
    and shown to the model in the same turn."""
    seen: list[list[str]] = []
    holder: dict[str, object] = {}

    @tool
    async def steer_me(city: str) -> str:
        """Queues a steering message, then answers."""
        s = holder["s"]
        holder["batch"] = await s.enqueue("also check Lyon").id("steer-1").delivery_policy(  # type: ignore[attr-defined]
            "earliest_safe_boundary").send()
        return "sunny"

    def model(request):
        seen.append([m.text() for m in request.messages if m.role.value == "user" and m.text()])
        last = request.messages[-1]
        if len(seen) == 1:
            return LlmResponse(parts=(LlmPart.tool_call("c1", "steer_me", '{"city": "Paris"}'),),
                               terminal_reason=TerminalReason.TOOL_USE)
        assert last.role.value == "user"
        return LlmResponse(parts=(LlmPart.text_part("both sunny"),))

    async def body():
        store = CountingMemoryStore()
        s = holder["s"] = await open_session(store, model, steer_me)
        out = await s.turn("weather?").run()
        assert out.result.is_success()
        assert store.claims >= 1
        assert holder["batch"].batch_id in out.result.queued_batch_ids  # type: ignore[attr-defined]
        assert seen[-1][-1] == "also check Lyon"  # the model saw it in the same turn
        assert await s.queued_work() == []
    run(body())


def test_a_lost_lease_is_not_hidden_by_the_empty_queue_hint():
    """The memory store answers "surely nothing queued" only while the lease still holds;
    a lost lease goes the slow way and the claim raises, as before."""
    async def body():
        store = MemoryStore()
        lease = await store.try_acquire_lease("s", "me")
        assert store.surely_nothing_queued(lease)
        await store.release_lease(lease)
        assert not store.surely_nothing_queued(lease)
        with pytest.raises(SessionExecutionLeaseLost):
            await store.claim_queued_work(lease)
        fresh = await store.try_acquire_lease("s", "me")
        await store.enqueue(QueuedWorkDraft(
            "s", None, DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT, SlotPolicy.EXCLUSIVE, None, 0,
            (("turn_input", {"items": [{"type": "text", "text": "hi"}]}),)))
        assert not store.surely_nothing_queued(fresh)  # something queued: claim as usual
    run(body())


def test_the_commits_of_a_turn_equal_the_dataclass_constructors_objects():
    """The writer builds its RuntimeCommits without the frozen dataclass's per-field sets;
    they must be the same objects the constructor makes (every field, equal, hashable as
    before)."""
    names = {f.name for f in dataclasses.fields(RuntimeCommit)}

    async def body():
        store = CountingMemoryStore()
        s = await open_session(store, tool_calls_then_answer())
        await s.turn("go").run()
        assert len(store.commits) == 2  # the progress commit and the final commit
        for c in store.commits:
            assert set(vars(c)) == names
            assert RuntimeCommit(**{n: getattr(c, n) for n in names}) == c
            with pytest.raises(dataclasses.FrozenInstanceError):
                c.turn_index = 99  # type: ignore[misc]
        assert store.commits[1].turn is not None and store.commits[1].release_lease
    run(body())
    with pytest.raises(TypeError, match="lease"):
        new_commit({"session_id": "s"})
    with pytest.raises(TypeError, match="bogus"):
        new_commit({"session_id": "s", "lease": None, "policy": {}, "bogus": 1})


def test_one_child_scope_per_turn_however_many_tool_batches(monkeypatch):
    """Before: a ChildScope (and a generator context manager) per tool batch."""
    built = []
    real = children_mod.ChildScope

    def counting(*a, **kw):
        built.append(1)
        return real(*a, **kw)

    import lash_nb._runtime.turn_run as turn_run_mod
    monkeypatch.setattr(turn_run_mod, "ChildScope", counting)

    async def body():
        s = await open_session(MemoryStore(), tool_calls_then_answer(rounds=2))
        out = await s.turn("go").run()
        assert out.result.is_success()
        assert len(out.result.tool_calls) == 2  # two tool batches
        assert len(built) == 1
    run(body())


def test_tool_specs_are_built_once_per_catalog_change(monkeypatch):
    """Guard: the model-facing specs are cached per catalog key, not built per turn."""
    built: list[str] = []
    real = catalog_mod.LlmToolSpec

    def counting(name, *a, **kw):
        built.append(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(catalog_mod, "LlmToolSpec", counting)

    @tool
    def other(x: int) -> int:
        """Another tool."""
        return x

    async def body():
        s = await open_session(MemoryStore(), tool_calls_then_answer())
        for i in range(4):
            await s.turn(f"t{i}").run()
        assert built == ["get_weather"]
        s.tools().add_provider(other)
        for i in range(3):
            await s.turn(f"u{i}").run()
        assert sorted(built) == ["get_weather", "get_weather", "other"]
    run(body())


def test_no_phase_calls_without_a_probe_and_every_phase_with_one():
    async def body():
        s = await open_session(MemoryStore(), tool_calls_then_answer())
        surface = s.parts.surface
        calls: list[tuple[str, bool]] = []
        real = surface.phase
        surface.phase = lambda name, begin: (calls.append((name, begin)), real(name, begin))[1]
        await s.turn("go").run()
        assert calls == []  # before: 8 calls per turn, each returning at once

        class Probe:
            def __init__(self):
                self.seen: list[str] = []

            def begin(self, phase):
                self.seen.append(f"+{phase.value}")

            def end(self, phase):
                self.seen.append(f"-{phase.value}")

        probe = Probe()
        await s.set_turn_phase_probe(probe)
        await s.turn("again").run()
        assert probe.seen[0] == "+before_turn_hooks" and probe.seen[-1] == "-final_commit"
        assert len(probe.seen) % 2 == 0 and len(probe.seen) >= 8
    run(body())


def test_a_memory_commit_carries_every_session_meta_field():
    """The memory store names each SessionMeta field when it moves the head (no
    ``dataclasses.replace``): a new field must be carried there too."""
    assert [f.name for f in dataclasses.fields(SessionMeta)] == [
        "session_id", "provider_id", "model", "parent_session_id", "policy", "head_revision",
        "leaf_node_id", "turn_index", "tool_state", "created_at_ms", "updated_at_ms"]

    async def body():
        store = MemoryStore()
        s = await open_session(store, tool_calls_then_answer())
        await s.turn("a").run()
        first = (await store.list_sessions())[0]
        await s.turn("b").run()
        meta = (await store.list_sessions())[0]
        assert meta.created_at_ms == first.created_at_ms > 0
        assert meta.head_revision == first.head_revision + 2
        assert meta.turn_index == 2 and meta.model == "m" and meta.tool_state
    run(body())
