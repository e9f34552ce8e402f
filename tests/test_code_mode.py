"""Code mode end to end: a scripted model (FunctionProvider) writes cells that run in one
sandbox kernel shared by this module (started once; each session resets its variables)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from lash_nb import LashCore, TokenUsage, run_sync, tool
from lash_nb._notebook.widgets.fold import TurnFold
from lash_nb._runtime.code_mode.sandbox import Sandbox, SandboxLimits
from lash_nb.providers import FunctionProvider, LlmPart, LlmRequest, LlmResponse
from lash_nb.stores import DuckDBStore

# A roomy wall time for the tests that are not about it: a cell that imports matplotlib or
# unpickles a DataFrame took more than 4 s on a loaded CI machine (the whole suite and its
# lowest run side by side) and was cut. The tests about the wall time tighten it (`tight`).
LIMITS = SandboxLimits(cell_wall_s=120.0, memory_bytes=2 * 2**30, interrupt_grace_s=4.0,
                       output_chars=5000)
TIGHT = dataclasses.replace(LIMITS, cell_wall_s=4.0)


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(LIMITS)
    run_sync(sb.start())
    yield sb
    run_sync(sb.close())


@pytest.fixture
def tight(sandbox):
    """The module's sandbox with a 4 s wall time for this test only."""
    sandbox.limits = TIGHT
    yield sandbox
    sandbox.limits = LIMITS


def cells(*replies: str):
    """A model that answers with these replies in order, one per call of the main loop."""

    def model(request: LlmRequest) -> str:
        return replies[min(steps(request), len(replies) - 1)]

    return model


def steps(request: LlmRequest) -> int:
    """Cells run and reminders given since the user's prompt (the model's step in this turn)."""
    msgs = list(request.messages)
    start = max(i for i, m in enumerate(msgs) if m.role.value == "user" and m.origin is None)
    return sum(1 for m in msgs[start:] if m.origin in ("code_observation", "code_protocol"))


def cell(code: str, prose: str = "") -> str:
    return f"{prose}\n<python>\n{code}\n</python>\n"


def observations(session) -> list[str]:
    return [m.text() for m in session.read_view().messages() if m.origin == "code_observation"]


def completed(out) -> list[dict]:
    return [a.to_json() for a in out.activities if a.type == "code_cell_completed"]


async def open_code(sandbox, model, *, tools=(), store=None, session_id="s", **shares):
    b = LashCore.builder().provider(FunctionProvider(model))
    if tools:
        b = b.tools(*tools)
    if store is not None:
        b = b.store(store)
    core = b.build()
    return await core.session(session_id).mode("code", sandbox=sandbox).share(**shares).open()


def test_a_cell_prints_an_observation_and_submit_finishes_with_the_value(sandbox):
    df = pd.DataFrame({"city": ["Oslo", "Paris", "Oslo"], "sales": [3, 5, 4]})
    model = cells(cell("print(df.groupby('city')['sales'].sum().to_dict())"),
                  cell("submit({'Oslo': 7, 'Paris': 5})"))

    async def go():
        s = await open_code(sandbox, model, df=df)
        out = await s.turn("sales per city?").run()
        return s, out

    s, out = run_sync(go())
    assert str(out.result.outcome) == "finished: final_value"
    assert out.result.outcome.value == {"Oslo": 7, "Paris": 5}
    assert observations(s)[0] == "[cell 1 ok]\n{'Oslo': 7, 'Paris': 5}"
    rows = completed(out)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[1]["final_value"] == {"Oslo": 7, "Paris": 5}
    assert '"Oslo": 7' in out.result.assistant_output.safe_text
    (started,) = [a.event for a in out.activities if a.type == "code_sandbox_started"]
    assert [x["name"] for x in started.shared] == ["df"]
    assert started.note is None  # the session's first turn: nothing to lose


def test_a_figure_a_cell_shows_is_kept_as_a_png_for_the_widget_and_the_record(sandbox):
    pytest.importorskip("matplotlib")
    code = ("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('sales')\n"
            "plt.show()")
    s, out = run_sync(_turn(sandbox, cells(cell(code), cell("submit('drawn')")), "plot",
                            keep=True))
    assert "[1 image(s) shown to the user; you get their text form only]" in observations(s)[0]
    displays = completed(out)[0]["displays"]
    assert [sorted(d) for d in displays] == [["image/png", "text/plain"]]
    assert displays[0]["image/png"].startswith("iVBORw0KGgo")  # base64 of the PNG signature


