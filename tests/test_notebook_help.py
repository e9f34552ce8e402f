"""A user who types ``--help`` or ``-h`` after a verb (as every command line takes it) gets
that verb's help, and nothing else happens: no session opened, no file created, no turn run.
``%lash help VERB`` shows the same rows."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from notebook_harness import lash_shell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def _rows(card) -> list[str]:
    return [line for line in card._repr_markdown_().splitlines() if line.startswith("| `")]


@pytest.mark.parametrize(("line", "row"), [
    ("%lash open --help", "| `%lash open [SESSION]"),
    ("%lash open -h", "| `%lash open [SESSION]"),
    ("%lash sql --help", "| `%lash sql [--allow-files] QUERY`"),
    ("%lash usage -h", "| `%lash usage [--by "),
    ("%lash enqueue --help", "| `%lash enqueue [--id K]"),
    ("%lash help sql", "| `%lash sql [--allow-files] QUERY`"),
])
def test_help_after_a_verb_shows_that_verb_and_does_nothing_else(sh, tmp_path, line, row):
    with capture_output() as cap:
        card = sh.run_cell(line)
    rows = _rows(card)
    assert len(rows) == 1 and rows[0].startswith(row), rows
    assert card._repr_markdown_().endswith("\n`%lash help` lists every verb.")
    assert "opened session" not in cap.stdout
    assert list(tmp_path.iterdir()) == []  # no store file created


def test_help_in_a_lash_cell_shows_the_turn_forms_and_runs_no_turn(sh, tmp_path):
    card = sh.run_cell("%%lash --help\nwhat is the weather?\n")
    rows = _rows(card)
    assert [r.split(" | ")[0] for r in rows] == [
        "| `%%lash [--session S] [-o VAR] [--background] [--system TEXT] [--attach fig,df] [--raw]`",
        "| `%lash turn PROMPT` / `r = %lash turn PROMPT`"]
    assert list(tmp_path.iterdir()) == []


def test_a_prompt_that_mentions_help_is_still_a_prompt(sh):
    r = sh.run_cell("r = %lash turn explain what --help does\nr")
    assert r.assistant_output.safe_text.startswith("You said: explain what --help does")


def test_an_unknown_verb_after_help_shows_every_verb(sh):
    assert len(_rows(sh.run_cell("%lash help bogus"))) > 10
    with pytest.raises(UsageError, match="did you mean %lash help"):
        sh.run_cell("%lash hlep")
