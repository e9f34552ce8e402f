"""Tool approval through the API: policies (``always`` / ``ask`` / ``never``) on ``@tool``, on
MCP servers and per session; an ``ask`` call answered by a callback, by a script awaiting
the question, or cut by a stop; a worker with nobody to ask; the decision kept with the call.

The user's situations: a data scientist marks ``drop_table`` ``ask`` and expects nothing to
happen until someone says yes; a script approves from its own loop; a stop while the turn
waits must end the turn, not hang it; the next morning the record still says who decided.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from lash_nb import ApprovalDecision, LashCore, tool
from lash_nb.errors import ConfigurationError
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore, MemoryStore
from lash_nb.testing import tool_call

DENIED_BY_POLICY = ("the call to tool 'drop_table' was denied by policy (never run); do not "
                    "call it again with the same arguments, answer without it or ask the user")


def run(coro):
    return asyncio.run(coro)


def make_drop(ran, approval="ask"):
    @tool(approval=approval)
    def drop_table(name: str) -> str:
        """Drop a table."""
        ran.append(name)
        return f"dropped {name}"
    return drop_table


def model_calling(name="drop_table", args='{"name": "sales"}'):
    """Calls the tool once, then answers with what the tool result said."""
    def model(request):
        results = request.messages[-1].tool_results()
        if results:
            return "model read: " + results[0].content
        return [tool_call(name, args, "c1")]
    return model


def session(model, *tools, store=None):
    b = LashCore.builder().provider(FunctionProvider(model)).model("m").tools(*tools)
    if store is not None:
        b = b.store(store)
    return b.build().session("s").open()


async def next_question(s):
    return await s.approvals().next(timeout=30)


def test_never_denies_without_running_and_the_model_reads_the_denial():
    ran = []

    async def body():
        s = await session(model_calling(), make_drop(ran, "never"))
        out = await s.turn("clean up").run()
        call = out.result.tool_calls[0]
        assert out.result.assistant_message() == "model read: " + DENIED_BY_POLICY
        assert call.success is False and call.interrupted is False
        assert (call.approval.decision, call.approval.by, call.approval.policy) == (
            "denied", "policy", "never")
        assert call.approval.asked_at_ms is None
        assert call.to_json()["approval"]["by"] == "policy"
    run(body())
    assert ran == []


def test_always_runs_without_asking_and_records_no_approval():
    ran = []

    async def body():
        s = await session(model_calling(), make_drop(ran, "always"))
        s.approvals().set_approver(lambda r: pytest.fail("always must not ask"))
        out = await s.turn("clean up").run()
        assert out.result.tool_calls[0].approval is None
        assert "approval" not in out.result.tool_calls[0].to_json()
    run(body())
    assert ran == ["sales"]


def test_ask_waits_until_a_script_approves_then_the_tool_runs():
    ran = []

    async def body():
        s = await session(model_calling(), make_drop(ran))
        turn = asyncio.ensure_future(s.turn("clean up").run())
        q = await next_question(s)
        assert (q.tool, q.args, q.call_id, q.session_id) == ("drop_table", {"name": "sales"}, "c1", "s")
        assert ran == []  # nothing ran while the question was open
        assert [r.call_id for r in s.approvals().pending()] == ["c1"]
        assert q.approve() is True
        assert q.deny("too late") is False  # the first decision wins
        out = await asyncio.wait_for(turn, 30)
        assert out.result.assistant_message() == "model read: dropped sales"
        a = out.result.tool_calls[0].approval
        assert (a.decision, a.by, a.policy) == ("approved", "api", "ask")
        assert a.asked_at_ms is not None and a.at_ms >= a.asked_at_ms
        assert s.approvals().pending() == []
        assert s.approvals().decide("c1", True) is False  # the turn is over: nothing to decide
    run(body())
    assert ran == ["sales"]


def test_a_denied_ask_returns_the_reason_to_the_model_and_the_tool_never_runs():
    ran = []

    async def body():
        s = await session(model_calling(), make_drop(ran))
        turn = asyncio.ensure_future(s.turn("clean up").run())
        await next_question(s)
        assert s.approvals().decide("c1", False, reason="not on a Friday") is True
        out = await asyncio.wait_for(turn, 30)
        assert out.result.assistant_message() == (
            "model read: the call to tool 'drop_table' was denied by the api: not on a Friday; "
            "do not call it again with the same arguments, answer without it or ask the user")
        call = out.result.tool_calls[0]
        assert call.success is False
        assert (call.approval.decision, call.approval.reason) == ("denied", "not on a Friday")
    run(body())
    assert ran == []


@pytest.mark.parametrize("answer, decision", [(True, "approved"), (False, "denied")])
def test_an_approver_callback_answers_sync_or_async(answer, decision):
    ran = []
    seen = []

    async def approver(request):
        seen.append((request.tool, request.args))
        await asyncio.sleep(0)
        return answer

    async def body():
        s = await session(model_calling(), make_drop(ran))
        s.approvals().set_approver(approver)
        out = await s.turn("clean up").run()
        assert out.result.tool_calls[0].approval.decision == decision
        assert out.result.tool_calls[0].approval.by == "api"
    run(body())
    assert seen == [("drop_table", {"name": "sales"})]
    assert ran == (["sales"] if answer else [])


def test_an_approver_that_raises_denies_and_says_so():
    ran = []

    def approver(request):
        raise KeyError("oops")

    async def body():
        s = await session(model_calling(), make_drop(ran))
        s.approvals().set_approver(approver)
        out = await s.turn("clean up").run()
        a = out.result.tool_calls[0].approval
        assert (a.decision, a.reason) == ("denied", "the approver failed (KeyError)")
    run(body())
    assert ran == []


def test_an_approver_that_fails_with_a_credential_in_its_error_logs_it_without(caplog):
    # an approver that posts to a chat webhook fails with the request in its error; the
    # warning is printed under the notebook cell (and saved with it)
    ran = []

    def approver(request):
        raise RuntimeError("POST https://hooks.example/approve?token=whk-55aa66bb77 failed; "
                           "sent Authorization: Bearer xoxb-1122-3344-ffee with it")

    async def body():
        s = await session(model_calling(), make_drop(ran))
        s.approvals().set_approver(approver)
        await s.turn("clean up").run()

    import logging
    with caplog.at_level(logging.WARNING, logger="lash_nb.tools"):
        run(body())
    [line] = [r.getMessage() for r in caplog.records if r.name == "lash_nb.tools"]
    assert line == ("the approver failed for tool drop_table: RuntimeError: POST "
                    "https://hooks.example/approve?token=[redacted] failed; sent "
                    "Authorization: [redacted] with it")
    assert ran == []


def test_an_approver_answering_none_leaves_the_question_to_the_script():
    ran = []

    async def body():
        s = await session(model_calling(), make_drop(ran))
        s.approvals().set_approver(lambda r: None)
        turn = asyncio.ensure_future(s.turn("clean up").run())
        q = await next_question(s)
        q.approve(by="user")
        out = await asyncio.wait_for(turn, 30)
        assert out.result.tool_calls[0].approval.by == "user"
    run(body())
    assert ran == ["sales"]


def test_stop_while_asking_cancels_the_turn_and_closes_the_question():
    ran = []

    async def body():
        s = await session(model_calling(), make_drop(ran))
        turn = asyncio.ensure_future(s.turn("clean up").run())
        q = await next_question(s)
        assert s.cancel_running_turns("widget_stop") == 1
        out = await asyncio.wait_for(turn, 30)
        assert str(out.result.outcome) == "stopped: cancelled"
        call = out.result.tool_calls[0]
        assert call.interrupted is True
        assert (call.approval.decision, call.approval.by) == ("cancelled", "widget_stop")
        # whoever awaited the question hears how it ended; a late click changes nothing
        decision = await asyncio.wait_for(q, 5)
        assert decision.decision == "cancelled"
        assert q.approve() is False
        assert s.approvals().pending() == []
        # the session is usable: the next turn asks again and runs when approved
        s.approvals().set_approver(lambda r: True)
        out2 = await s.turn("again").run()
        assert out2.result.tool_calls[0].approval.decision == "approved"
    run(body())
    assert ran == ["sales"]


def test_session_default_and_overrides_resolve_in_order():
    ran = []

    @tool
    def plain(x: int) -> int:
        ran.append(("plain", x))
        return x

    @tool(approval="always")
    def trusted(x: int) -> int:
        ran.append(("trusted", x))
        return x

    def model(request):
        if request.messages[-1].tool_results():
            return " | ".join(p.content for p in request.messages[-1].tool_results())
        return [tool_call("plain", '{"x": 1}', "a"), tool_call("trusted", '{"x": 2}', "b")]

    async def body():
        s = await session(model, plain, trusted)
        a = s.approvals()
        a.set_policy("never")  # the default: tools without their own policy
        assert await ok_by_tool(s) == {"plain": False, "trusted": True}
        a.set_policy("never", tool="trusted")  # a session override beats the tool's own
        a.set_policy("always", tool="plain")
        assert await ok_by_tool(s) == {"plain": True, "trusted": False}
        assert a.policies() == {"*": "never", "trusted": "never", "plain": "always"}
        a.clear_policy("trusted")
        assert await ok_by_tool(s) == {"plain": True, "trusted": True}
    run(body())
    assert sorted(ran) == [("plain", 1), ("plain", 1), ("trusted", 2), ("trusted", 2)]


async def ok_by_tool(s):
    out = await s.turn("go").run()
    return {c.tool: c.success for c in out.result.tool_calls}


def test_invalid_arguments_under_ask_are_refused_without_asking():
    ran = []

    async def body():
        s = await session(model_calling(args='{"nom": "x"}'), make_drop(ran))
        s.approvals().set_approver(lambda r: pytest.fail("a call that cannot run is not asked about"))
        out = await s.turn("clean up").run()
        text = out.result.assistant_message()
        assert text.startswith("model read: invalid arguments for tool 'drop_table': name: Field required")
        assert out.result.tool_calls[0].approval is None
    run(body())
    assert ran == []


def test_bad_policies_are_one_line_errors():
    with pytest.raises(ConfigurationError,
                       match=r"^@tool approval of 'f' must be 'always', 'ask' or 'never', got 'maybe'$"):
        def f() -> int:
            return 1
        tool(approval="maybe")(f)
    with pytest.raises(ConfigurationError, match=r"^approval must be 'always', 'ask' or 'never', got 'yes'$"):
        run(_set_policy("yes"))
    from lash_nb import MCPServer
    with pytest.raises(ConfigurationError, match=r"approval of MCP server 'fs'\['write'\] must be"):
        MCPServer.stdio("fs", "true", approval={"write": "sometimes"})


async def _set_policy(policy):
    s = await session(lambda r: "hi")
    s.approvals().set_policy(policy)


def test_mcp_server_policy_by_server_and_by_tool_name():
    from lash_nb import MCPServer

    server = MCPServer.stdio("fs", "true", prefix="fs_", approval={"write_file": "ask", "*": "always"})
    server._names = {"fs_write_file": "write_file", "fs_read_file": "read_file"}
    assert server.approval_for("fs_write_file").value == "ask"  # by the server's tool name
    assert server.approval_for("fs_read_file").value == "always"  # the server's "*"
    assert MCPServer.stdio("x", "true").approval_for("any") is None  # the session decides
    from lash_nb._runtime.approval import Approvals
    a = Approvals()
    a.set_policy("never", tool="fs")  # a session override by server name
    assert a.policy_for("fs_read_file", "live:1", server).value == "never"


def test_a_worker_denies_ask_calls_it_cannot_ask_anyone_about(tmp_path):
    from lash_nb._runtime.worker import Worker

    ran = []
    drop = make_drop(ran)

    async def body():
        store = MemoryStore()
        notebook = LashCore.builder().provider(FunctionProvider(lambda r: "hi")).model("m").store(
            store).build()
        worker_core = LashCore.builder().provider(FunctionProvider(model_calling())).model(
            "m").tools(drop).store(store).build()
        s = await notebook.session("s").open()
        await s.enqueue("clean up overnight").send()
        stats = await asyncio.wait_for(
            Worker(worker_core, session_id="s", poll_s=0.01, log=lambda m: None).run(max_idle_s=0.1), 60)
        assert stats.turns == 1
        [rec] = await store.load_turns("s")
        [call] = rec.result["tool_calls"]
        assert call["approval"]["by"] == "worker" and call["approval"]["decision"] == "denied"
        assert "no one is there to give it" in call["output"]
    run(body())
    assert ran == []


def test_the_decision_is_durable_in_a_duckdb_file_and_its_events(tmp_path):
    ran = []
    path = str(tmp_path / "approvals.duckdb")

    async def first():
        s = await session(model_calling(), make_drop(ran), store=path)
        turn = asyncio.ensure_future(s.turn("clean up").run())
        q = await next_question(s)
        q.deny("ask finance first", by="user")
        out = await asyncio.wait_for(turn, 30)
        await s.core.close()
        return out.result.turn_id

    turn_id = run(first())

    async def reopened():
        store = DuckDBStore(path)
        try:
            [rec] = await store.load_turns("s")
            [call] = rec.result["tool_calls"]
            approval = ApprovalDecision.from_json(call["approval"])
            assert (approval.decision, approval.by, approval.reason) == (
                "denied", "user", "ask finance first")
            events = [a.to_json() for a in await store.load_events("s", turn_id)]
            states = [(e["state"], e.get("by")) for e in events if e["type"] == "tool_approval"]
            assert states == [("pending", None), ("denied", "user")]
            frame = store.query("SELECT output FROM tool_calls")
            assert "ask finance first" in json.loads(frame["output"][0])
        finally:
            await store.close()
    run(reopened())
    assert ran == []


def approve_scratch(request):
    """A worker's approver (``--approver tests.test_tool_approval:approve_scratch``)."""
    return request.args["name"].startswith("scratch_")


