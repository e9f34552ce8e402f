"""A misspelled ``--delivery`` / ``--slot`` value of ``%lash enqueue`` is one line that names
the value meant, in the words the magic's help uses (``earliest``, ``after-commit``), and
queues nothing. Before, it listed only the wire names, which the help never shows."""

from __future__ import annotations

import pytest
import test_notebook_magics
from IPython.core.error import UsageError

sh = test_notebook_magics.sh  # the IPython shell fixture, shared


@pytest.mark.parametrize(("option", "typo", "meant"), [
    ("--delivery", "earlist", "earliest"),
    ("--delivery", "after-comit", "after-commit"),
    ("--slot", "joyn", "join"),
])
def test_a_misspelled_policy_names_the_one_meant_and_queues_nothing(sh, option, typo, meant):
    sh.run_cell("%lash open q")
    with pytest.raises(UsageError) as e:
        sh.run_cell(f"%lash enqueue {option} {typo} hello")
    line = str(e.value)
    assert "\n" not in line
    assert f"did you mean {meant}?" in line, line
    if option == "--delivery":  # the help's words, each beside its wire name
        assert "earliest (earliest_safe_boundary)" in line, line
        assert "after-commit (after_current_turn_commit)" in line, line
    assert len(sh.run_cell("%lash queue --df")) == 0
    # the value meant works
    sh.run_cell(f"%lash enqueue {option} {meant} hello")
    assert len(sh.run_cell("%lash queue --df")) == 1
