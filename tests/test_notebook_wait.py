"""``%lash wait``: a notebook's last cell that holds a run until its background turns ended
(ADR 191), in a shell (no kernel): what it says, and that the turns it waited for are stored."""

from __future__ import annotations

from IPython.utils.capture import capture_output
from notebook_harness import lash_shell


def test_lash_wait_waits_for_the_background_turns_and_says_so(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.offline_delay_s = 0.01",
                    "%lash open s1 --store w.duckdb") as sh:
        with capture_output() as none:
            sh.run_cell("%lash wait")
        assert none.stdout == "no background turn or drain is running\n"
        sh.run_cell("%lash enqueue queued one")
        sh.run_cell("%%lash --background -o rb\nplease echo " + " ".join(f"w{i}" for i in range(40)))
        sh.run_cell("%lash drain --background")
        with capture_output() as cap:
            sh.run_cell("n = %lash wait")
        assert sh.user_ns["n"] == 2
        assert cap.stdout == ("waited for 1 background turn and 1 drain: all ended (see their "
                              "records above)\n")
        assert str(sh.user_ns["rb"].outcome) == "finished: assistant_message"
        assert sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")["n"].tolist() == [2]
