"""What ``%lash stop`` says when no turn of this kernel was running: whether the store shows
the session's turn running in another process (a worker, another notebook), and what the
user can do about it there. Read from the store's tables (``query_async``); a store without
queries (the in-memory one) has no other process."""

from __future__ import annotations

import os
import shlex
import socket
import time
from typing import Any

from .._core.visible import visible
from .._store.base import owner_is_dead


async def nothing_running_here(store: Any, session_id: str) -> str:
    """The one line ``%lash stop`` prints when it cancelled nothing in this kernel."""
    sid = session_id
    here = f"no turn of session {sid!r} was running in this kernel"
    run = getattr(store, "query_async", None)
    if run is None:
        return f"{here}; nothing to stop"
    q = sid.replace("'", "''")
    frame = await run(
        f"SELECT (SELECT count(*) FROM turns WHERE session_id = '{q}' AND status = 'open') "
        f"AS open_turns, (SELECT owner_id FROM execution_leases WHERE session_id = '{q}' AND "
        f"token IS NOT NULL AND expires_at_ms > {int(time.time() * 1000)}) AS holder")
    open_turns, holder = int(frame["open_turns"].iloc[0]), frame["holder"].iloc[0]
    if isinstance(holder, str) and holder and owner_is_dead(holder):
        pid = holder.split(":")[1]
        return (f"{here}; the process that ran its turn (pid {pid}, a worker or another "
                f"notebook) no longer runs: it died mid-turn, nothing is left to stop, and "
                f"%lash open {sid} (or the next turn) closes that turn stopped and frees the "
                "session; a queued batch it ran stays in %lash queue to run again")
    if isinstance(holder, str) and holder:
        return f"{here}; {_held_by(holder)}"
    if open_turns:
        return (f"{here}; the store shows a turn of it left open by a process that ended "
                f"mid-turn (no live owner): %lash open {sid} closes it there")
    return f"{here}, nor in another process; nothing to stop"


def _held_by(owner_id: str) -> str:
    host, _, rest = owner_id.partition(":")
    pid = rest.partition(":")[0]
    if not pid.isdigit():
        return (f"the store shows its turn running under owner {' '.join(visible(owner_id).split())!r} "
                "(another process), which %lash stop here cannot cancel: let it finish there, "
                "or stop it where it runs")
    if int(pid) == os.getpid():
        return ("the store shows it running under another handle of this kernel; stop that "
                "handle's turn (session.cancel_running_turns())")
    where = f"process pid {pid}" + ("" if host == socket.gethostname()
                                    else f" on host {' '.join(visible(host).split())}")
    return (f"the store shows its turn running in {where} (a worker or another notebook), "
            "which %lash stop here cannot cancel: let it finish there, or stop that process "
            f"(Ctrl-C in its terminal, or kill -TERM {pid}; a lash_nb worker then cuts its "
            "turn after its --grace seconds and returns the batch to the queue, where "
            "%lash queue can cancel it)")


def busy_line(session_id: str, holder: str | None) -> str:
    """A turn refused with ``SessionExecutionBusy`` (another process holds the session's
    execution lease), in a notebook's words: which process, and the magic that queues the
    input instead of the Python call the library's message names."""
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if pid.isdigit():
        where = f"process pid {pid}" + ("" if host == socket.gethostname()
                                        else f" on host {' '.join(visible(host).split())}")
        where += " (another notebook or a worker)"
    elif holder:
        where = f"another process (owner {' '.join(visible(holder).split())!r})"
    else:
        where = "another process (another notebook or a worker)"
    # lash refuses a turn on a busy session (SessionExecutionBusy), it never waits for it:
    # the way on is the queue, in the exact spelling a cell takes (ADR 0216)
    queue = f"%lash enqueue --session {shlex.quote(session_id)}"
    return (f"session {session_id!r} is running a turn in {where}; run this cell again once "
            f"that turn has finished, or queue it to run after that turn: `%{queue}` as the "
            f"cell's first line (a line: {queue} PROMPT); a worker draining the session runs "
            "it next, else %lash drain")
