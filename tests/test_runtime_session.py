"""Open rules, residency, observation, tool catalog and the sync mirror."""

from __future__ import annotations

import asyncio
import json

import pytest

from lash_nb import LashCore, run_sync, tool
from lash_nb._errors import CursorError, ProviderUnavailable, SessionExecutionBusy, StoreSessionMismatch
from lash_nb.providers import Completed, FunctionProvider, LlmPart, LlmResponse, TextDelta
from lash_nb.stores import MemoryStore
from lash_nb.testing import scripted


def run(coro):
    return asyncio.run(coro)


def echo_provider(kind="function"):
    return FunctionProvider(lambda r: "echo: " + r.messages[-1].text(), kind=kind)


def texts(session):
    return [m.text() for m in session.read_view().messages()]


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return key.upper()


def test_reopen_through_the_same_store_shows_persisted_messages_and_usage():
    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(echo_provider()).model("m").store(store).build()
        s = await core.session("s").open()
        await s.turn("one").run()
        again = await core.session("s").open()
        assert texts(again) == ["one", "echo: one"]
        await again.turn("two").run()
        assert texts(await core.session("s").open()) == ["one", "echo: one", "two", "echo: two"]
    run(body())


def test_open_fresh_ignores_the_store_and_replaces_it_on_the_first_commit():
    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(echo_provider()).model("m").store(store).build()
        await (await core.session("s").open()).turn("old").run()
        fresh = await core.session("s").open_fresh()
        assert texts(fresh) == []
        await fresh.turn("new").run()
        assert texts(await core.session("s").open()) == ["new", "echo: new"]
    run(body())


@pytest.mark.parametrize("kind", ["memory", "duckdb"])
def test_a_fresh_open_does_not_drop_turns_another_kernel_committed_after_it(kind, tmp_path):
    """Kernel B runs ``%lash open s --fresh`` while kernel A keeps working on s. B's first
    turn used to replace the graph whatever A had committed meanwhile: A's turns dropped out
    of the session graph. Now B's turn is refused with one line and nothing is written; a
    fresh open made after A's turn starts over as asked."""
    from lash_nb._errors import HeadRevisionConflict
    from lash_nb.stores import DuckDBStore

    async def body():
        store = MemoryStore() if kind == "memory" else DuckDBStore(str(tmp_path / "s.duckdb"))
        kernel_a = LashCore.builder().provider(echo_provider()).model("m").store(store).build()
        kernel_b = LashCore.builder().provider(echo_provider()).model("m").store(store).build()
        a = await kernel_a.session("s").open()
        await a.turn("a1").run()
        b = await kernel_b.session("s").open_fresh()
        await a.turn("a2").run()  # A commits after B opened fresh
        with pytest.raises(HeadRevisionConflict, match="changed by another process"):
            await b.turn("b1").run()
        assert texts(await kernel_a.session("s").open()) == ["a1", "echo: a1", "a2", "echo: a2"]
        again = await kernel_b.session("s").open_fresh()
        await again.turn("b2").run()
        assert texts(await kernel_a.session("s").open()) == ["b2", "echo: b2"]
        if kind == "duckdb":
            await store.close()
    run(body())


def test_open_with_state_restores_messages_and_tool_membership_and_checks_the_id():
    async def body():
        core = LashCore.builder().provider(echo_provider()).model("m").tools(lookup).build()
        s = await core.session("s").open()
        await s.turn("hello").run()
        s.tools().set_membership("lookup", False)
        state = json.loads(json.dumps(s.export_state()))  # survives JSON
        other = LashCore.builder().provider(echo_provider()).model("m").tools(lookup).build()
        restored = await other.session("s").open_with_state(state)
        assert texts(restored) == ["hello", "echo: hello"]
        assert [t["member"] for t in restored.tools().all_tools()] == [False]
        with pytest.raises(StoreSessionMismatch):
            await other.session("elsewhere").open_with_state(state)
    run(body())


