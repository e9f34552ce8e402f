"""lash_nb in a terminal IPython shell (``ipython``, no kernel, no notebook to save).

Each turn displayed, beside its live view, the note a saved notebook shows for a turn cut by
a kernel restart; a notebook replaces it when the turn ends, a terminal prints every display
once and cannot. So every turn in a terminal printed "this turn did not end while the notebook
was open (the kernel restarted, ...)" above its finished answer.
"""

from __future__ import annotations

from IPython.utils.capture import capture_output
from notebook_harness import lash_shell


def test_a_finished_turn_in_a_shell_without_a_kernel_says_nothing_of_a_cut_turn(tmp_path,
                                                                               monkeypatch):
    opened = lash_shell(tmp_path, monkeypatch, "%lash open t --store t.duckdb")
    with opened as sh, capture_output() as cap:
        sh.run_cell("%lash turn hello there")
    shown = cap.stdout + "".join(o.data.get("text/plain", "") for o in cap.outputs)
    assert "You said: hello there" in shown
    assert "did not end" not in shown