def test_a_worker_given_an_approver_runs_what_it_approves(tmp_path):
    from lash_nb._runtime.worker import load_approver, run_worker

    path = str(tmp_path / "w.duckdb")

    async def body():
        core = LashCore.builder().provider(FunctionProvider(lambda r: "hi")).model("m").store(
            path).build()
        s = await core.session("s").open()
        await s.enqueue("drop_table 'scratch_1'").send()
        await core.close()
        # what python -m lash_nb worker --tools ... --approver <module>:approve_scratch does
        approver = load_approver(f"{__name__}:approve_scratch")
        stats = await run_worker(path, session_id="s", provider=FunctionProvider(
            model_calling(args='{"name": "scratch_1"}')), model="m", tools=[make_drop(ran)],
            concurrency=1, poll_s=0.01, grace_s=5, max_idle_s=0.1, approver=approver)
        assert stats.turns == 1
        store = DuckDBStore(path)
        try:
            [rec] = await store.load_turns("s")
            [call] = rec.result["tool_calls"]
            assert (call["approval"]["decision"], call["approval"]["by"]) == ("approved", "api")
        finally:
            await store.close()

    ran = []
    run(body())
    assert ran == ["scratch_1"]
    with pytest.raises(SystemExit, match=r"^--approver takes module:attribute, got 'nocolon'$"):
        load_approver("nocolon")
    with pytest.raises(SystemExit, match=r"is a int, not a callable$"):
        load_approver(f"{__name__}:NOT_CALLABLE")


