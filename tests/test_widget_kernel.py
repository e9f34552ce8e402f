"""Widget protocol through a real kernel: the frontend's comm messages, driven by jupyter_client."""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell, prose_of

mid_cell_stop = pytest.mark.skipif(
    not kernel_serves_widgets_mid_cell(),
    reason="ipykernel < 7.4 handles a Stop click after the cell (ADR 23; test_kernel_versions.py)",
)

SYNTHETIC_TURN = """
import asyncio
from lash_nb._core.cancel import CancellationToken
from lash_nb._notebook.widgets.turn import TurnWidget
token = CancellationToken()
w = TurnWidget(session_id="s1", on_stop=lambda: token.cancel("widget")).show()
async def fake_turn():
    n = 0
    while not token.cancelled and n < 3000:
        n += 1
        w.push({"id": f"a{n}", "correlation_id": "p1", "type": "assistant_prose_delta", "text": f"w{n} "})
        await asyncio.sleep(0.004)
    out = {"stopped": "cancelled"} if token.cancelled else {"finished": {"assistant_message": {"text": ""}}}
    w.push({"id": "end", "correlation_id": "end", "type": "turn_outcome", "outcome": out, "turn_id": "t1"})
    w.finish()
    return n
deltas = await fake_turn()
print("deltas", deltas)
"""


@pytest.fixture(scope="module")
def kernel():
    with KernelHarness() as k:
        yield k



@mid_cell_stop
def test_stop_message_ends_an_awaiting_cell_with_partial_prose_and_cancelled_outcome(kernel):
    ex = kernel.submit(SYNTHETIC_TURN)
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.pump_until(lambda: len(prose_of(kernel.state(model_id))) > 20, timeout=120)
    kernel.send_custom(model_id, {"type": "stop"})
    kernel.wait(ex, timeout=120)

    assert ex.status == "ok", ex.error
    deltas = int(ex.stdout.split()[-1])
    assert 0 < deltas < 3000  # stopped early, not run to the end
    state = kernel.state(model_id)
    assert state["outcome"] == "stopped: cancelled"
    assert state["status"] == "stopped"
    assert prose_of(state).startswith("w1 w2 w3 ")
    assert prose_of(state).endswith(f"w{deltas} ")
    statuses = [u["status"] for u in kernel.update_log[model_id] if "status" in u]
    assert "stopping" in statuses  # the Stop click is acknowledged before the turn ends


def test_updates_are_coalesced_into_far_fewer_comm_messages_than_deltas(kernel):
    ex = kernel.run(SYNTHETIC_TURN.replace("n < 3000", "n < 400").replace("0.004", "0"))
    model_id = ex.widget_ids()[0]
    assert ex.stdout.strip() == "deltas 400"
    assert kernel.comm_updates[model_id] < 40
    assert prose_of(kernel.state(model_id)).count(" ") == 400
    assert kernel.state(model_id)["outcome"] == "finished: assistant_message"


def test_the_next_cell_runs_after_a_stopped_turn(kernel):
    ex = kernel.submit(SYNTHETIC_TURN)
    model_id = kernel.wait_for_widget(ex, name="TurnWidget")
    kernel.send_custom(model_id, {"type": "stop"})
    kernel.wait(ex, timeout=120)
    after = kernel.run("print(6 * 7)")
    assert after.stdout.strip() == "42"


def test_stop_after_the_turn_finished_changes_nothing(kernel):
    ex = kernel.run(SYNTHETIC_TURN.replace("n < 3000", "n < 3"))
    model_id = ex.widget_ids()[0]
    before = kernel.comm_updates[model_id]
    kernel.send_custom(model_id, {"type": "stop"})
    check = kernel.run("print(w.stop_requests, w.status, token.cancelled)")
    assert check.stdout.strip() == "0 done False"
    assert kernel.comm_updates[model_id] == before


def test_finished_display_carries_the_final_turn_as_markdown_text(kernel):
    ex = kernel.run(SYNTHETIC_TURN.replace("n < 3000", "n < 3"))
    (record,) = [m["content"]["data"] for m in ex.outputs if m["msg_type"] == "update_display_data"
                 and "lash-static" in m["content"]["data"].get("text/html", "")]
    assert sorted(record) == ["text/html", "text/plain"]  # no third copy as text/markdown
    text = record["text/plain"]
    assert text.startswith("**lash turn** `t1`")
    assert "w1 w2 w3" in text
    assert "**finished: assistant_message**" in text


def test_a_finished_turn_replaces_its_widget_output_by_static_html(kernel):
    ex = kernel.run(SYNTHETIC_TURN.replace("n < 3000", "n < 3"))
    shown = [m for m in ex.outputs if m["msg_type"] == "display_data"]
    updates = [m for m in ex.outputs if m["msg_type"] == "update_display_data"]
    assert "application/vnd.jupyter.widget-view+json" in shown[0]["content"]["data"]
    display_id = shown[0]["content"]["transient"]["display_id"]
    last = updates[-1]["content"]
    assert last["transient"]["display_id"] == display_id
    assert "application/vnd.jupyter.widget-view+json" not in last["data"]
    assert "w1 w2 w3" in last["data"]["text/html"]
    assert "finished: assistant_message" in last["data"]["text/html"]