def test_open_fresh_starts_the_graph_over_but_keeps_the_tokens_already_spent():
    from lash_nb._core.usage import TokenUsage
    from lash_nb.providers import LlmPart, LlmResponse

    priced = FunctionProvider(lambda r: LlmResponse(parts=(LlmPart.text_part("ok"),),
                                                    usage=TokenUsage(7, 1)))

    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(priced).model("m").store(store).build()
        await (await core.session("s").open()).turn("old").run()
        fresh = await core.session("s").open_fresh()
        assert fresh.usage_report().usage == TokenUsage(7, 1)
        await fresh.turn("new").run()
        assert fresh.usage_report().usage == TokenUsage(14, 2)
        assert (await core.session("s").open()).usage_report().usage == TokenUsage(14, 2)
    run(body())


def test_active_path_only_residency_shows_only_the_active_branch():
    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(echo_provider()).model("m").store(store).build()
        s = await core.session("s").open()
        await s.turn("root").run()
        branch_point = s.read_view().nodes()[-1].node_id
        await s.turn("abandoned").run()
        s.branch_to(branch_point)
        await s.turn("kept").run()
        full = await core.session("s").open()
        assert len(full.state.graph.nodes()) == 6
        lean = await core.session("s").residency("active_path_only").open()
        assert len(lean.state.graph.nodes()) == 4
        assert texts(lean) == ["root", "echo: root", "kept", "echo: kept"]
    run(body())


def test_a_session_keeps_its_recorded_provider_and_an_explicit_provider_rebinds_it():
    async def body():
        store = MemoryStore()
        first = LashCore.builder().provider(echo_provider("alpha")).model("m").store(store).build()
        await (await first.session("s").open()).turn("hi").run()
        second = LashCore.builder().provider(echo_provider("beta")).model("m").store(store).build()
        s = await second.session("s").open()
        assert s.policy_snapshot().provider_id == "alpha"
        with pytest.raises(ProviderUnavailable, match="recorded with provider 'alpha'"):
            await s.turn("again").run()
        rebound = await second.session("s").provider(echo_provider("beta")).open()
        assert (await rebound.turn("again").run()).result.assistant_message() == "echo: again"
        assert rebound.policy_snapshot().provider_id == "beta"
    run(body())


def test_serialized_policy_names_the_provider_id_and_carries_no_provider_config():
    async def body():
        core = LashCore.builder().provider(echo_provider("p1")).model("m").build()
        s = await core.session("s").open()
        assert s.policy_snapshot().to_json() == {"provider_id": "p1", "model": "m",
                                                 "max_turns": 50, "system_prompt": None}
    run(body())


def test_a_second_runtime_gets_session_execution_busy_while_a_turn_runs():
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request):
        yield TextDelta("x")
        started.set()
        await release.wait()
        yield Completed(LlmResponse(parts=(LlmPart.text_part("x"),)))

    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(lambda r: slow(r))).model("m").store(store).build()
        a = await core.session("s").open()
        b = await core.session("s").open()
        task = asyncio.ensure_future(a.turn("long").run())
        await started.wait()
        with pytest.raises(SessionExecutionBusy, match="already running a turn"):
            await b.turn("collide").run()
        release.set()
        await task
        out = await b.turn("after").run()  # b refreshes from the store and goes on
        assert out.result.is_success()
        assert texts(b)[-4:] == ["long", "x", "after", "x"]
    run(body())


def test_observation_replays_deltas_and_committed_from_a_pre_turn_cursor():
    async def body():
        s = await LashCore.builder().provider(scripted("hello")).model("m").build().session("s").open()
        cursor = s.observe().current_observation().cursor
        await s.turn("hi").run()
        events = s.observe().resume_from_cursor(cursor)
        kinds = [e.kind for e in events]
        assert kinds[-1] == "committed"
        deltas = [e.activity.event.text for e in events if e.kind == "turn_activity"
                  and e.activity.type == "assistant_prose_delta"]
        assert deltas == ["hello"]
        assert events[-1].read_view.messages()[-1].text() == "hello"
    run(body())


