"""The queue panel's Drain button, a tool that asks for approval, and the panel's Stop.

The user's situation (ADR 212): an agent engineer queues work (`%lash enqueue`), shows
`%lash queue` and clicks **Drain**. One batch makes the model call an `@tool(approval="ask")`
tool. The drain runs from the button (a comm callback, no cell), so before this change nothing
could answer the question: the panel said "draining… 0 of 1" and its mirrored turn "waiting for
approval" without buttons, the notice went where a comm callback's output goes (JupyterLab's
log console), and the panel had no Stop: the drain waited forever. Now the panel shows the
question with Approve / Deny, a click answers it (`by: user`), and a Stop button while it
drains stops the running turn and the drain.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

SETUP = ("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01\n"
         "from lash_nb import tool\nDROPPED = []\n"
         '@tool(approval="ask")\ndef drop_table(name: str) -> str:\n'
         '    """Drop a table."""\n    DROPPED.append(name)\n    return f"dropped {name}"')
RECORDS = ("recs = await s.store.load_turns('s1')\n"
           "print([(t.stop_reason, (t.result.get('cancellation') or {}).get('origin'),\n"
           "        [c['approval']['decision'] + ' by ' + c['approval']['by']\n"
           "         for c in t.result['tool_calls']]) for t in recs])\n"
           "print(DROPPED, len(await s.queued_work(include_claimed=True)))")


@pytest.fixture()
def panel(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(SETUP)
        k.run("s = %lash open s1 --store lash.duckdb --tools drop_table")
        k.run("%lash enqueue Please drop_table 'sales'")
        ex = k.run("%lash queue")
        mid = k.wait_for_widget(ex, name="QueueWidget")
        k.send_custom(mid, {"type": "drain"})
        k.pump_until(lambda: bool(k.state(mid).get("questions")), timeout=60)
        yield k, mid


def _drained(k, mid):
    k.pump_until(lambda: not k.state(mid).get("draining")
                 and not k.state(mid).get("status", "").endswith("…"), timeout=60)


def test_a_question_of_a_drained_turn_shows_on_the_panel_and_approve_answers_it(panel):
    k, mid = panel
    [q] = k.state(mid)["questions"]
    assert q["tool"] == "drop_table"
    assert q["args"] == '{"name": "sales"}'
    assert k.run("print(DROPPED)").stdout.strip() == "[]"  # it waits: nothing ran yet
    # the batch being run is not done yet: the progress line agrees with the status line
    # (before, a queue refresh counted the claimed batch as done: "1 of 1 batches done")
    k.run("%lash enqueue another batch")
    k.pump_until(lambda: len(k.state(mid)["batches"]) == 2, timeout=30)
    assert k.state(mid)["progress"] == {"done": 0, "total": 1}
    assert k.state(mid)["status"] == "draining s1: 0 of 1 batch(es) done…"
    k.send_custom(mid, {"type": "decide", "call_id": q["call_id"], "ok": True})
    _drained(k, mid)
    assert k.state(mid)["questions"] == []
    assert k.state(mid)["status"] == "ran 2 turns; 2 of 2 batches done"
    assert k.run(RECORDS).stdout.strip().splitlines() == [
        "[('assistant_message', None, ['approved by user']), ('assistant_message', None, [])]",
        "['sales'] 0"]


def test_deny_on_the_panel_is_a_result_the_model_reads(panel):
    k, mid = panel
    [q] = k.state(mid)["questions"]
    k.send_custom(mid, {"type": "decide", "call_id": q["call_id"], "ok": False})
    _drained(k, mid)
    assert k.run(RECORDS).stdout.strip().splitlines() == [
        "[('assistant_message', None, ['denied by user'])]", "[] 0"]


def test_stop_on_the_panel_ends_the_waiting_turn_and_the_drain(panel):
    k, mid = panel
    k.run("%lash enqueue a second batch the stop must not run")
    k.send_custom(mid, {"type": "stop"})
    _drained(k, mid)
    assert k.state(mid)["questions"] == []
    out = k.run(RECORDS).stdout.strip().splitlines()
    # the person's stop: the turn is committed cancelled, its batch done, the drain ends there
    assert out == ["[('cancelled', 'widget_stop', ['cancelled by widget_stop'])]", "[] 1"]


def test_lash_stop_during_a_drain_ends_the_drain_not_only_its_turn(tmp_path):
    """`%lash stop` while `%lash drain --all --background` runs: before, it stopped the running
    turn and the drain went on to run every other batch (3 more turns, billed). Now the drain
    ends there, and its last line says what is left and how to run it."""
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.1")
        k.run("s = %lash open s1 --store lash.duckdb")
        k.run("\n".join(f"%lash enqueue job {i} " + " ".join(f"w{j}" for j in range(40))
                        for i in range(4)))
        k.run("t = %lash drain --all --background")
        k.pump_until(lambda: k.run(
            "print(len(await s.queued_work(include_claimed=True)) - len(await s.queued_work()))"
        ).stdout.strip() == "1", timeout=60)  # a batch is being run
        assert k.run("%lash stop").stdout.strip() == "cancelled 1 running turn(s)"
        k.run("await t")
        out = k.run("recs = await s.store.load_turns('s1')\n"
                    "print([(r.stop_reason, (r.result.get('cancellation') or {}).get('origin'))"
                    " for r in recs], len(await s.queued_work()))\n"
                    "print(s and __import__('lash_nb._notebook.extension', fromlist=['x'])"
                    "._magics().ctx.bindings['s1'].drain.last.label())").stdout.strip()
        assert out.splitlines() == [
            "[('cancelled', 'magic')] 3",
            ("drained 1 batch(es) of s1 in 1 turn(s); stopped by %lash stop: 3 batch(es) left "
             "in the queue; %lash drain runs them")]


def test_a_tool_holding_the_event_loop_in_a_panel_drain_is_told_on_the_panel(tmp_path):
    """An `async def` tool calling `time.sleep` holds the event loop: the panel's Stop waits
    for it. In a cell the warning shows under the cell; a drain started by the panel's button
    has no cell, and before this change the warning went only to JupyterLab's log console.
    Now it is a notice row of the turn the panel shows (and so of its saved snapshot)."""
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01\n"
              "import time\nfrom lash_nb import tool\n"
              "@tool\nasync def fetch_report(name: str) -> str:\n"
              '    """Fetch a report."""\n    time.sleep(1.5)\n    return f"report {name}"')
        k.run("s = %lash open s1 --store lash.duckdb --tools fetch_report")
        k.run("%lash enqueue Please fetch_report 'sales'")
        mid = k.wait_for_widget(k.run("%lash queue"), name="QueueWidget")
        k.send_custom(mid, {"type": "drain"})
        k.pump_until(lambda: k.state(mid).get("ran"), timeout=60)
        _drained(k, mid)
        [ran] = k.state(mid)["ran"]
        assert "report sales" in ran["html"]  # the tool ran and its turn is shown
        assert "fetch_report" in ran["html"] and "held the event loop" in ran["html"], ran
        assert "make it a plain def" in ran["html"]  # what to do
