"""Typos in options, in a notebook. A misspelled ``--delivery`` / ``--slot`` value of
``%lash enqueue`` names the value meant, in the words the magic's help uses (``earliest``,
``after-commit``), and queues nothing (it listed only the wire names, which the help never
shows); an unknown option names the verb it was given to (it said "for %lash")."""

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


@pytest.mark.parametrize(("cell", "says"), [
    ("%lash turn --bogus hello", ("unknown option --bogus for %lash turn; its options: "
                                  "--session, -o, --turn-id, --system, --attach, --background, "
                                  "--raw; see %lash help")),
    ("%%lash --sesion s2\nhello", "unknown option --sesion for %%lash; did you mean --session?"),
    ("%lash enqueue --merge-kee k hello", ("unknown option --merge-kee for %lash enqueue; "
                                           "did you mean --merge-key?")),
])
def test_an_unknown_option_names_the_verb_it_was_given_to(sh, cell, says):
    """It said "for %lash" whatever the verb (the verb's own options are the ones meant)."""
    sh.run_cell("%lash open q")
    with pytest.raises(UsageError) as e:
        sh.run_cell(cell)
    assert says in str(e.value), str(e.value)
    assert len(sh.run_cell("%lash queue --df")) == 0
    assert sh.run_cell("%lash sessions").empty  # no turn ran


@pytest.mark.parametrize(("cell", "says"), [
    ("%lash sql SELECT '{nosuch}' AS x", "{nosuch} in the query names nothing defined"),
    ("%lash replay {nosuch.turn_id}", "{nosuch.turn_id} in the turn id names nothing defined"),
    ("%lash turn about {nosuch}", "{nosuch} in the prompt names nothing defined"),
])
def test_an_undefined_name_says_where_it_was_written(sh, cell, says):
    """``{name}`` works in a query and a turn id as in a prompt; the error said "in the
    prompt" for each."""
    sh.run_cell("%lash open q")
    sh.run_cell("%lash turn hello")
    with pytest.raises(UsageError) as e:
        sh.run_cell(cell)
    assert str(e.value).startswith(says), str(e.value)


def test_the_provider_setting_names_every_provider_open_takes(sh, capsys):
    """``%config LashMagics`` listed five of the eight providers ``%lash open --provider``
    takes (its error names them all)."""
    with pytest.raises(UsageError) as e:
        sh.run_cell("%lash open s --provider nosuch")
    named = str(e.value).rsplit("one of ", 1)[1].split(", ")
    assert len(named) == 8 and "litellm" in named, named
    capsys.readouterr()
    sh.run_cell("%config LashMagics")
    config_text = capsys.readouterr().out
    after = config_text.split("LashMagics.provider", 1)[1].split("LashMagics.", 1)[0]
    assert [n for n in named if n not in after] == [], after