def test_a_trimmed_cursor_gives_a_gap_and_a_foreign_cursor_is_an_error():
    async def body():
        core = LashCore.builder().provider(scripted("hello")).model("m").live_replay_bounds(1).build()
        s = await core.session("s").open()
        cursor = s.observe().current_observation().cursor
        await s.turn("hi").run()
        gap = s.observe().resume_from_cursor(cursor)
        assert gap.gap.reason == "trimmed"
        assert gap.gap.latest_cursor == gap.observation.cursor
        other = await core.session("t").open()
        with pytest.raises(CursorError, match="belongs to session 's'"):
            other.observe().resume_from_cursor(cursor)
        with pytest.raises(CursorError, match="malformed"):
            s.observe().resume_from_cursor("nonsense")
    run(body())


def test_a_cursor_from_another_process_is_a_gap_not_wrong_data():
    async def body():
        s = await LashCore.builder().provider(scripted("a")).model("m").build().session("s").open()
        await s.turn("one").run()
        old = "lashnb1:deadbeef:1:1:s"  # same session, position 1, another process' nonce
        result = s.observe().resume_from_cursor(old)
        assert result.gap.reason == "unavailable"
    run(body())


def test_subscribers_see_live_activity_then_the_commit():
    async def body():
        s = await LashCore.builder().provider(scripted("live")).model("m").build().session("s").open()
        cursor = s.observe().current_observation().cursor
        seen = []

        async def watch():
            async for ev in s.observe().subscribe_from_cursor(cursor):
                seen.append(ev.kind if ev.kind != "turn_activity" else ev.activity.type)
                if ev.kind == "committed":
                    return

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(0)
        await s.turn("go").run()
        await asyncio.wait_for(watcher, 2)
        assert seen[0] == "model_request_started" and seen[-1] == "committed"
        assert "assistant_prose_delta" in seen
    run(body())


def test_observation_reads_do_not_wait_for_a_running_turn():
    async def body():
        gate, started = asyncio.Event(), asyncio.Event()

        async def held(request):
            started.set()
            await gate.wait()
            yield Completed(LlmResponse(parts=(LlmPart.text_part("done"),)))

        core = LashCore.builder().provider(FunctionProvider(lambda r: held(r))).model("m").build()
        s = await core.session("s").open()
        task = asyncio.ensure_future(s.turn("x").run())
        await started.wait()  # the turn is inside its model call
        assert s.read_view().messages()[0].text() == "x"  # settled state, no waiting
        assert s.usage_report().entry_count == 0
        gate.set()
        await task
    run(body())


def test_tool_membership_gates_what_the_model_sees_and_bumps_the_generation():
    seen = []

    def model(request):
        seen.append([t.name for t in request.tools])
        return "ok"

    @tool
    def alpha() -> str:
        """A."""
        return "a"

    async def body():
        core = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(lookup, alpha).build()
        s = await core.session("s").open()
        admin = s.tools()
        gen0 = admin.state()["generation"]
        await s.turn("1").run()
        gen1 = admin.set_membership("lookup", False)
        await s.turn("2").run()
        assert seen == [["alpha", "lookup"], ["alpha"]]
        assert gen1 == gen0 + 1
        assert [e["id"] for e in admin.catalog()] == ["tool:alpha"]
        with pytest.raises(KeyError, match="unknown tool 'nope'"):
            admin.set_membership("nope", True)
        source = admin.add_provider(lambda_tool)
        assert "lambda_tool" in [e["name"] for e in admin.catalog()]
        admin.remove_source(source)
        assert [e["name"] for e in admin.catalog()] == ["alpha"]
    run(body())


@tool
def lambda_tool() -> str:
    """Added later."""
    return "l"


def test_membership_persists_across_reopen():
    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(echo_provider()).model("m").tools(lookup).store(store).build()
        s = await core.session("s").open()
        s.tools().set_membership("lookup", False)
        await s.tools().persist()
        again = await core.session("s").open()
        assert [t["member"] for t in again.tools().all_tools()] == [False]
    run(body())


def test_tool_manifest_schema_comes_from_hints_and_docstring():
    @tool
    def search(query: str, limit: int = 5, exact: bool | None = None) -> list[str]:
        """Search the index.

        Args:
            query: what to look for
            limit: at most this many hits
        """
        return []

    m = search.manifest
    assert m.id == "tool:search" and m.description == "Search the index."
    assert m.input_schema == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "limit": {"type": "integer", "description": "at most this many hits", "default": 5},
            "exact": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": None},
        },
        "required": ["query"],
        "additionalProperties": False,  # unknown arguments are refused (validated calls)
    }


