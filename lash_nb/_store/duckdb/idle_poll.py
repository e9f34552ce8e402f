"""An idle worker's poll that does not reopen a file nobody has touched (ADR 0231).

Theory of operation
- A worker polls every ``poll_s`` (0.2 s) while it has nothing to do, and lets the DuckDB
  file go between polls so that notebooks and other workers can have it. Each poll then
  reopened the file (~20-25 ms with its schema check) to find the queue as it was: an idle
  worker spent ~10% of a core and took the file from everyone 4.5 times a second.
- A poll that finds nothing ready leaves a :class:`Quiet` mark, made while this process holds
  the file (nobody else can write it then):
  - the waiters' line's acquisition counter (``share.py``): every lash process bumps it as it
    takes the file, so an unchanged counter means no other lash process held it since;
  - this process's count of store jobs (``ConnectionWorker.jobs``): its own later writes (a
    notebook's enqueue beside a Python-API worker) take no new acquisition while it holds;
  - the file's and its ``.wal``'s identity, size and modification time, for a writer outside
    the line (``migrate-store`` opens without it; a plain DuckDB connection);
  - the earliest moment something becomes ready by itself, with no write: a batch scheduled
    for later (``available_at_ms``) or a lease running out (a dead worker's claim).
- The next poll answers "nothing ready" without opening the file while none of these moved,
  that moment has not come, the file is not held here (a held file is read, ~1 ms) and the
  last real read is younger than :data:`RECHECK_S` (a safety net for a change none of the
  above shows). Anything else reads the queue as before.
- Where the line is off (a read-only folder, no ``fcntl``) nothing is marked: every poll reads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from .hold import Hold

RECHECK_S = 5.0  # the longest an idle worker trusts a mark without reading the queue

# the earliest moment a queued batch or a lease makes work ready without anyone writing
NEXT_DUE_SQL = """
SELECT least(
    (SELECT min(available_at_ms) FROM queued_work_batches
     WHERE failed_at_ms IS NULL AND available_at_ms > $t),
    (SELECT min(expires_at_ms) FROM execution_leases
     WHERE token IS NOT NULL AND expires_at_ms > $t))
"""

Signature = tuple[tuple[int, int, int, int] | None, ...]


@dataclass(frozen=True)
class Quiet:
    acquisitions: int
    jobs: int
    files: Signature
    due_ms: int | None
    read_at: float  # ``time.monotonic()`` of the read


def files_signature(path: str) -> Signature:
    """(device, inode, size, mtime_ns) of the file and of its ``.wal`` (None: absent)."""
    out: list[tuple[int, int, int, int] | None] = []
    for p in (path, path + ".wal"):
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def mark(con: Any, worker: Any, hold: Hold, now_ms: int) -> Quiet | None:
    """In the poll's job, with the file held and nothing ready: what the next poll checks;
    None when it must read anyway (no line; this process has claims or leases in flight)."""
    line = worker.line
    if line is None or not line.on or not worker.path or hold.dirty_rows():
        return None
    marks = hold.claims
    if marks.unwritten or marks.logged or marks.done:
        return None
    acquisitions = line.acquisitions()
    if acquisitions is None:
        return None
    row = con.execute(NEXT_DUE_SQL, {"t": now_ms}).fetchone()
    due = int(row[0]) if row is not None and row[0] is not None else None
    return Quiet(acquisitions, worker.jobs, files_signature(worker.path), due, time.monotonic())


def still_quiet(worker: Any, now_ms: int) -> bool:
    """True when the queue cannot have changed since the mark: the poll may answer "nothing
    ready" without opening the file (a stat of two files and an 8-byte read)."""
    q: Quiet | None = worker.quiet
    if q is None or worker.holding or worker.stopped or worker.has_carry():
        return False
    if time.monotonic() - q.read_at >= RECHECK_S:
        return False
    if q.due_ms is not None and now_ms >= q.due_ms:
        return False
    line = worker.line
    return (line is not None and worker.jobs == q.jobs
            and line.acquisitions() == q.acquisitions
            and files_signature(worker.path) == q.files)
