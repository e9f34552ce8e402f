"""A stored session name holding a bidi override or a control character is shown escaped in
every listing, as the session card shows it (ADR 215's ``shown_name``; docs/adr/0219).

A new name with such a character is refused (ADR 215), but a store written before holds it:
``report<U+202E>exe.csv`` draws as ``reportvsc.exe``. Before, the card showed it escaped,
while ``%lash sessions``, ``%lash usage --by turn`` and ``%lash graph --df`` shown in the
cell put it raw in the table (the override turned the rest of the cell around), and the queue
panel dropped the override (``reportexe.csv``: a name that is not the session's). Now each
shows ``'report\\u202eexe.csv'``; ``df = %lash sessions`` keeps the name as stored, so code
can open it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import lash_shell
from test_notebook_small_trust import BIDI, stored_before

SHOWN = "'report\\u202eexe.csv'"


@pytest.mark.parametrize("verb", ["sessions", "usage --by turn", "graph --df"])
def test_a_stored_bidi_name_is_escaped_in_each_shown_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verb: str) -> None:
    stored_before(tmp_path / "old.duckdb")
    with lash_shell(tmp_path, monkeypatch) as sh:
        sh.user_ns["name"] = BIDI
        sh.run_cell("%lash open {name} --store old.duckdb")
        shown = sh.run_cell(f"%lash {verb}")
        kept = sh.run_cell(f"df = %lash {verb}\ndf")
        for text in (shown._repr_html_(), repr(shown)):
            assert "\u202e" not in text, text
            assert "report\\u202eexe.csv" in text, text
        assert set(shown["session_id"]) == {SHOWN}
        assert set(kept["session_id"]) == {BIDI}  # the data: the name as stored
        if verb == "sessions":  # what code does with it: open the session by its stored name
            sh.user_ns["again"] = kept["session_id"][0]
            sh.run_cell("%lash usage --session {again}")


def test_the_queue_panel_shows_a_stored_bidi_name_escaped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored_before(tmp_path / "old.duckdb")
    with lash_shell(tmp_path, monkeypatch) as sh:
        sh.user_ns["name"] = BIDI
        sh.run_cell("%lash open {name} --store old.duckdb")
        panel = sh.run_cell("%lash queue")
        assert panel.session_id == SHOWN
        saved = panel.snapshot_html()  # what the saved notebook holds
        assert "report\\u202eexe.csv" in saved and "\u202e" not in saved, saved
        panel.close()


def test_a_turns_head_and_a_drains_line_show_a_stored_bidi_name_escaped() -> None:
    """The turn widget's head (live: its ``session_id`` drawn as text) and its saved title,
    and the drain's progress line, as the card shows the name; the record's ``%lash sql``
    queries keep the name as it is (they must find the session's rows)."""
    from lash_nb._notebook.drain import DrainProgress
    from lash_nb._notebook.widgets.snapshot import turn_html
    from lash_nb._notebook.widgets.turn import TurnWidget

    widget = TurnWidget(session_id=BIDI, turn_id="t1")
    try:
        assert widget.session_id == SHOWN
        saved = turn_html(widget.state())  # the saved record's title
        assert "\u202e" not in saved and "report\\u202eexe.csv" in saved, saved
        long = "word " * 5_000  # a prompt past what the record shows: its note's query
        widget.prompt = long
        assert "session_id = 'report" in widget.prompt
    finally:
        widget.close()
    label = DrainProgress(BIDI, done=1, total=1, turns=1, running=False).label()
    assert label == f"drained 1 batch(es) of {SHOWN} in 1 turn(s)"
