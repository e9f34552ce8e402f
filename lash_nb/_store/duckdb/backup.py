"""A whole copy of a DuckDB store taken while processes use it (``DuckDBStore.backup``).

Theory of operation
- A plain ``cp`` of the file is whole only while the store rests (ADR 175): during a turn,
  or beside a worker that drains, recent commits live in the ``.wal`` and the file's blocks
  may be mid-write. :func:`copy_held` runs as one job on the store's thread while this
  process *holds* the file (another lash_nb process hands it over, ADR 10): pending commits
  are folded and dirty lease rows written, a ``CHECKPOINT`` puts the ``.wal`` into the file,
  and the file's bytes are copied before any other job of this process, or any other
  process, can write it.
- The copy goes to a hidden file beside the destination, is flushed to disk, then renamed
  over the destination: a reader of the destination sees the old copy or the new, never half.
- Refused, before anything is written: the store's own path, a destination that exists
  (unless ``overwrite``), a folder that does not exist.
- A held file deleted, moved away or replaced at its path (ADR 233) is copied from the
  connection instead (:func:`copy_database`): its bytes are at no path, but this process still
  has it open, and DuckDB copies every table, sequence and constraint into a new file
  (``COPY FROM DATABASE``), in the storage format every allowed duckdb reads (ADR 235).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from typing import Any

from ..._errors import StorePathError
from .formats import FLOOR_STORAGE
from .journal import fold


def check_dest(path: str, dest: str, *, overwrite: bool) -> str:
    """The destination as an absolute path, or a one-line refusal."""
    out = os.path.abspath(dest)
    if os.path.exists(out) and os.path.exists(path) and os.path.samefile(out, path):
        raise StorePathError(f"{dest} is the store itself; back it up to another path")
    folder = os.path.dirname(out)
    if not os.path.isdir(folder):
        raise StorePathError(f"folder {folder} does not exist; create it or choose another path")
    if os.path.isdir(out):
        raise StorePathError(f"{dest} is a folder; pass a file path such as "
                             f"{os.path.join(dest, os.path.basename(path))}")
    if os.path.exists(out) and not overwrite:
        raise StorePathError(f"{dest} exists; choose a new path, or pass overwrite=True "
                             "(--overwrite) to replace it")
    return out


def job(worker: Any, dest: str) -> Callable[[Any], int]:
    """The store job copying ``worker``'s file to ``dest``: the file at its path, or, when the
    held file was deleted or replaced there, the database the connection holds (ADR 235)."""
    rescue = worker.file_replaced()
    if rescue and not worker.holding:
        raise gone(worker.path)

    def run(con: Any) -> int:
        hold = worker.hold
        assert hold is not None
        if rescue:
            if not worker.file_replaced():  # let go meanwhile: this is the new file's connection
                raise gone(worker.path)
            return copy_database(con, hold, dest)
        return copy_held(con, hold, worker.path, dest)

    return run


def gone(path: str) -> StorePathError:
    """The file was deleted or replaced at ``path`` after this process let it go."""
    return StorePathError(
        f"{path} was deleted or replaced after this process let its file go: no process here "
        "holds the old file, so there is nothing of it to copy (a copy of the file itself, "
        "or the folder's backups, is where it is now)")


def _beside(dest: str) -> str:
    """The hidden file a copy is written to before it is renamed over ``dest``."""
    return os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.lash-backup")


def copy_held(con: Any, hold: Any, path: str, dest: str) -> int:
    """Fold, write leases, checkpoint and copy the held file to ``dest``; its size."""
    fold(con, hold)
    hold.flush(con)
    con.execute("CHECKPOINT")
    tmp = _beside(dest)
    try:
        with open(path, "rb") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return os.path.getsize(dest)


def copy_database(con: Any, hold: Any, dest: str) -> int:
    """Fold, write leases and copy the database the connection holds (its file may be at no
    path any more) into a new file at ``dest``; its size."""
    fold(con, hold)
    hold.flush(con)
    tmp = _beside(dest)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    db = con.execute("SELECT current_database()").fetchone()[0]
    quoted = tmp.replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS lash_rescue (STORAGE_VERSION '{FLOOR_STORAGE}')")
    try:
        try:
            con.execute(f'COPY FROM DATABASE "{db.replace(chr(34), chr(34) * 2)}" TO lash_rescue')
        finally:
            con.execute("DETACH lash_rescue")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        for leftover in (tmp, tmp + ".wal"):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        raise
    return os.path.getsize(dest)