def test_an_error_in_a_cell_is_fed_back_and_the_model_recovers(sandbox):
    seen: list[str] = []

    def model(request: LlmRequest) -> str:
        obs = [m.text() for m in request.messages if m.origin == "code_observation"]
        if not obs:
            return cell("total = 1 / 0")
        seen.append(obs[-1])
        return cell("submit('fixed')")

    out = run_sync(_turn(sandbox, model, "divide"))
    assert str(out.result.outcome) == "finished: final_value"
    assert seen[0].startswith("[cell 1 error]")
    assert "ZeroDivisionError" in seen[0]
    assert completed(out)[0]["status"] == "error"


def test_a_reply_without_a_cell_gets_the_submit_reminder_then_the_cell_finishes(sandbox):
    model = cells("I think the answer is 4.", cell("submit(4)"))
    s, out = run_sync(_turn(sandbox, model, "2+2?", keep=True))
    assert out.result.outcome.value == 4
    roles = [(m.role.value, m.origin) for m in s.read_view().messages()]
    # the reminder is a user message: the model's reply never ends the history it is sent
    assert roles[:3] == [("user", None), ("assistant", None), ("user", "code_protocol")]


def test_output_beyond_the_cap_is_cut_and_marked(sandbox):
    model = cells(cell("print('x' * 50_000)"), cell("submit('ok')"))
    s, out = run_sync(_turn(sandbox, model, "flood", keep=True))
    first = completed(out)[0]
    assert len(first["output"]) == LIMITS.output_chars
    assert first["truncated"] is True
    assert observations(s)[0].endswith("[output truncated: print less, or a slice]")


def test_a_kernel_that_dies_in_a_cell_is_restarted_and_the_model_is_told(sandbox):
    model = cells(cell("import os\nos._exit(3)"),
                  cell("submit('alive')"))
    out = run_sync(_turn(sandbox, model, "crash"))
    first = completed(out)[0]
    assert first["status"] == "died"
    assert "it was restarted and its variables are gone" in first["error"]
    assert out.result.outcome.value == "alive"  # the restarted sandbox ran the next cell


def test_a_cell_that_runs_forever_is_interrupted_at_the_wall_time_limit(tight):
    model = cells(cell("x = 1\nwhile True:\n    pass"), cell("submit(x)"))
    out = run_sync(_turn(tight, model, "loop"))
    first = completed(out)[0]
    assert first["status"] == "timeout"
    assert "wall-time limit of 4 s" in first["error"]
    # interrupted, not restarted: the variable set before the loop is still there
    assert out.result.outcome.value == 1


def test_a_cell_that_ignores_the_interrupt_gets_a_fresh_sandbox_and_says_so(tight):
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ny = 2\nwhile True:\n    pass"
    model = cells(cell(code), cell("submit('y' in globals())"))
    out = run_sync(_turn(tight, model, "stubborn"))
    first = completed(out)[0]
    assert first["status"] == "timeout"
    assert "sandbox was restarted" in first["error"]
    assert out.result.outcome.value is False  # the restarted kernel has no y


def test_memory_beyond_the_limit_is_a_memory_error_the_model_sees(sandbox):
    model = cells(cell("block = bytearray(3 * 2**30)"), cell("submit('ok')"))
    s, out = run_sync(_turn(sandbox, model, "allocate", keep=True))
    assert completed(out)[0]["status"] == "error"
    assert "MemoryError" in observations(s)[0]
    assert str(out.result.outcome) == "finished: final_value"


