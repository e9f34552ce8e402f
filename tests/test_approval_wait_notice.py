"""A tool call waiting for approval with nothing set to answer it says so (ADR 204).

The user's situation: a script (``python run.py``, no kernel) runs ``await s.turn(x).run()``
with an ``ask`` tool and no approver. Before, it hung silently. Now one warning on
``lash_nb.tools`` names the tool, the call, its arguments (keys taken out, bounded) and the
ways to answer; the turn still waits, so a script that answers from another task still can.
And no false alarms: an approver, a script already awaiting ``approvals().next()``, a turn
shown on a live widget (``%%lash``, a drain) and a worker each answer, so nothing is said.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from lash_nb import LashCore, tool
from lash_nb._runtime import approval as approval_module
from lash_nb._store.waits import not_shown, shown_to_a_person
from lash_nb.providers import FunctionProvider
from lash_nb.testing import tool_call

KEY = "sk-proj-" + "Q7x" * 10  # a credential shape the model echoed into an argument


def make_drop(ran):
    @tool(approval="ask")
    def drop_table(name: str) -> str:
        """Drop a table."""
        ran.append(name)
        return f"dropped {name}"
    return drop_table


def model_calling(args='{"name": "sales"}'):
    def model(request):
        results = request.messages[-1].tool_results()
        if results:
            return "model read: " + results[0].content
        return [tool_call("drop_table", args, "c1")]
    return model


async def open_session(ran, args='{"name": "sales"}', sid="s"):
    core = (LashCore.builder().provider(FunctionProvider(model_calling(args))).model("m")
            .tools(make_drop(ran)).build())
    return await core.session(sid).open()


def notices(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "lash_nb.tools" and "waits for approval" in r.getMessage()]


async def until(probe):
    async with asyncio.timeout(30):
        while not probe():
            await asyncio.sleep(0.01)


@pytest.fixture
def at_once(monkeypatch):
    """The notice's grace is for people; here a question is told about on the next loop turn."""
    monkeypatch.setattr(approval_module, "NOTICE_AFTER_S", 0)


def test_a_script_turn_nobody_answers_warns_once_naming_the_call_and_still_takes_an_answer(caplog):
    ran: list[str] = []
    caplog.set_level(logging.WARNING, "lash_nb.tools")

    async def body():
        s = await open_session(ran)
        turn = asyncio.ensure_future(s.turn("drop the sales table").run())
        await until(lambda: notices(caplog))
        [line] = notices(caplog)
        turn_id = s.approvals().pending()[0].turn_id
        assert line == (
            f"lash_nb: turn {turn_id} of session 's' waits for approval of tool 'drop_table' "
            "(call c1) with arguments {\"name\": \"sales\"}; nothing is set to answer it: call "
            "session.approvals().decide('c1', True) (or False) from another task or thread, or "
            "set session.approvals().set_approver(fn) before the turn; Ctrl-C or "
            "session.cancel_running_turns() stops the turn")
        assert s.approvals().decide("c1", True) is True  # the way the line names
        out = await turn
        assert out.result.tool_calls[0].approval.by == "api"
        assert len(notices(caplog)) == 1
    asyncio.run(body())
    assert ran == ["sales"]


def test_the_notice_quotes_no_key_and_a_bounded_part_of_long_arguments(caplog, at_once):
    caplog.set_level(logging.WARNING, "lash_nb.tools")
    name = f"{KEY} " + "x" * 5000

    async def body():
        s = await open_session([], args=f'{{"name": "{name}"}}')
        turn = asyncio.ensure_future(s.turn("drop it").run())
        await until(lambda: notices(caplog))
        s.cancel_running_turns()
        await turn
    asyncio.run(body())
    [line] = notices(caplog)
    assert KEY not in line and "Q7xQ7x" not in line
    assert 'with arguments {"name": "[redacted] xxx' in line
    # {"name": " (10) + [redacted] (10) + a space + 5,000 x + "} (2): 200 of them are shown
    assert "x… (5,023 characters); nothing is set to answer it" in line
    assert len(line) < 600


async def _no_notice_while(s, caplog, answer):
    """Run a turn whose question ``answer(s)`` settles after the notice would have gone out."""
    turn = asyncio.ensure_future(s.turn("drop the sales table").run())
    await until(lambda: s.approvals().pending())
    for _ in range(20):  # loop turns: the notice's task (no grace here) has had its chance
        await asyncio.sleep(0)
    assert notices(caplog) == []
    await answer(s)
    return await turn


def test_nothing_is_said_when_an_approver_a_waiting_script_a_widget_or_a_worker_answers(
        caplog, at_once):
    caplog.set_level(logging.WARNING, "lash_nb.tools")

    async def decide(s):
        s.approvals().decide("c1", True)

    async def body():
        # an approver that leaves the question open for a script: it is there, so silent
        s = await open_session([], sid="approver")
        s.approvals().set_approver(lambda request: None)
        await _no_notice_while(s, caplog, decide)

        # a script already awaiting the next question when it opens
        s = await open_session([], sid="awaiting")
        waiting = asyncio.ensure_future(s.approvals().next(timeout=30))
        await asyncio.sleep(0)

        async def answer_it(s):
            (await waiting).approve()
        await _no_notice_while(s, caplog, answer_it)

        # a turn shown on a live turn widget (%%lash, a drain with its widget): its row asks
        s = await open_session([], sid="widget")
        mark = shown_to_a_person(True)
        try:
            await _no_notice_while(s, caplog, decide)
        finally:
            not_shown(mark)

        # a worker: nobody to ask, the call is denied by the worker at once
        s = await open_session([], sid="worker")
        s.approvals().unattended = True
        out = await s.turn("drop the sales table").run()
        assert out.result.tool_calls[0].approval.by == "worker"
    asyncio.run(body())
    assert notices(caplog) == []


def test_a_turn_nothing_answers_is_told_about_beside_the_quiet_ones(caplog, at_once):
    """The control of the test above: the same loop turns with no answerer do tell."""
    caplog.set_level(logging.WARNING, "lash_nb.tools")

    async def body():
        s = await open_session([], sid="alone")
        turn = asyncio.ensure_future(s.turn("drop the sales table").run())
        await until(lambda: s.approvals().pending())
        for _ in range(20):
            await asyncio.sleep(0)
        told = notices(caplog)
        s.approvals().decide("c1", False)
        await turn
        return told
    told = asyncio.run(body())
    assert len(told) == 1 and "session 'alone'" in told[0]
