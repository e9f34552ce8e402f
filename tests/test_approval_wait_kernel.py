"""A Python-API turn waiting for approval in a real kernel is never a silent frozen cell.

The user's situation (ADR 204): an agent engineer opens a session with ``await
core.session(...).open()`` (no ``%load_ext``, no magics), gives it an ``ask`` tool and runs
``out = await s.turn(...).run()`` in a cell with no approver. Before, the cell hung with nothing
on screen until the kernel's interrupt. Now, on ipykernel >= 7.4, the question shows under the
cell with Approve / Deny and a click reaches the waiting turn; on an older kernel (the lowest
venv's 6.29) the cell's stderr says which tool waits, with which arguments, and what to do,
and the kernel's interrupt ends the turn as the line says.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell

SETUP = """
from lash_nb import LashCore, tool
from lash_nb.stores import DuckDBStore
from lash_nb.testing import scripted, tool_call

DROPPED = []

@tool(approval="ask")
def drop_table(name: str) -> str:
    "Drop a table."
    DROPPED.append(name)
    return f"dropped {name}"
"""
TURN = ('core = (LashCore.builder().tools(drop_table).store(DuckDBStore("api.duckdb")).model("m")\n'
        '        .provider(scripted([tool_call("drop_table", \'{{"name": "sales"}}\', "c1")], "done"))'
        '.build())\n'
        's = await core.session({sid!r}).open()\n'
        'out = await s.turn("drop the sales table").run()\n'
        'call = out.result.tool_calls[0]\n'
        'print(out.result.outcome.to_json(), call.approval.decision, call.approval.by, DROPPED)')
RECORDS = ("recs = await s.store.load_turns({sid!r})\n"
           "print([(t.stop_reason, [c['approval']['decision'] + ' by ' + c['approval']['by']\n"
           "                        for c in t.result['tool_calls']]) for t in recs])")
WAITING = ("lash_nb: turn {turn} of session {sid!r} waits for approval of tool 'drop_table' "
           "(call c1) with arguments {{\"name\": \"sales\"}}")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("api")
    with KernelHarness(cwd=str(cwd)) as k:
        k.run(SETUP)
        yield k


def _children(kernel, model_id):
    return [c.removeprefix("IPY_MODEL_") for c in kernel.state(model_id).get("children", ())]


@pytest.mark.skipif(not kernel_serves_widgets_mid_cell(),
                    reason="ipykernel < 7.4 handles a widget message after the cell (ADR 23)")
def test_a_python_api_turn_shows_approve_and_deny_under_its_cell_and_the_click_answers(kernel):
    ex = kernel.submit(TURN.format(sid="shown"))
    box = kernel.wait_for_widget(ex, timeout=60)
    kernel.pump_until(lambda: len(_children(kernel, box)) == 2
                      and all(c in kernel.widgets for c in _children(kernel, box)), timeout=30)
    text, row = _children(kernel, box)
    line = kernel.state(text)["value"]
    assert "waits for approval of tool &#x27;drop_table&#x27; (call c1)" in line
    assert "with arguments {&quot;name&quot;: &quot;sales&quot;}" in line
    approve, deny = _children(kernel, row)
    assert (kernel.state(approve)["description"], kernel.state(deny)["description"]) == (
        "Approve", "Deny")
    kernel.send_custom(approve, {"event": "click"})
    kernel.wait(ex, timeout=60)
    assert ex.status == "ok", ex.error
    outcome, approval = ex.stdout.strip().split("} ")
    assert "'finished'" in outcome and "assistant_message" in outcome
    assert approval == "approved user ['sales']"
    # the buttons went; the output is the question and its answer, as text a saved notebook keeps
    [done] = [m["content"]["data"]["text/plain"] for m in ex.outputs
              if m["msg_type"] == "update_display_data"]
    turn = done.split("lash_nb: turn ")[1].split(" ")[0]
    assert done == WAITING.format(turn=turn, sid="shown") + ": approved by user"
    assert "waits for approval" not in ex.stderr  # shown once, as the buttons, not twice


@pytest.mark.skipif(kernel_serves_widgets_mid_cell(),
                    reason="ipykernel >= 7.4 shows Approve / Deny instead")
def test_on_an_older_kernel_the_cell_says_which_tool_waits_and_the_interrupt_ends_it(kernel):
    ex = kernel.submit(TURN.format(sid="told"), stop_on_error=False)
    kernel.pump_until(lambda: "interrupt the kernel" in ex.stderr, timeout=60)
    line = ex.stderr.strip()
    turn = line.split("lash_nb: turn ")[1].split(" ")[0]
    assert line.startswith(WAITING.format(turn=turn, sid="told") + "; this ipykernel 6.")
    assert "s.approvals().set_approver(fn)" in line and "(await s.approvals().next()).approve()" in line
    assert ex.widget_ids() == []  # no buttons that could not work
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=60)
    # the kernel's interrupt is recorded as such, as a %%lash cell's is (ADR 212)
    assert kernel.run(RECORDS.format(sid="told")).stdout.strip() == (
        "[('cancelled', ['cancelled by kernel_interrupt'])]")
    assert kernel.run("print(DROPPED)").stdout.strip() == "[]"


@pytest.mark.skipif(not kernel_serves_widgets_mid_cell(),
                    reason="ipykernel < 7.4 shows no buttons (the test above)")
def test_an_interrupt_while_the_buttons_show_leaves_the_question_and_its_end_as_text(kernel):
    ex = kernel.submit(TURN.format(sid="cut"), stop_on_error=False)
    box = kernel.wait_for_widget(ex, timeout=60)
    kernel.pump_until(lambda: len(_children(kernel, box)) == 2, timeout=30)
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=60)
    [done] = [m["content"]["data"]["text/plain"] for m in ex.outputs
              if m["msg_type"] == "update_display_data"]
    turn = done.split("lash_nb: turn ")[1].split(" ")[0]
    # the kernel's interrupt is recorded as such, not as asyncio's cancel (ADR 212)
    assert done == WAITING.format(turn=turn, sid="cut") + ": cancelled by kernel_interrupt"
    assert kernel.run(RECORDS.format(sid="cut")).stdout.strip() == (
        "[('cancelled', ['cancelled by kernel_interrupt'])]")  # the tool never ran


def test_a_run_sync_turn_in_a_cell_says_the_kernel_is_held_and_what_to_do(tmp_path):
    """``run_sync(s.turn(...).run())`` in a cell holds the kernel's main thread: no button,
    no other cell, no ``decide`` can answer until the cell ends. Before ADR 212 the line told
    the user to call ``decide`` "from another task or thread", which a held kernel cannot
    run, and the interrupt was recorded as ``asyncio``."""
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(SETUP + "from lash_nb import run_sync")
        code = TURN.format(sid="held").replace("await core.session('held').open()",
                                               "run_sync(core.session('held').open())")
        code = code.replace('await s.turn("drop the sales table").run()',
                            'run_sync(s.turn("drop the sales table").run())')
        ex = k.submit(code, stop_on_error=False)
        k.pump_until(lambda: "waits for approval" in ex.stderr, timeout=60)
        line = ex.stderr.strip()
        turn = line.split("lash_nb: turn ")[1].split(" ")[0]
        assert line == WAITING.format(turn=turn, sid="held") + (
            "; this cell waits in run_sync, which holds the kernel: nothing can answer the "
            "question until the cell ends. Interrupt the kernel (the turn ends stopped: "
            "cancelled, the tool does not run), then run the turn with "
            "out = await s.turn(...).run() (Approve / Deny show under the cell), or set "
            "s.approvals().set_approver(fn) before run_sync")
        k.km.interrupt_kernel()
        k.wait(ex, timeout=60)
        assert ex.error == "KeyboardInterrupt: "
        out = k.run(RECORDS.format(sid="held").replace("await s.store", "run_sync(s.store")
                    .replace("('held')", "('held'))")).stdout.strip()
        assert out == "[('cancelled', ['cancelled by kernel_interrupt'])]"
        assert k.run("print(DROPPED)").stdout.strip() == "[]"