def test_a_cell_cannot_read_host_secrets_or_the_users_kernel(sandbox, monkeypatch):
    monkeypatch.setenv("LASH_TEST_SECRET_API_KEY", "sk-test-do-not-leak-123456")
    user_variable = "in the user's kernel"  # noqa: F841 (the cell looks for it)
    host_pid = os.getpid()
    code = (
        "import os\n"
        "print(sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k or 'SECRET' in k))\n"
        "print('user_variable' in globals())\n"
        f"print(os.path.exists('/proc/{host_pid}/environ'))\n"
        "hits = []\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n"
        "        hits.append(b'sk-test-do-not-leak' in open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError:\n"
        "        pass\n"
        "print(any(hits))"
    )
    model = cells(cell(code), cell("submit('done')"))
    s, out = run_sync(_turn(sandbox, model, "peek", keep=True))
    lines = observations(s)[0].splitlines()
    assert lines[1] == "[]"  # no key, token or secret variable at all
    assert lines[2] == "False"  # the notebook's variables are not there
    if sandbox.isolation.startswith("network off"):
        assert lines[3] == "False"  # the host's processes are invisible
    assert lines[4] == "False"  # no process it can see has the secret
    assert "sk-test-do-not-leak" not in str(out.result.to_json())


def test_a_credential_a_cell_prints_is_scrubbed_before_it_is_stored_or_sent(sandbox):
    key = "sk-proj-" + "Q7w2E9r4T6y8U1i3O5p7"  # a shape, not a real key
    # the cell assembles it (as data would hold it): the model's own code never spells it
    model = cells(cell("print('found', 'sk-proj-' + 'Q7w2E9r4T6y8U1i3O5p7')\ninput('name? ')"),
                  cell("submit(0)"))
    s, out = run_sync(_turn(sandbox, model, "leak", keep=True))
    assert key not in observations(s)[0]
    assert observations(s)[0].startswith("[cell 1 ok]\nfound ")  # input() read "" and went on
    assert key not in str([a.to_json() for a in out.activities])


def test_the_resource_limits_hold_inside_the_sandbox(sandbox):
    code = ("import resource\n"
            "print(resource.getrlimit(resource.RLIMIT_AS)[0] == 2 * 2**30)\n"
            "print(resource.getrlimit(resource.RLIMIT_CPU)[0] == 1800)\n"
            "print(resource.getrlimit(resource.RLIMIT_FSIZE)[0] == 2**30)\n"
            "import os\nprint(os.getcwd() == os.environ['HOME'])")
    s, _ = run_sync(_turn(sandbox, cells(cell(code), cell("submit(0)")), "limits", keep=True))
    assert observations(s)[0] == "[cell 1 ok]\nTrue\nTrue\nTrue\nTrue"


def test_the_sandbox_has_no_network_where_unshare_works(sandbox):
    if not sandbox.isolation.startswith("network off"):
        pytest.skip(f"isolation here: {sandbox.isolation}")
    code = ("import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
            "    print('connected')\nexcept OSError as e:\n    print('refused', e.errno)")
    s, _ = run_sync(_turn(sandbox, cells(cell(code), cell("submit(0)")), "net", keep=True))
    assert "refused" in observations(s)[0]


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


def test_a_host_tool_called_from_a_cell_runs_through_the_sessions_tool_dispatch(sandbox):
    model = cells(cell("w = weather(city='Paris')\nprint(w)"), cell("submit(w)"))

    async def go():
        s = await open_code(sandbox, model, tools=[weather])
        out = await s.turn("weather?").run()
        s.tools().set_membership("weather", False)
        off = await s.turn("again").run()
        return s, out, off

    s, out, off = run_sync(go())
    assert out.result.outcome.value == "sunny in Paris"
    assert [(c.tool, c.args, c.output) for c in out.result.tool_calls] == [
        ("weather", {"city": "Paris"}, "sunny in Paris")]
    assert [a.type for a in out.activities if a.type.startswith("tool_call")] == [
        "tool_call_started", "tool_call_completed"]
    # membership is the gate for cells too: a tool switched off cannot be called
    assert off.result.tool_calls[0].success is False
    assert "HostCallError" in observations(s)[-2]


def test_the_model_gets_the_code_contract_its_tools_as_functions_and_the_sessions_prompt(
        sandbox):
    seen = []

    def model(request: LlmRequest) -> str:
        seen.append((request.system_prompt, request.tools))
        return cell("submit(1)")

    async def go():
        core = LashCore.builder().provider(FunctionProvider(model)).tools(weather).build()
        s = await (core.session("p").system_prompt("Answer in French.")
                   .mode("code", sandbox=sandbox).open())
        return await s.turn("hi").run()

    run_sync(go())
    ((system, tools),) = seen
    assert system.startswith("### Operating contract (code mode)")
    assert "- `weather(city)`: Current weather for a city. (required: city)" in system
    assert system.endswith("### Instructions\n\nAnswer in French.")
    assert tools == ()  # tools are functions in the sandbox, not native tool calls


