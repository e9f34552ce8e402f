"""Approval in a real kernel: the Approve message reaches a ``%%lash`` cell that waits on a tool
row, and a kernel interrupt while the row waits ends the cell as Stop does (``stopped:
cancelled``, the question closed ``cancelled by kernel_interrupt``), the next cell runs."""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell

TOOL = ('from lash_nb import tool\n\nDROPPED = []\n\n@tool(approval="ask")\n'
        'def drop_table(name: str) -> str:\n    """Drop a table."""\n'
        '    DROPPED.append(name)\n    return f"dropped {name}"')
DECISIONS = (
    "b = __import__('lash_nb._notebook.extension', fromlist=['x'])._magics().ctx.bindings['ap']\n"
    "recs = await b.session.store.load_turns('ap')\n"
    "print(DROPPED, [(t.stop_reason, [c['approval']['decision'] + ' by ' + c['approval']['by']\n"
    "                  for c in t.result['tool_calls']]) for t in recs])")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("nb")
    with KernelHarness(cwd=str(cwd)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.01")
        k.run(TOOL)
        k.run("%lash open ap --store ap.duckdb --fresh --tools drop_table")
        yield k


def _waiting(kernel, ex):
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.pump_until(lambda: any(b.get("status") == "waiting"
                                  for b in kernel.state(model_id).get("blocks", ())), timeout=60)
    [row] = [b for b in kernel.state(model_id)["blocks"] if b["kind"] == "tool"]
    return model_id, row


def test_a_kernel_interrupt_while_asking_stops_the_turn_like_stop(kernel):
    ex = kernel.submit("%%lash\nPlease drop_table 'prod'\n", stop_on_error=False)
    model_id, row = _waiting(kernel, ex)
    assert row["approval"] == {"state": "pending", "policy": "ask"}
    kernel.km.interrupt_kernel()
    kernel.wait(ex, timeout=60)
    assert ex.status == "error" and ex.error.startswith("TurnInterrupted: the kernel's interrupt")
    state = kernel.state(model_id)
    assert state["outcome"] == "stopped: cancelled"
    [row] = [b for b in state["blocks"] if b["kind"] == "tool"]
    assert (row["status"], row["approval"]["state"], row["approval"]["by"]) == (
        "cancelled", "cancelled", "kernel_interrupt")
    assert kernel.run(DECISIONS).stdout.strip() == (
        "[] [('cancelled', ['cancelled by kernel_interrupt'])]")


@pytest.mark.skipif(not kernel_serves_widgets_mid_cell(),
                    reason="ipykernel < 7.4 handles a widget message after the cell (ADR 23)")
def test_the_approve_message_reaches_a_waiting_cell(kernel):
    ex = kernel.submit("%%lash\nPlease drop_table 'sales'\n")
    model_id, row = _waiting(kernel, ex)
    kernel.send_custom(model_id, {"type": "approve", "call_id": row["call_id"]})
    kernel.wait(ex, timeout=60)
    assert ex.status == "ok", ex.error
    state = kernel.state(model_id)
    assert state["outcome"] == "finished: assistant_message"
    [row] = [b for b in state["blocks"] if b["kind"] == "tool"]
    assert (row["status"], row["approval"]["by"]) == ("done", "user")
    assert kernel.run(DECISIONS).stdout.strip().startswith("['sales'] [")
