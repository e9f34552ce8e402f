"""A text option given several words without quotes, in a notebook.

``%lash prompt --set You are terse.`` is what a user types first. It was refused with
"got an unexpected argument 'are'; see %lash help", which names a word of the user's own
sentence and not the fix. Now the one line says the option takes one value and shows it in
quotes, with the user's own words; nothing changes until the text is quoted.
"""

from __future__ import annotations

import pytest
import test_notebook_magics
from IPython.core.error import UsageError

sh = test_notebook_magics.sh  # the IPython shell fixture, shared


@pytest.mark.parametrize(("cell", "says"), [
    ("%lash prompt --set You are terse.",
     '--set takes one value; put text with spaces in quotes: --set "You are terse."'),
    ("%lash prompt --add Always answer in French. --title lang",
     '--add takes one value; put text with spaces in quotes: --add "Always answer in French."'),
    ("%lash prompt --add 'Cite sources' --title Sources and links",
     '--title takes one value; put text with spaces in quotes: --title "Sources and links"'),
])
def test_unquoted_words_after_a_text_option_say_to_quote_them(sh, cell, says):
    sh.run_cell("%lash open q")
    with pytest.raises(UsageError) as e:
        sh.run_cell(cell)
    line = str(e.value)
    assert "\n" not in line
    assert says in line, line
    assert "unexpected argument" not in line
    assert sh.run_cell("p = %lash prompt") is None
    assert sh.user_ns["p"] is None  # nothing was set


def test_the_quoted_text_is_then_set(sh):
    sh.run_cell("%lash open q")
    sh.run_cell('%lash prompt --set "You are terse."')
    sh.run_cell("p = %lash prompt")
    assert "You are terse." in sh.user_ns["p"]


def test_an_unquoted_system_text_on_the_cell_line_is_refused_and_no_turn_runs(sh):
    """``%%lash --system be brief`` sent the system prompt "be" and the prompt "brief" plus
    the cell: half of the user's instruction reached the model as their question."""
    sh.run_cell("%lash open q")
    with pytest.raises(UsageError) as e:
        sh.run_cell("%%lash --system be brief and kind\nwhat is a p-value?\n")
    line = str(e.value)
    assert "\n" not in line
    assert '--system "be brief and kind"' in line, line
    assert sh.run_cell("%lash sessions").empty  # no turn ran
    # a quoted system text with a prompt on the line stays allowed (the line starts the prompt)
    sh.run_cell('%%lash --system "be brief" Summarize:\nthe p-value\n')
    assert not sh.run_cell("%lash sessions").empty


@pytest.mark.parametrize("cell", [
    "%lash open demo --store lash.duckdb          # offline provider unless a key is set",
    "%lash open demo # my first session",
    "%lash usage --by model  #per model",
])
def test_a_hash_comment_after_a_lash_line_says_it_is_not_a_comment(sh, tmp_path, cell):
    """The README once ended its ``%lash open`` line with ``# offline provider unless a key is
    set``, as a user comments a line of Python. IPython hands a magic its whole line, so the
    comment's words were options: the open was refused with advice to quote them into the
    store's path (``--store "lash.duckdb # offline provider ..."``), a wrong fix."""
    with pytest.raises(UsageError) as e:
        sh.run_cell(cell)
    line = str(e.value)
    assert "\n" not in line
    assert "not a comment" in line and "a line of its own" in line, line
    assert "put text with spaces in quotes" not in line
    assert not (tmp_path / "lash.duckdb # offline provider unless a key is set").exists()