@tool(approval="never")
def drop_table(name: str) -> str:
    """Drop a table."""
    return f"dropped {name}"


@tool(approval="ask")
def archive(name: str) -> str:
    """Archive a table."""
    return f"archived {name}"


def test_approval_applies_to_tools_called_from_a_cell(sandbox):
    code = ("try:\n    drop_table(name='sales')\nexcept HostCallError as e:\n"
            "    print('refused:', e)\nprint(archive(name='old'))")
    asked = []

    def approver(request):
        asked.append(request)
        return True

    async def go():
        s = await open_code(sandbox, cells(cell(code), cell("submit(0)")),
                            tools=[drop_table, archive])
        s.approvals().set_approver(approver)
        out = await s.turn("clean up").run()
        return s, out

    s, out = run_sync(go())
    obs = observations(s)[0]
    # a tool argument called name reaches the tool (call_tool's own parameter is positional)
    assert obs.splitlines()[1].startswith("refused: tool 'drop_table' failed: the call to tool "
                                          "'drop_table' was denied by policy")
    assert obs.splitlines()[-1] == "archived old"
    assert len(asked) == 1  # only the ask tool was put to the approver
    decisions = [(c.tool, c.success, c.approval.decision, c.approval.by)
                 for c in out.result.tool_calls]
    assert decisions == [("drop_table", False, "denied", "policy"),
                         ("archive", True, "approved", "api")]


def test_waiting_for_approval_does_not_count_against_the_cells_wall_time(tight):
    async def slow_user(request):
        await asyncio.sleep(TIGHT.cell_wall_s + 2)  # the user reads the question a while
        return True

    async def go():
        s = await open_code(tight, cells(cell("print(archive(name='q3'))"), cell("submit(0)")),
                            tools=[archive])
        s.approvals().set_approver(slow_user)
        return s, await s.turn("archive q3").run()

    s, out = run_sync(go())
    assert completed(out)[0]["status"] == "ok"
    assert observations(s)[0] == "[cell 1 ok]\narchived q3"


QUESTION = "Is this review happy? I loved it."


def test_llm_query_is_a_child_turn_whose_usage_rolls_up_like_run_child(sandbox, tmp_path):
    """A cell's ``llm_query`` is one turn of a child session ``<session>.<turn>.q1`` (parent
    recorded) with the session's provider and model, no tools and no history; its tokens are
    the turn's children_usage and ``child:`` usage rows, not the turn's own usage, and a
    total over all sessions counts them once."""
    from lash_nb import reports

    asked = []

    def model(request: LlmRequest):
        if request.messages[0].text() == QUESTION:  # the child turn
            asked.append(request)
            return LlmResponse(parts=(LlmPart.text_part("POSITIVE"),),
                               usage=TokenUsage(input_tokens=7, output_tokens=3))
        step = steps(request)
        code = f"print(llm_query({QUESTION!r}))" if step == 0 else "submit('done')"
        return LlmResponse(parts=(LlmPart.text_part(cell(code)),),
                           usage=TokenUsage(input_tokens=10, output_tokens=5))

    @tool
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    async def go():
        store = DuckDBStore(str(tmp_path / "q.duckdb"))
        s = await open_code(sandbox, model, tools=[shout], store=store)
        out = await s.turn("classify").run()
        child_id = f"s.{out.result.turn_id}.q1"
        kid = await s.core.session(child_id).open()
        facts = (observations(s), out, child_id, kid.state.parent_session_id,
                 [m.text() for m in kid.read_view().messages()],
                 reports.usage_frame(s, by="source"), reports.usage_frame(store, by="session"),
                 s.usage_report().by_source)
        await kid.close()
        await s.close()
        return facts

    obs, out, child_id, parent, kid_messages, by_source, by_session, report = run_sync(go())
    assert obs[0] == "[cell 1 ok]\nPOSITIVE"
    r = out.result
    assert r.usage == TokenUsage(20, 10)  # the parent's own two model calls
    assert [(e.source, e.usage) for e in r.children_usage] == \
        [(f"child:{child_id}", TokenUsage(7, 3))]
    assert r.total_usage() == TokenUsage(27, 13)
    assert report == {"turn": TokenUsage(20, 10), f"child:{child_id}": TokenUsage(7, 3)}
    (req,) = asked
    assert req.tools == ()  # the parent session offers `shout`; the child is offered nothing
    assert [m.text() for m in req.messages] == [QUESTION]  # no history of the parent
    assert req.model == out.result.llm_calls[0].model  # the session's model
    assert parent == "s"
    assert kid_messages == [QUESTION, "POSITIVE"]
    rows = {x["source"]: (x["input_tokens"], x["output_tokens"])
            for x in by_source.to_dict("records")}
    assert rows == {"turn": (20, 10), f"child:{child_id}": (7, 3)}
    totals = {x["session_id"]: x["input_tokens"] for x in by_session.to_dict("records")}
    assert totals == {"s": 20, child_id: 7}  # counted once across sessions
    nested = [a.to_json() for a in out.activities if a.type == "child_activity"]
    assert nested and {a["correlation_id"] for a in nested} == {f"cell:{r.turn_id}:1"}
    assert [(a.event.child_session_id, a.correlation_id) for a in out.activities
            if a.type == "child_usage"] == [(child_id, f"cell:{r.turn_id}:1")]
    fold = TurnFold()  # what the live widget and the saved record fold
    fold.apply_all([a.to_json() for a in out.activities])
    assert fold.tool_rows() == []
    (first, _) = [b for b in fold.blocks if b["kind"] == "cell"]
    assert [(k["session_id"], [b["text"] for b in k["blocks"] if b["kind"] == "prose"])
            for k in first["children"]] == [(child_id, ["POSITIVE"])]


