"""The Stop button stops its own cell's turn, not the turn of another cell.

A user starts a long answer with ``%%lash --background``, types the next question in another
cell (its turn waits for the first), thinks better of it and presses Stop on the second
widget. The Stop called ``session.cancel_running_turns()``: the first cell's turn, still
streaming the answer they wanted, was cut too (committed ``stopped: cancelled`` with half its
answer). Now the button stops the turn of its own widget; the other cell's turn finishes.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell, prose_of

pytestmark = pytest.mark.skipif(
    not kernel_serves_widgets_mid_cell(),
    reason="ipykernel < 7.4 handles a Stop click after the cell (ADR 23; test_kernel_versions.py)",
)

LONG = "%%lash --background\nplease echo " + " ".join(f"word{i}" for i in range(120)) + "\n"


def test_stop_on_a_waiting_turn_leaves_the_other_cells_turn_running(tmp_path):
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
        assert k.state(second_id)["outcome"] == "stopped: cancelled"
        assert k.state(first_id)["outcome"] == "finished: assistant_message"
        assert "word119" in prose_of(k.state(first_id))  # the whole answer


def test_stop_on_a_drain_leaves_another_cells_waiting_turn_alone(tmp_path):
    """The same for a drain: ``%lash drain --background`` streams the queued answer, the user
    asks a question in the next cell (its turn waits for the drain) and stops the drain. Its
    Stop cut every turn of the session: the question was stopped before it began."""
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0.03")
        k.run("%lash open s1 --store lash.duckdb --fresh")
        k.run("%lash enqueue please echo " + " ".join(f"word{i}" for i in range(120)))
        drain = k.submit("%lash drain --background")
        drain_id = k.wait_for_widget(drain, name="TurnWidget")
        k.pump_until(lambda: len(prose_of(k.state(drain_id))) > 30, timeout=120)
        later = k.submit("%%lash\nand a question typed meanwhile\n")
        later_id = k.wait_for_widget(later, name="TurnWidget")
        k.send_custom(drain_id, {"type": "stop"})
        k.wait(later, timeout=120)
        k.pump_until(lambda: bool(k.state(drain_id).get("outcome")), timeout=120)
        assert k.state(drain_id)["outcome"] == "stopped: cancelled"
        assert k.state(later_id)["outcome"] == "finished: assistant_message"
        assert "and a question typed meanwhile" in prose_of(k.state(later_id))
