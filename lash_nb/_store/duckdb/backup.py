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
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Any

from ..._errors import StorePathError
from .journal import fold


def check_dest(path: str, dest: str, *, overwrite: bool) -> str:
    """The destination as an absolute path, or a one-line refusal."""
    out = os.path.abspath(dest)
    if os.path.exists(out) and os.path.samefile(out, path):
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


def copy_held(con: Any, hold: Any, path: str, dest: str) -> int:
    """Fold, write leases, checkpoint and copy the held file to ``dest``; its size."""
    fold(con, hold)
    hold.flush(con)
    con.execute("CHECKPOINT")
    tmp = os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.lash-backup")
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
