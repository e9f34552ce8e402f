"""Child sessions: the parent relation, child_store_factory, and a tool that runs a sub-agent
whose usage rolls up into the parent turn (lash ``ChildUsage`` / ``children_usage``).

Each test names the lash test or invariant it mirrors (``crates/lash/src/tests/
core_session_builder.rs``, spec §5).
"""

from __future__ import annotations

import asyncio

import pytest
from lifecycle_support import STORE_KINDS, echo_core, run, store_for

from lash_nb import LashCore, TokenUsage, ToolContext, run_child, tool
from lash_nb.errors import ConfigurationError
from lash_nb.events import ChildActivity, ChildUsage, ToolCallCompleted
from lash_nb.providers import FunctionProvider, LlmPart, LlmResponse
from lash_nb.stores import DuckDBStore, MemoryStore
from lash_nb.testing import tool_call


@tool
async def delegate(question: str, context: ToolContext) -> str:
    """Ask a sub-agent."""
    result = await run_child(context, f"sub: {question}")
    return "child said " + result.assistant_output.safe_text


PARENT_CALL = (100, 10)  # every parent model call
CHILD_CALL = (7, 3)  # every child model call


def agent(request):
    """The parent asks the tool once, then answers; the child answers at once."""
    first = request.messages[0].text() if request.messages else ""
    if first.startswith("sub: "):
        return LlmResponse(parts=(LlmPart.text_part("42"),), usage=TokenUsage(*CHILD_CALL))
    if any(m.tool_results() for m in request.messages):
        return LlmResponse(parts=(LlmPart.text_part("the answer is 42"),),
                           usage=TokenUsage(*PARENT_CALL))
    return LlmResponse(parts=(tool_call("delegate", '{"question": "6*7"}', "call_1"),),
                       usage=TokenUsage(*PARENT_CALL))


def agent_core(store, **kw):
    b = LashCore.builder().provider(FunctionProvider(agent, kind="function")).model("m") \
        .store(store).tools(delegate)
    if "child_store_factory" in kw:
        b = b.child_store_factory(kw["child_store_factory"])
    return b.build()


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_parent_relation_is_recorded_and_survives_reopen(kind, tmp_path, request):
    """lash ``SessionBuilder::parent``: the child's row names its parent, after a reopen too
    (the store side is the conformance check ``parent_session_is_recorded_durably``)."""
    async def body():
        core = echo_core(store_for(kind, tmp_path, request))
        kid = await core.session("kid").parent("root").open()
        await kid.turn("hi").run()
        await kid.close()
        again = await core.session("kid").open()
        assert again.state.parent_session_id == "root"
        assert {m.session_id: m.parent_session_id for m in await core.list_sessions()} == \
            {"kid": "root"}
        await core.close()
    run(body())


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_tool_runs_a_child_session_and_its_usage_rolls_up(kind, tmp_path, request):
    """lash invariant 21 (``total_usage()`` sums parent usage and all ``children_usage``) and
    ``TurnEvent::ChildUsage``: the tool's sub-agent is a child session of the caller; its
    tokens are the parent turn's children_usage, ChildUsage events, and ledger rows of the
    parent session under ``child:<id>``."""
    async def body():
        store = store_for(kind, tmp_path, request)
        core = agent_core(store)
        s = await core.session("boss").open()
        out = await s.turn("what is 6*7?").run()
        r = out.result
        assert r.assistant_message() == "the answer is 42"
        assert r.tool_calls[0].output == "child said 42"
        child_id = "boss.call_1"
        assert r.usage == TokenUsage(200, 20)  # two parent model calls
        assert [(e.source, e.model, e.usage) for e in r.children_usage] == \
            [(f"child:{child_id}", "m", TokenUsage(7, 3))]
        assert r.total_usage() == TokenUsage(207, 23)
        events = [a.event for a in out.activities]
        assert [e for e in events if isinstance(e, ChildUsage)] == \
            [ChildUsage(child_id, f"child:{child_id}", "m", TokenUsage(7, 3))]
        nested = [e for e in events if isinstance(e, ChildActivity)]
        assert {e.call_id for e in nested} == {"call_1"}
        assert "".join(e.activity.get("text", "") for e in nested
                       if e.activity["type"] == "assistant_prose_delta") == "42"
        report = s.usage_report()
        assert report.by_source == {"child:boss.call_1": TokenUsage(7, 3),
                                    "turn": TokenUsage(200, 20)}
        reopened = await core.session("boss").open()
        assert reopened.usage_report().by_source == report.by_source
        (stored,) = await store.load_turns("boss")  # the turn record keeps children_usage
        assert stored.result["children_usage"] == [
            {"source": "child:boss.call_1", "model": "m",
             "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 0,
                       "cache_write_input_tokens": 0, "reasoning_output_tokens": 0}}]
        kid = await core.session(child_id).open()
        assert kid.state.parent_session_id == "boss"
        assert [m.text() for m in kid.read_view().messages()] == ["sub: 6*7", "42"]
        assert kid.usage_report().usage == TokenUsage(7, 3)
        await core.close()
    run(body())


