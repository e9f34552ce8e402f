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


def _history_from_the_file(sh):
    """Turns and messages of session 'again' as a new core reads them from the file."""
    sh.run_cell("await session.core.close()\n"
                "session = %lash open again --store again.duckdb\n"
                "_v = session.read_view()")
    view = sh.user_ns["_v"]
    return view.turn_index, [m.role.value for m in view.messages()]


@pytest.mark.parametrize("fresh", [True, False], ids=["after-open-fresh", "same-history"])
def test_a_turn_id_used_before_in_the_session_is_refused_and_the_history_stays_whole(sh, fresh):
    """Run All again: ``%lash turn --turn-id ID`` a second time in the same session (its turns
    keep their ids across ``open --fresh``). The store already holds a turn under that id and
    would not take a second; the turn must not run as if it were stored (it looked finished,
    and the next turn was stored after messages that never were: reopened, the session had
    lost its history)."""
    sh.run_cell(f"session = %lash open again --store again.duckdb{' --fresh' if fresh else ''}")
    sh.run_cell("%lash turn --turn-id oslo-1 What does weather say for 'Oslo'?")
    if fresh:
        sh.run_cell("session = %lash open again --store again.duckdb --fresh")
    refused = ""
    try:
        sh.run_cell("%lash turn --turn-id oslo-1 What does weather say for 'Oslo'?")
    except UsageError as err:
        refused = str(err)
    sh.run_cell("%lash turn and now?")
    _, roles = _history_from_the_file(sh)
    # fresh: the last graph holds only "and now?"; else the first question, oslo-1, and now?
    assert roles == ["user", "assistant"] * (1 if fresh else 3)
    assert _turn_outcomes(sh) == ["finished"] * 3
    assert "'oslo-1' is already used" in refused


def test_replay_takes_a_notebook_variable_as_the_turn_id(sh):
    sh.run_cell("session = %lash open again --store again.duckdb")
    sh.run_cell("oslo = %lash turn What does weather say for 'Oslo'?")
    sh.run_cell("%lash turn something else")
    shown = sh.run_cell("%lash replay {oslo.turn_id}")
    assert shown.turn_id == sh.user_ns["oslo"].turn_id