def test_a_failing_llm_query_is_an_error_in_the_cell_and_the_turn_goes_on(sandbox):
    """The helper model fails (a provider error): the cell sees one line naming the child
    turn and how it ended, the model reads it and the turn still finishes."""
    def model(request: LlmRequest):
        if request.messages[0].text() == QUESTION:
            raise RuntimeError("helper model is down")
        code = f"print(llm_query({QUESTION!r}))" if steps(request) == 0 else "submit('gave up')"
        return LlmResponse(parts=(LlmPart.text_part(cell(code)),),
                           usage=TokenUsage(input_tokens=10, output_tokens=5))

    out = run_sync(_turn(sandbox, model, "classify"))
    (first, _) = completed(out)
    assert first["status"] == "error"
    assert f"llm_query failed: the child turn s.{out.result.turn_id}.q1 ended stopped: " \
        in first["error"]
    assert str(out.result.outcome) == "finished: final_value"
    assert out.result.outcome.value == "gave up"


def test_stop_during_llm_query_stops_the_child_turn_and_still_rolls_its_usage_up(
        sandbox, tmp_path):
    """A Stop while a cell waits on ``llm_query``: the child turn ends ``stopped: cancelled``
    and its (estimated: the call was cut) usage is still the parent turn's children_usage."""
    entered = asyncio.Event()

    async def model(request: LlmRequest):
        if request.messages[0].text() == QUESTION:
            entered.set()
            await asyncio.sleep(3600)
        asked = [m.text() for m in request.messages if m.role.value == "user" and not m.origin]
        code = f"print(llm_query({QUESTION!r}))" if asked[-1] == "ask" else "submit('next')"
        return LlmResponse(parts=(LlmPart.text_part(cell(code)),),
                           usage=TokenUsage(input_tokens=10, output_tokens=5))

    async def go():
        store = DuckDBStore(str(tmp_path / "stop.duckdb"))
        s = await open_code(sandbox, model, store=store)
        stream = s.turn("ask").stream()
        task = asyncio.ensure_future(stream.finish())
        await asyncio.wait_for(entered.wait(), 120)
        s.cancel_running_turns(origin="widget_stop")
        result = await asyncio.wait_for(task, 120)
        child_id = f"s.{result.turn_id}.q1"
        kid_turns = await store.load_turns(child_id)
        kid = await s.core.session(child_id).open()
        kid_usage = kid.usage_report().usage
        await kid.close()
        after = await s.turn("again").run()
        report = s.usage_report().by_source
        await s.close()
        return result, child_id, kid_turns, kid_usage, after, report

    result, child_id, kid_turns, kid_usage, after, report = run_sync(go())
    assert str(result.outcome) == "stopped: cancelled"
    assert [t.stop_reason for t in kid_turns] == ["cancelled"]
    assert kid_usage.input_tokens > 0  # the cut call is billed at an estimate (ADR 20)
    assert [(e.source, e.usage) for e in result.children_usage] == \
        [(f"child:{child_id}", kid_usage)]
    assert report[f"child:{child_id}"] == kid_usage  # committed with the stopped turn
    assert str(after.result.outcome) == "finished: final_value"