def test_child_usage_reaches_the_usage_frame_of_the_parent(tmp_path):
    """The usage frames (what ``%lash usage`` shows) read the parent's child rows; a total
    over all sessions counts the child's tokens once (ADR 0045)."""
    from lash_nb import reports

    async def body():
        core = agent_core(DuckDBStore(str(tmp_path / "u.duckdb")))
        s = await core.session("boss").open()
        await s.turn("what is 6*7?").run()
        by_source = reports.usage_frame(s, by="source")
        rows = {r["source"]: (r["input_tokens"], r["output_tokens"])
                for r in by_source.to_dict("records")}
        assert rows == {"turn": (200, 20), "child:boss.call_1": (7, 3)}
        everything = reports.usage_frame(core.store, by="session")
        totals = {r["session_id"]: r["input_tokens"] for r in everything.to_dict("records")}
        assert totals == {"boss": 200, "boss.call_1": 7}
        await core.close()
    run(body())


def test_core_child_store_factory_is_used_for_child_sessions_only(tmp_path):
    """lash ``core_store_factory_is_used_for_managed_child_sessions`` and
    ``explicit_root_store_keeps_configured_child_store_factory``: the root uses the core's
    store and never asks the factory; the child (run by the tool) lives where the factory
    says; an explicit ``.store(...)`` beats the factory
    (``explicit_session_store_takes_precedence_over_core_store_factory``)."""
    async def body():
        asked: list[str] = []
        kids = MemoryStore()

        def factory(session_id):
            asked.append(session_id)
            return kids

        root_store = MemoryStore()
        core = agent_core(root_store, child_store_factory=factory)
        s = await core.session("boss").open()
        await s.turn("what is 6*7?").run()
        assert asked == ["boss.call_1"]
        assert [m.session_id for m in await root_store.list_sessions()] == ["boss"]
        assert [(m.session_id, m.parent_session_id) for m in await kids.list_sessions()] == \
            [("boss.call_1", "boss")]
        explicit = MemoryStore()
        other = await core.session("other-kid").parent("boss").store(explicit).open()
        await other.turn("sub: hi").run()
        assert asked == ["boss.call_1"]
        assert [m.session_id for m in await explicit.list_sessions()] == ["other-kid"]
    run(body())


def test_child_store_factory_path_is_opened_once_and_closed_with_the_core(tmp_path):
    """A factory returning a DuckDB path: every child of the core shares one store object
    for it, closed by ``core.close()``."""
    async def body():
        path = str(tmp_path / "children.duckdb")
        core = agent_core(MemoryStore(), child_store_factory=lambda sid: path)
        s = await core.session("boss").open()
        await s.turn("one").run()
        await s.turn("two").run()
        store = core.child_store("x")
        assert store is core.child_store("y")
        assert sorted(m.session_id for m in await store.list_sessions()) == ["boss.call_1"]
        await core.close()
        check = DuckDBStore(path)
        assert [m.parent_session_id for m in await check.list_sessions()] == ["boss"]
        await check.close()
    run(body())


