"""Retention in a DuckDB file: tombstones, vacuum, and giving the space back.

Theory of operation
- DuckDB reuses the blocks that deleted rows free, but never returns them to the file
  system: a file only ever grows. :func:`swap_in_copy` shrinks it the one way DuckDB allows:
  ``COPY FROM DATABASE`` of everything live (tables, sequences with their current values,
  indexes, constraints) into a fresh file with the store's block size, then a rename over
  the store's path.
- It runs as one job on the store's worker thread while this process *holds* the file
  (ADR 10/11): pending commits are folded and dirty lease rows written first, so the copy is
  the whole store; no other job of this process can run in between; no other process can
  open the old file (DuckDB's lock on it is ours). Right after the rename a waiting process
  may open the path, which is now the complete copy. The old file is then closed without a
  checkpoint (nothing was written to it after the copy, and a checkpoint would touch the
  ``.wal`` path, which now belongs to the copy) and this process's next job reopens the
  path, waiting in line like any other.
- The copy is written in the storage format the file had (``formats.py``, ADR 221): DuckDB
  would write its newest, and a colleague reading the store with an older DuckDB would find
  it refused after a vacuum.
- The copy replaces the file only if it is smaller than the checkpointed file (a small or
  dense store would grow: DuckDB preallocates); otherwise it is removed and nothing changes.
- Any failure before the rename leaves the store as it was and removes the half-made copy.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from .arrow import need_bindable
from .formats import storage_of
from .hold import Hold

COMPACT_SUFFIX = ".lash-compact"


def tombstone(con: Any, sid: str, node_ids: Sequence[str]) -> int:
    """Mark live nodes of ``sid`` tombstoned; how many were marked."""
    ids = list(dict.fromkeys(node_ids))
    if not ids:
        return 0
    need_bindable()  # a list (arrow.py)
    row = con.execute(
        "UPDATE graph_nodes SET tombstoned = true "
        "WHERE session_id = ? AND NOT tombstoned AND list_contains(?, node_id)",
        [sid, ids],
    ).fetchone()
    return int(row[0]) if row else 0


def delete_tombstoned(con: Any) -> int:
    row = con.execute("DELETE FROM graph_nodes WHERE tombstoned").fetchone()
    return int(row[0]) if row else 0


def swap_in_copy(con: Any, path: str, hold: Hold | None, block_size: int) -> tuple[int, int]:
    """Copy the held file into a fresh one; if the copy is smaller, rename it over ``path``.
    Returns the file size before and after. When it swapped (the sizes differ) the caller
    must close ``con`` right after (no checkpoint: ``disable_checkpoint_on_shutdown`` is set
    here) and reopen ``path``."""
    if hold is not None:
        hold.seal()  # the file may be swapped: every lease row must be in the copy
        hold.flush(con)
    con.execute("CHECKPOINT")  # measured checkpointed: a .wal is not free space
    before = os.path.getsize(path)
    tmp = path + COMPACT_SUFFIX
    _remove(tmp)
    name = con.execute("SELECT current_database()").fetchone()[0]
    storage = storage_of(con)
    keep = f", STORAGE_VERSION '{storage}'" if storage else ""
    try:
        con.execute(f"ATTACH '{_quote(tmp)}' AS lash_compact (BLOCK_SIZE {int(block_size)}{keep})")
        try:
            con.execute(f'COPY FROM DATABASE "{_ident(name)}" TO lash_compact')
        finally:
            con.execute("DETACH lash_compact")
        if os.path.exists(tmp + ".wal"):  # the copy must stand alone before it replaces us
            raise RuntimeError(f"{tmp}.wal was left behind by DETACH; the store is unchanged")
        after = os.path.getsize(tmp)
        if after >= before:  # nothing to give back (a small or already dense file)
            _remove(tmp)
            return before, before
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    return before, after


def _remove(tmp: str) -> None:
    for leftover in (tmp, tmp + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _ident(text: str) -> str:
    return text.replace('"', '""')
