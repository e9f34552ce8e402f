"""The cut-turn note shown under a live turn view (``snapshot.cut_turn_note``, ADR 137).

The view hides it while it lives; a notebook saved before the turn ends keeps it, so the
saved file says the turn was cut instead of showing a widget it cannot load. While the turn
runs, each cell end updates it to name that cell (``cells.cell_ended``: a run of the whole
notebook ends there, ADR 191); once the turn's record replaces the view it becomes an empty,
hidden output (``gone``). Written before the turn's end, it cannot know that end (a restart,
a shutdown, a kill, or none: a save mid-run) and says so; once the turn has its id the note
names it and the ``%lash replay`` that shows how the store has it (``named``, ADR 217).
"""

from __future__ import annotations

from typing import Any

from .snapshot import NOTE_GONE, cut_text, cut_turn_note, still_running_text


class CutNote:
    """The note's display (shown at once, with a display id) and its updates."""

    def __init__(self, panel_id: str, session_id: str, prompt: str) -> None:
        from IPython.display import display

        self._ids = (panel_id, session_id, prompt)
        self._turn_id = ""
        self._count: int | None = None
        self._ended = False  # a cell ended while the turn ran
        self._gone = False  # the record replaced the view: the note stays empty
        self._handle: Any = display(_snapshot(*self._note()), display_id=True)

    def _note(self) -> tuple[str, str]:
        sid, tid = self._ids[1], self._turn_id
        text = still_running_text(self._count, sid, tid) if self._ended else cut_text(sid, tid)
        return cut_turn_note(*self._ids, text, turn_id=tid)

    def named(self, turn_id: str) -> None:
        """The turn has its id: the note names it, and the ``%lash replay`` that shows it."""
        if turn_id and turn_id != self._turn_id and not self._gone:
            self._turn_id = turn_id
            self._handle.update(_snapshot(*self._note()))

    def still_running_at(self, count: int | None) -> None:
        """Cell ``[count]`` ended while the turn runs (called by ``cells.cell_ended``)."""
        self._count, self._ended = count, True
        self._handle.update(_snapshot(*self._note()))

    def gone(self) -> None:
        """The record replaced the view: nothing of the note stays to read."""
        self._gone = True
        self._handle.update(_snapshot(NOTE_GONE, ""))


def _snapshot(html: str, plain: str) -> Any:
    from .panel import _Snapshot

    return _Snapshot(html, plain)


__all__ = ["CutNote"]
