"""DuckDB storage formats: a store shared between machines with other DuckDB versions.

Theory of operation (ADR 221)
- DuckDB reads every older storage format (since v0.10) and refuses a newer one ("Trying to
  read a database file with storage version number N ... created with a newer version of
  DuckDB"). It never rewrites an existing file into its own newer format when it opens and
  writes it: the file keeps the format it was created in (tried with duckdb 2.0 on a
  ``v1.0.0`` file, read again by duckdb 1.5 afterwards).
- So the format is chosen when a file is made. lash_nb makes one in two places: a new store
  (``lock.open_connection``) and the copy ``vacuum`` swaps in (``compact.py``). A new store
  is written in :data:`FLOOR_STORAGE`, the format of the lowest duckdb lash_nb allows
  (pyproject: ``duckdb>=2``), so a colleague on any allowed duckdb reads a store whoever
  made it; the vacuum copy keeps the format the file had.
- A file this duckdb cannot read becomes one line (:func:`format_refused`): which DuckDB
  wrote it (the library version in the file's main header, bytes 52-84), which is here, and
  what to do. Nothing in the file is changed: DuckDB refuses it before any write.
"""

from __future__ import annotations

import re
from typing import Any

from ..._errors import StoreSchemaError

# the storage format of duckdb 2.0.0, the lowest lash_nb allows: every allowed duckdb reads it
FLOOR_STORAGE = "v2.0.0"
_REFUSED = re.compile(r"Trying to read a database file with (?:storage )?version number (\d+)")
_LIBRARY = re.compile(r"v\d+\.\d+\.\d+[0-9A-Za-z.\-]*")


def writer_of(path: str) -> str | None:
    """The DuckDB version in the file's main header (the one that created it), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(84)
    except OSError:
        return None
    text = head[52:84].split(b"\0", 1)[0].decode("ascii", "replace")
    return text if _LIBRARY.fullmatch(text) else None


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:3])


def format_refused(path: str, msg: str) -> StoreSchemaError | None:
    """The one-line error for DuckDB's refusal of a storage format it cannot read, or None
    when ``msg`` is not that refusal."""
    import duckdb

    found = _REFUSED.search(msg)
    if found is None:
        return None
    here = duckdb.__version__
    writer = writer_of(path)
    unchanged = "the file is unchanged"
    if "newer version" in msg:
        if writer is not None and _numbers(writer) > _numbers(here):
            by, need = f"DuckDB {writer}", f'pip install -U "duckdb>={writer[1:]}"'
        else:
            by, need = "a newer DuckDB", "pip install -U duckdb"
        return StoreSchemaError(
            f"{path} was written by {by} in a storage format (version {found.group(1)}) that "
            f"duckdb {here} here cannot read; upgrade it in this environment ({need}) and "
            f"restart, or open the store where that DuckDB is installed; {unchanged}")
    by = f"DuckDB {writer}" if writer is not None else "an old DuckDB"
    return StoreSchemaError(
        f"{path} was written by {by} in a storage format (version {found.group(1)}) that "
        f"duckdb {here} no longer reads; EXPORT DATABASE it with that DuckDB and IMPORT "
        f"DATABASE it into a new file; {unchanged}")


def storage_of(con: Any) -> str | None:
    """The storage format of the connection's file (``v1.0.0``), or None if not reported."""
    row = con.execute(
        "SELECT tags['storage_version'] FROM duckdb_databases() "
        "WHERE database_name = current_database()").fetchone()
    if row is None or not row[0]:
        return None
    version = str(row[0]).rstrip("+")
    return version if _LIBRARY.fullmatch(version) else None
