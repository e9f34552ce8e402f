"""Which cell a turn's outputs are sent under, so that a notebook run with nobody watching
(nbclient, ``jupyter nbconvert --execute``, papermill) saves what JupyterLab saves (ADR 191).

Theory of operation
- A front end places an ``update_display_data`` by its display id, in whatever cell holds it;
  nbclient does too, but reads only the messages whose parent is the cell it runs now, and
  stops reading after the last cell. ipykernel 7 sends a task's output under the parent of
  the cell that started the task: the final record of a ``%%lash --background`` turn went
  out under a cell nbclient had finished with, and the saved file kept the turn's first view.
- ``sent_where_seen(send)`` sends under the parent of the cell running now (the last one that
  ran, when none runs): JupyterLab applies it the same way (by display id), nbclient now reads
  it. Sent while no cell runs (a run between two cells), it is sent again at the start of the
  next cell, under that cell: the front end applies the same update twice.
- ``cell_ended``: the cut-turn note of each turn still running when a cell ends is told the
  cell's number and says the turn was still running then (``widgets/cut_note.py``; the note is
  hidden while the view lives; a run of the whole notebook shuts the kernel down after its last
  cell and leaves it).
- Outside a kernel (a terminal) nothing is sent twice: a shell prints each display.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

_running = False
_again: list[Callable[[], None]] = []  # finals sent while no cell ran: sent again with the next
_live: weakref.WeakSet[Any] = weakref.WeakSet()  # notes of turns shown and not finished


def _display_pub() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    return None if getattr(shell, "kernel", None) is None else shell.display_pub


def in_kernel() -> bool:
    """Whether this IPython runs in a kernel, whose outputs a notebook keeps."""
    return _display_pub() is not None


@contextlib.contextmanager
def under_the_running_cell() -> Iterator[None]:
    """Displays inside go out under the parent of the cell running now (or the last one)."""
    pub = _display_pub()
    header = getattr(pub, "_parent_header_global", None)  # ipykernel >= 7: the last execute's
    if not header or not hasattr(pub, "set_thread_parent"):  # ipykernel 6: always that one
        yield
        return
    token = pub.set_thread_parent(header)
    try:
        yield
    finally:
        pub.reset_thread_parent(token)


def sent_where_seen(send: Callable[[], None]) -> None:
    """``send()`` (display updates) under the cell running now; once more with the next cell
    when none runs."""
    with under_the_running_cell():
        send()
    if not _running and _display_pub() is not None:
        _again.append(send)


def watch(note: Any) -> None:
    """A running turn's cut-turn note: told each cell end until the turn ends (``forget``)."""
    _live.add(note)


def forget(note: Any) -> None:
    _live.discard(note)


def cell_started(*_info: Any) -> None:
    global _running
    _running = True
    again, _again[:] = list(_again), []
    for send in again:
        with contextlib.suppress(Exception):  # the cell runs whatever a re-send met
            send()


def cell_ended(result: Any = None) -> None:
    global _running
    _running = False
    count = getattr(result, "execution_count", None)
    for note in list(_live):
        with contextlib.suppress(Exception):
            note.still_running_at(count)


__all__ = ["cell_ended", "cell_started", "forget", "in_kernel", "sent_where_seen",
           "under_the_running_cell", "watch"]