def test_stop_interrupts_a_running_cell_and_commits_cancelled_with_the_cells_so_far(
        sandbox, tmp_path):
    long_job = cells(cell("print('first cell')"),
                     cell("import time\nprint('working', flush=True)\ntime.sleep(600)"))

    def model(request: LlmRequest) -> str:
        # the next turn's script starts over from its own prompt: it must not run the long
        # job again (that cell sat out the 120 s wall time and the test still passed)
        asked = [m.text() for m in request.messages if m.role.value == "user" and not m.origin]
        return cell("submit('next turn works')") if asked[-1] == "and now?" else long_job(request)

    async def go():
        store = DuckDBStore(str(tmp_path / "s.duckdb"))
        s = await open_code(sandbox, model, store=store)
        stream = s.turn("long job").stream()
        async for activity in stream:
            if activity.type == "code_cell_output" and "working" in activity.event.text:
                s.cancel_running_turns(origin="widget_stop")
        result = await stream.finish()
        after = await s.turn("and now?").run()
        events = await s._stored_events(result.turn_id)
        await s.close()
        return result, after, events

    result, after, events = run_sync(go())
    assert str(result.outcome) == "stopped: cancelled"
    assert result.cancellation["origin"] == "widget_stop"
    done = [e.event for e in events if e.type == "code_cell_completed"]
    assert [(e.cell, e.status) for e in done] == [(1, "ok"), (2, "cancelled")]
    assert done[1].output == "working\n"
    assert str(after.result.outcome) == "finished: final_value"
    assert after.result.outcome.value == "next turn works"
    assert [r["status"] for r in completed(after)] == ["ok"]  # no cell of the cut job again


@tool
async def slow_lookup(key: str) -> str:
    """A lookup that takes a very long time."""
    await asyncio.sleep(3600)
    return key


def test_stop_during_a_host_tool_call_from_a_cell_records_the_call_as_cancelled(sandbox):
    looking = cells(cell("print(slow_lookup(key='a'))"))

    def model(request: LlmRequest) -> str:
        asked = [m.text() for m in request.messages if m.role.value == "user" and not m.origin]
        return cell("submit('next')") if asked[-1] == "again" else looking(request)

    async def go():
        s = await open_code(sandbox, model, tools=[slow_lookup])
        stream = s.turn("look it up").stream()
        async for activity in stream:
            if activity.type == "tool_call_started":
                s.cancel_running_turns(origin="widget_stop")
        result = await stream.finish()
        after = await s.turn("again").run()
        return result, after

    result, after = run_sync(go())
    assert str(result.outcome) == "stopped: cancelled"
    assert [(c.tool, c.interrupted) for c in result.tool_calls] == [("slow_lookup", True)]
    assert str(after.result.outcome) == "finished: final_value"


def test_a_reopened_session_says_its_sandbox_started_fresh(sandbox, tmp_path):
    path = str(tmp_path / "r.duckdb")
    model = cells(cell("z = 5\nsubmit(z)"), cell("submit(0)"))

    async def first():
        s = await open_code(sandbox, model, store=DuckDBStore(path))
        out = await s.turn("set z").run()
        await s.close()
        return out

    async def second():
        s = await open_code(sandbox, cells(cell("print('z' in globals())"), cell("submit(1)")),
                            store=DuckDBStore(path))
        out = await s.turn("is z there?").run()
        events = await s._stored_events(out.result.turn_id)
        await s.close()
        return s, events

    assert run_sync(first()).result.outcome.value == 5
    s, events = run_sync(second())
    (started,) = [e.event for e in events if e.type == "code_sandbox_started"]
    assert "started fresh for this session" in started.note  # committed with the turn
    obs = observations(s)
    assert len(obs) == 3  # the first turn's cell is history; two cells in this turn
    assert obs[1].startswith("[cell 1 ok]\nFalse")  # z is gone: nothing was replayed
    assert "started fresh for this session" in obs[1]


