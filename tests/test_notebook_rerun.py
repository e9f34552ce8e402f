"""Running a notebook's cells again in the same kernel, after the notebook closed its core.

The quickstart's restart section closes the session's core (``await core.close()``, which
closes the store with it). A user who then runs the notebook again from the top without a
kernel restart (Run All again), or adds a ``%%lash`` cell below, must get a working session,
not a store the magics keep handing out after it was closed.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from notebook_harness import ReraisingShell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    shell.run_cell("session = %lash open again --store again.duckdb --fresh")
    shell.run_cell("%%lash\nfirst question")
    # what notebooks/01-quickstart.ipynb's section 7 does
    shell.run_cell("core = session.core\nawait session.close()\nawait core.close()")
    yield shell
    shell.close()


def _turn_outcomes(sh):
    sh.run_cell("_t = %lash sql SELECT outcome FROM turns ORDER BY seq")
    return list(sh.user_ns["_t"]["outcome"])


def test_open_after_the_notebook_closed_the_core_opens_the_file_again(sh):
    sh.run_cell("session = %lash open again --store again.duckdb")
    assert sh.user_ns["session"].read_view().turn_index == 1  # the first turn, from the file
    sh.run_cell("%%lash\nsecond question")
    assert _turn_outcomes(sh) == ["finished", "finished"]


def test_open_fresh_after_the_core_was_closed_runs_the_notebook_again(sh):
    """Run All a second time: the open cell has ``--fresh``."""
    sh.run_cell("session = %lash open again --store again.duckdb --fresh")
    with capture_output() as cap:
        sh.run_cell("%%lash\nfirst question")
    assert any("finished: assistant_message" in o.data.get("text/plain", "") for o in cap.outputs)


def test_a_lash_cell_after_the_core_was_closed_says_how_to_open_it_again(sh):
    with pytest.raises(UsageError) as err:
        sh.run_cell("%%lash\nstill there?")
    assert "%lash open again" in str(err.value)
    sh.run_cell("%lash open again --store again.duckdb")
    sh.run_cell("%%lash\nstill there?")
    assert _turn_outcomes(sh) == ["finished", "finished"]