NOT_CALLABLE = 3


def test_stop_with_one_call_asking_and_one_running_settles_both():
    ran = []
    started = asyncio.Event()

    @tool
    async def slow(x: int) -> int:
        started.set()
        await asyncio.sleep(3600)
        return x

    def model(request):
        if request.messages[-1].tool_results():
            return "done"
        return [tool_call("drop_table", '{"name": "sales"}', "a"), tool_call("slow", '{"x": 1}', "b")]

    async def body():
        s = await session(model, make_drop(ran), slow)
        turn = asyncio.ensure_future(s.turn("both").run())
        await next_question(s)
        await asyncio.wait_for(started.wait(), 30)
        s.cancel_running_turns("api")
        out = await asyncio.wait_for(turn, 30)
        calls = {c.call_id: c for c in out.result.tool_calls}
        assert str(out.result.outcome) == "stopped: cancelled"
        assert calls["a"].interrupted and calls["b"].interrupted
        assert (calls["a"].approval.decision, calls["a"].approval.by) == ("cancelled", "api")
        assert calls["b"].approval is None
        # the tool results the model would read next time: both interrupted, none lost
        results = s.read_view().messages()[-1].tool_results()
        assert sorted(p.tool_call_id for p in results) == ["a", "b"]
    run(body())
    assert ran == []