async def _turn_impl(sandbox, model, prompt):
    s = await open_code(sandbox, model)
    out = await s.turn(prompt).run()
    return s, out


def _turn(sandbox, model, prompt, keep=False):
    async def go():
        s, out = await _turn_impl(sandbox, model, prompt)
        return (s, out) if keep else out
    return go()


def test_a_sandbox_that_cannot_start_stops_the_turn_with_the_reason_and_commits_it(tmp_path):
    # a memory limit too small for Python itself: the kernel dies while it starts
    tiny = SandboxLimits(memory_bytes=48 * 2**20, start_timeout_s=60)
    model = cells(cell("submit(1)"))

    async def go():
        core = (LashCore.builder().provider(FunctionProvider(model))
                .store(DuckDBStore(str(tmp_path / "t.duckdb"))).build())
        s = await core.session("tiny").mode("code", limits=tiny).open()
        out = await s.turn("anything").run()
        stored = await s.store.load_session("tiny")
        await s.close()
        return out, stored

    out, stored = run_sync(go())
    assert str(out.result.outcome) == "stopped: runtime_error"
    (issue,) = out.result.errors
    assert issue.code == "code_execution_unavailable"
    assert "did not start" in issue.message
    assert stored.meta.turn_index == 1  # the turn is committed with its outcome


def test_a_session_keeps_its_mode_when_opened_again_parked_and_resumed(sandbox, tmp_path):
    path = str(tmp_path / "m.duckdb")
    model = cells(cell("submit(1)"))

    async def go():
        core = LashCore.builder().provider(FunctionProvider(model)).store(DuckDBStore(path)).build()
        s = await core.session("m").mode("code", sandbox=sandbox).open()
        await s.turn("one").run()
        await s.close()
        again = await core.session("m").open()  # no .mode(): the stored one
        kept = (again.policy_snapshot().mode, again.parts.code_mode is not None)
        parked = await again.park()
        resumed = await core.resume(parked)
        after_resume = (resumed.policy_snapshot().mode, resumed.parts.code_mode is not None)
        await resumed.close()
        standard = await core.session("m").mode("standard").open()  # the user's latest word
        chosen = (standard.policy_snapshot().mode, standard.parts.code_mode is None)
        await standard.close()
        return kept, after_resume, chosen

    kept, after_resume, chosen = run_sync(go())
    assert kept == ("code", True)
    assert after_resume == ("code", True)
    assert chosen == ("standard", True)


def test_code_mode_needs_a_known_mode_and_shares_need_code_mode():
    core = LashCore.builder().build()
    from lash_nb.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="use standard or code"):
        core.session("x").mode("rlm")
    with pytest.raises(ConfigurationError, match="share a pandas DataFrame"):
        core.session("x").mode("code").share(df=[1, 2, 3])
    with pytest.raises(ConfigurationError, match="needs code mode"):
        asyncio.run(core.session("x").share(df=pd.DataFrame()).open())


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_a_sandbox_does_not_outlive_the_process_that_started_it():
    """A notebook kernel that shuts down without closing its session takes its sandbox
    with it (the sandbox runs in its own process session, so nothing else would)."""
    script = ("import asyncio\nfrom lash_nb._runtime.code_mode.sandbox import Sandbox\n"
              "async def main():\n    sb = Sandbox()\n    await sb.start()\n"
              "    print(await sb.pid(), flush=True)\nasyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 60  # generous: the condition, not the time, is the test
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid)


