"""A turn stopped while it still waited for another turn of its session says it never started.

A user runs a long answer with ``%%lash --background``, asks a second question in the next
cell (its turn waits for the first one to end) and presses Stop on the second. Its record read
``0.0 s · stopped: cancelled`` and nothing else: it did not say the turn never began, that the
model never saw the question and that nothing was spent. Now a row says so, in the live view's
last state and in the saved record (ADR 191).
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell, prose_of

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not kernel_serves_widgets_mid_cell(),
    reason="ipykernel < 7.4 handles a Stop click after the cell (ADR 23; test_kernel_versions.py)",
)]

LONG = "%%lash --background\nplease echo " + " ".join(f"word{i}" for i in range(120)) + "\n"
NEVER_STARTED = ("stopped while it waited for the turn running before it in this session: it "
                 "never started, the model never saw it and nothing was spent")


def test_a_turn_stopped_while_it_waited_says_it_never_started_live_and_saved(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.03")
        k.run("%lash open s1 --store lash.duckdb --fresh")
        first = k.submit(LONG)
        first_id = k.wait_for_widget(first, name="TurnWidget")
        k.pump_until(lambda: len(prose_of(k.state(first_id))) > 30, timeout=120)
        second = k.submit("%%lash\nand a second question\n")
        second_id = k.wait_for_widget(second, name="TurnWidget")
        k.send_custom(second_id, {"type": "stop"})
        k.wait(second, timeout=120)
        k.pump_until(lambda: bool(k.state(first_id).get("outcome")), timeout=120)
        live = k.state(second_id)
        assert live["outcome"] == "stopped: cancelled"
        assert [(b["kind"], b["text"]) for b in live["blocks"]] == [("notice", NEVER_STARTED)]
        records = [m["content"]["data"] for m in second.outputs
                   if m["msg_type"] == "update_display_data"
                   and "and a second question" in m["content"]["data"].get("text/plain", "")]
        assert len(records) == 1
        assert NEVER_STARTED in records[0]["text/html"]
        assert NEVER_STARTED in records[0]["text/plain"]
        # replayed from the store (what it cannot know: that it waited), it says the rest
        replay = k.run(f"%lash replay {live['turn_id']}")
        assert ("stopped before it reached the model: the model never saw it and nothing was "
                "spent") in replay.data("text/plain")[-1]
        # the first turn ran whole: the words were said only about the stopped one
        assert k.state(first_id)["outcome"] == "finished: assistant_message"
        assert not any(b["kind"] == "notice" for b in k.state(first_id)["blocks"])


def test_a_turn_stopped_mid_answer_gets_no_never_started_row(tmp_path):
    """A turn stopped mid-answer reached the model: no such row, its partial answer marked
    interrupted as before."""
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.03")
        k.run("%lash open s1 --store lash.duckdb --fresh")
        ex = k.submit(LONG.replace("%%lash --background", "%%lash"))
        wid = k.wait_for_widget(ex, name="TurnWidget")
        k.pump_until(lambda: len(prose_of(k.state(wid))) > 10, timeout=120)
        k.send_custom(wid, {"type": "stop"})
        k.wait(ex, timeout=120)
        blocks = k.state(wid)["blocks"]
        assert k.state(wid)["outcome"] == "stopped: cancelled"
        assert not any(b["kind"] == "notice" for b in blocks)
        assert blocks[-1]["kind"] == "prose" and blocks[-1].get("interrupted")
