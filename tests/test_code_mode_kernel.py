"""Code mode in a real notebook kernel: the widget's Stop (a comm message, as the browser
sends it) interrupts the sandbox mid-cell and the turn commits `stopped: cancelled` with the
cells run so far; the next cell of the notebook runs."""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell

pytestmark = [
    pytest.mark.slow,  # a notebook kernel that starts a sandbox kernel
    pytest.mark.skipif(not kernel_serves_widgets_mid_cell(),
                       reason="ipykernel < 7.4 handles a Stop click after the cell (ADR 23)"),
]

SETUP = """
%config LashMagics.store = 'stop.duckdb'
import pandas as pd
from lash_nb.providers import FunctionProvider
frame = pd.DataFrame({"x": [1, 2, 3]})

def model(request):
    obs = [m for m in request.messages if m.origin == "code_observation"]
    if not obs:
        return "<python>\\nprint(len(frame))\\n</python>"
    return "<python>\\nimport time\\nprint('working', flush=True)\\ntime.sleep(600)\\n</python>"

session = %lash open stopper --fresh --provider offline --mode code --share frame
session.provider = FunctionProvider(model)
"""


def test_the_widgets_stop_interrupts_a_running_cell_and_commits_the_cells_so_far(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb")  # a cell of its own: later cells' %lash lines are awaited
        setup = k.run(SETUP, timeout=120)
        assert setup.status == "ok", setup.error
        ex = k.submit("%%lash -o r\nhow many rows?")
        model_id = k.wait_for_widget(ex, name="TurnWidget", timeout=120)

        def working() -> bool:
            cells = [b for b in k.state(model_id).get("blocks", []) if b["kind"] == "cell"]
            return len(cells) == 2 and "working" in (cells[1].get("output") or "")

        k.pump_until(working, timeout=120)
        k.send_custom(model_id, {"type": "stop"})
        k.wait(ex, timeout=120)
        assert ex.status == "ok", ex.error

        check = k.run("print(r.outcome, r.cancellation['origin'])\n"
                      "events = await session._stored_events(r.turn_id)\n"
                      "print([(e.event.cell, e.event.status) for e in events "
                      "if e.type == 'code_cell_completed'])\n"
                      "print(6 * 7)", timeout=60)
        lines = check.stdout.strip().splitlines()
        assert lines[0] == "stopped: cancelled widget_stop"
        assert lines[1] == "[(1, 'ok'), (2, 'cancelled')]"
        assert lines[2] == "42"