def test_run_child_outside_a_tool_call_is_one_line_error():
    """``run_child`` needs the context of a running tool call."""
    async def body():
        with pytest.raises(ConfigurationError, match="inside a tool call"):
            await run_child(ToolContext("s", "t", "c"), "hi")
    run(body())


def test_stopping_the_parent_turn_stops_the_child_turn():
    """lash cancel: a stop of the parent turn while its tool's sub-agent runs ends the child
    turn ``stopped: cancelled`` too, both commit, and the child's usage is rolled up."""
    async def body():
        entered = asyncio.Event()

        async def slow_agent(request):
            first = request.messages[0].text()
            if first.startswith("sub: "):
                entered.set()
                await asyncio.sleep(3600)
            return LlmResponse(parts=(tool_call("delegate", '{"question": "q"}', "call_9"),))

        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(slow_agent, kind="function")) \
            .model("m").store(store).tools(delegate).build()
        s = await core.session("boss").open()
        task = asyncio.ensure_future(s.turn("go").run())
        await asyncio.wait_for(entered.wait(), 60)
        s.cancel_running_turns("user")
        out = await asyncio.wait_for(task, 60)
        assert out.result.outcome.reason == "cancelled"
        kid_turns = await store.load_turns("boss.call_9")
        assert [t.stop_reason for t in kid_turns] == ["cancelled"]
        completed = [a.event for a in out.activities if isinstance(a.event, ToolCallCompleted)]
        assert len(completed) == 1
        # a Stop loses no usage: the cut child call is billed at an estimate (ADR 20) on the
        # child's books, and the stopped parent turn still rolls it up
        kid = await core.session("boss.call_9").open()
        billed = kid.usage_report().usage
        assert billed.input_tokens > 0
        assert [(e.source, e.usage) for e in out.result.children_usage] == \
            [("child:boss.call_9", billed)]
        assert s.usage_report().by_source["child:boss.call_9"] == billed
        await core.close()
    run(body())


def test_a_cancelled_caller_stops_its_child_turn_and_keeps_the_books():
    """The task awaiting a child turn is cancelled (a sandbox cell cut while its
    ``llm_query`` waits): the child turn commits ``stopped: cancelled``, its usage is rolled
    up to the parent under the caller's row, and the cancel reaches the caller."""
    from lash_nb._core.cancel import CancellationToken
    from lash_nb._runtime.children import ChildScope, run_child_turn

    async def body():
        entered = asyncio.Event()

        async def slow(request):
            entered.set()
            await asyncio.sleep(3600)

        store = MemoryStore()
        core = LashCore.builder().provider(FunctionProvider(slow, kind="function")) \
            .model("m").store(store).build()
        emitted = []
        scope = ChildScope(core, "boss", "t1", lambda e, cid: emitted.append((e, cid)),
                           CancellationToken())
        child = await core.session("boss.t1.q1").parent("boss").open()
        task = asyncio.ensure_future(run_child_turn(
            scope, child, "question", call_id="q1", correlation_id="cell:t1:1"))
        await asyncio.wait_for(entered.wait(), 60)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [t.stop_reason for t in await store.load_turns("boss.t1.q1")] == ["cancelled"]
        kid = await core.session("boss.t1.q1").open()
        billed = kid.usage_report().usage
        assert billed.input_tokens > 0
        assert [(e.source, e.usage) for e in scope.usage] == [("child:boss.t1.q1", billed)]
        assert [(e.child_session_id, cid) for e, cid in emitted if isinstance(e, ChildUsage)] \
            == [("boss.t1.q1", "cell:t1:1")]
        assert {cid for _, cid in emitted} == {"cell:t1:1"}
        await core.close()
    run(body())