def test_child_sessions_record_their_parent():
    async def body():
        store = MemoryStore()
        core = LashCore.builder().provider(echo_provider()).model("m").store(store).build()
        child = await core.session("c1").parent("s1").open()
        await child.turn("hi").run()
        metas = {m.session_id: m.parent_session_id for m in await store.list_sessions()}
        assert metas == {"c1": "s1"}
    run(body())


def test_the_sync_mirror_works_inside_a_running_event_loop():
    core = LashCore.builder().provider(echo_provider()).model("m").build()

    async def inside_a_running_loop():
        # what a notebook cell does: plain code while the kernel loop runs
        s = run_sync(core.session("sync").open())
        out = run_sync(s.turn("hi").run())
        return out.result.assistant_message()

    assert run(inside_a_running_loop()) == "echo: hi"


def test_a_handle_whose_session_was_rebound_fails_before_its_next_turn_naming_the_provider():
    """Mirrors lash ``refreshed_head_provider_id_mismatch_fails_before_turn``: handle A opened
    the session with provider ``prov-a``; handle B rebinds it to ``prov-b`` and commits a turn.
    A's next turn re-reads the head and fails naming ``prov-b``; it never writes ``prov-a``
    back."""
    import pytest

    from lash_nb._errors import ProviderUnavailable
    from lash_nb.testing import scripted

    async def body():
        core = LashCore.builder().provider(scripted("from a", kind="prov-a")).model("m").build()
        a = await core.session("s").open()
        await a.turn("first").run()
        b = await core.session("s").provider(scripted("from b", kind="prov-b")).open()
        await b.turn("rebinding turn").run()
        with pytest.raises(ProviderUnavailable, match="prov-b"):
            await a.turn("must not run").run()
        with pytest.raises(ProviderUnavailable, match="prov-b"):
            await a.turn("still must not run").run()
        stored = await core.store.load_session("s")
        assert stored.meta.provider_id == "prov-b"
        texts = [m.text() for m in (await core.session("s").provider(
            scripted("x", kind="prov-b")).open()).read_view().messages()]
        assert "must not run" not in texts and "still must not run" not in texts
    asyncio.run(body())


def test_the_live_replay_keeps_its_count_and_age_bounds_on_every_append():
    """The bounds are applied as events arrive (the append trims in place): the newest
    ``max_events`` stay, and an event older than ``max_age_s`` is dropped."""
    from lash_nb._runtime.replay import LiveReplayStore

    store = LiveReplayStore(max_events=3, max_age_s=120.0)
    for i in range(5):
        store.append("s", i, "queue_changed", queue_kind="enqueued", batch_ids=(f"b{i}",))
        assert len(store._buffers["s"].events) == min(i + 1, 3)  # trimmed by the append itself
    kept = store.replay_after(store.cursor("s", 0, 0), "s")
    assert not isinstance(kept, list)  # positions 1 and 2 are gone: a gap, not wrong data
    assert kept.reason == "trimmed"
    events = store.replay_after(store.cursor("s", 0, 2), "s")
    assert isinstance(events, list)
    assert [e.batch_ids for e in events] == [("b2",), ("b3",), ("b4",)]
    # built on read (nobody subscribed): each carries the cursor of its own position
    assert [(e.revision, e.cursor) for e in events] == [
        (i, f"lashnb1:{store.nonce}:{i}:{i + 1}:s") for i in (2, 3, 4)]
    assert store.replay_after(events[0].cursor, "s") == events[1:]

    aged = LiveReplayStore(max_events=10, max_age_s=-1.0)  # every event is already too old
    aged.append("s", 1, "queue_changed", queue_kind="enqueued", batch_ids=("x",))
    assert len(aged._buffers["s"].events) == 0
    gap = aged.replay_after(aged.cursor("s", 0, 0), "s")
    assert not isinstance(gap, list)
    assert gap.reason == "trimmed"