def test_a_sandbox_dies_with_a_process_that_was_killed():
    """A notebook kernel killed hard (no atexit) still takes its sandbox along."""
    script = ("import asyncio, os, signal\nfrom lash_nb._runtime.code_mode.sandbox import Sandbox\n"
              "async def main():\n    sb = Sandbox()\n    await sb.start()\n"
              "    print(await sb.pid(), flush=True)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
              "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -9
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 60  # generous: the condition, not the time, is the test
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_submitted_value_with_nan_or_a_lone_surrogate_is_committed_and_reads_the_next_day(
        sandbox, tmp_path, kind, request):
    # a DataFrame's mean of an empty column and a name read from a file decoded with
    # surrogateescape: the value crosses the bridge as JSON text, which spells both
    if kind == "postgres":
        target = request.getfixturevalue("pg_server").create_database()
    else:
        target = str(tmp_path / "v.duckdb")
    code = "import math\nsubmit({'mean': math.nan, 'max': math.inf, 'file': 'caf\\udce9.csv'})"
    expected = {"mean": "NaN", "max": "Infinity", "file": "caf\ufffd.csv"}

    async def go():
        s = await open_code(sandbox, cells(cell(code)), store=target)
        out = await s.turn("summarise the file").run()
        await s.close()
        core = LashCore.builder().provider(FunctionProvider(cells(cell("submit(2)")))).store(target).build()
        turns = await core.store.load_turns("s")
        await core.close()
        return out, turns

    out, turns = run_sync(go())
    assert str(out.result.outcome) == "finished: final_value"
    assert out.result.outcome.value == expected
    assert [t.outcome for t in turns] == ["finished"]
    assert turns[0].result["outcome"] == {"finished": {"final_value": {"value": expected}}}


@tool
def read_name(path: str) -> str:
    """A file name as the disk has it (undecodable bytes kept as surrogates)."""
    raise ValueError(f"cannot open {path}\ud800")


def test_an_error_or_output_holding_a_high_lone_surrogate_reaches_the_model_and_the_user(
        sandbox, tmp_path):
    """A cell that raises, or prints, text holding a high lone surrogate (``"\\ud800"``: a
    name decoded with ``surrogatepass``, a slice through an emoji's UTF-16 pair). The sandbox
    kernel could not encode the message (UTF-8 has no form for it), so the cell read ``ok``
    with no error, and a print came back as the kernel's own serialisation traceback. Now the
    cell shows the real error and output (the surrogate as U+FFFD) and the turn commits."""
    model = cells(cell("print('name caf\\ud800.csv')\nraise ValueError('bad byte \\ud800 in name')"),
                  cell("read_name(path='caf\\udce9.csv')"),
                  cell("submit('after')"))

    async def go():
        s = await open_code(sandbox, model, tools=[read_name],
                            store=DuckDBStore(str(tmp_path / "u.duckdb")))
        out = await s.turn("read the file").run()
        turns = await s.store.load_turns("s")
        return s, out, turns

    s, out, turns = run_sync(go())
    first, second, third = completed(out)
    assert first["status"] == "error"
    assert first["output"] == "name caf\ufffd.csv\n"
    assert first["error"].splitlines()[-1] == "ValueError: bad byte \ufffd in name"
    assert second["status"] == "error" and third["status"] == "ok"
    assert second["error"].splitlines()[-1] == (
        "HostCallError: tool 'read_name' failed: ValueError: cannot open caf\ufffd.csv\ufffd")
    assert observations(s)[0].endswith("ValueError: bad byte \ufffd in name")
    assert str(out.result.outcome) == "finished: final_value"
    assert [t.outcome for t in turns] == ["finished"]


@tool
def readings() -> list[int]:
    """A sensor's readings."""
    return list(range(100_000))


def test_a_cell_gets_a_huge_tool_output_whole_while_the_record_holds_it_bounded(sandbox):
    # ADR 174: the bound is for what the model reads and the session keeps; code in a cell
    # works on the value (lash's RLM engine bounds the record, not the value)
    model = cells(cell("r = readings()\nprint(len(r), sum(r))"), cell("submit(len(r))"))

    async def go():
        s = await open_code(sandbox, model, tools=[readings])
        return s, await s.turn("how many readings?").run()

    s, out = run_sync(go())
    assert out.result.outcome.value == 100_000
    assert "100000 4999950000" in observations(s)[0]
    (call,) = out.result.tool_calls
    assert isinstance(call.output, str) and len(call.output) < 66_000
    assert "[… lash left out " in call.output and call.output.startswith("[0, 1, 2, ")
