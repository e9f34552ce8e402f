"""Opening the DuckDB file: path checks, the file lock, and the schema gate.

Theory of operation
- DuckDB lets one process hold a database file read-write. The store therefore holds the
  file only while it works (see ``worker.py``) and opens it on demand.
- Opening while another process holds the file raises ``duckdb.IOException`` ("Conflicting
  lock is held in <exe> (PID n)"). :func:`open_connection` retries with exponential backoff
  (10 ms doubling to 400 ms) until ``lock_timeout_s`` has passed, then raises
  :class:`StoreLockedError` naming that PID.
- A writable open folds what a crashed process left in ``commit_log`` (``journal.py``);
  a read-only open of such a file is refused until a writable open has done that.
- Nothing already stored is changed by a failed open: a folder, a missing or read-only
  parent, a non-DuckDB file, a foreign DuckDB file or another schema version are refused
  before any write (the schema is only created in a file with no tables at all).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from ..._errors import StoreError, StoreLockedError, StorePathError, StoreSchemaError
from .schema import ADD_COLUMNS_DDL, ADDED_PROBE, DDL, MIGRATIONS, SCHEMA_VERSION, TABLES

_PID = re.compile(r"\(PID (\d+)\)")
_DUCK_MAGIC = b"DUCK"


def check_path(path: str, read_only: bool) -> None:
    """Refuse paths DuckDB cannot use, before DuckDB touches anything."""
    if os.path.isdir(path):
        raise StorePathError(
            f"{path} is a folder; pass a file path such as {os.path.join(path, 'lash.duckdb')}"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StorePathError(f"folder {parent} does not exist; create it or choose another path")
    if os.path.exists(path):
        with open(path, "rb") as f:
            head = f.read(12)
        if head[8:12] != _DUCK_MAGIC:
            raise StoreSchemaError(
                f"{path} is not a DuckDB database; point DuckDBStore at another path "
                "(a new file is created on first use)"
            )
    elif read_only:
        raise StorePathError(
            f"{path} does not exist and read_only=True cannot create it; open it writable once"
        )
    elif not os.access(parent, os.W_OK):
        raise StorePathError(f"folder {parent} is read-only; choose a writable path")


def open_connection(
    path: str, *, read_only: bool, lock_timeout_s: float, check: bool = True
) -> Any:
    """Connect, waiting out other processes' locks; validate or create the schema (unless
    ``check`` is False: :func:`migrate` opens files of older versions)."""
    import duckdb

    check_path(path, read_only)
    start = time.monotonic()
    delay = 0.01
    while True:
        try:
            # one thread: the store's statements are small, and DuckDB's thread hand-offs cost
            # more than they save on them (-25% per insert, -45% on a 10,000-node load here);
            # user queries get every core (store.py ``_frame``)
            con = duckdb.connect(path, read_only=read_only, config={"threads": 1})
            break
        except duckdb.IOException as e:
            msg = str(e)
            if "lock" not in msg.lower():
                raise _classify(path, msg) from e
            waited = time.monotonic() - start
            if waited >= lock_timeout_s:
                m = _PID.search(msg)
                raise StoreLockedError(path, int(m.group(1)) if m else None, waited) from e
            time.sleep(min(delay, max(0.0, lock_timeout_s - waited)))
            delay = min(delay * 2, 0.4)
        except duckdb.ConnectionException as e:
            raise StoreError(
                f"{path} is already open in this process with another read_only setting; "
                "use one DuckDBStore per file in a process"
            ) from e
    if not check:
        return con
    try:
        ensure_schema(con, path, read_only)
        if read_only:
            _refuse_unfolded(con, path)
        else:
            from .journal import recover

            recover(con)
    except BaseException:
        con.close()
        raise
    return con


def _classify(path: str, msg: str) -> StoreError:
    if "not a valid DuckDB database" in msg:
        return StoreSchemaError(
            f"{path} is not a DuckDB database; point DuckDBStore at another path"
        )
    if "Is a directory" in msg:
        return StorePathError(f"{path} is a folder; pass a file path inside it")
    return StorePathError(
        f"cannot open {path} ({msg.splitlines()[0][:120]}); choose a writable file path"
    )


def ensure_schema(con: Any, path: str, read_only: bool) -> None:
    if _version(con) == str(SCHEMA_VERSION) and _has_tables(con):
        _ensure_added_columns(con, path, read_only)
        return  # the common case, without the catalog listing (~25 ms at every open)
    names = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal"
        ).fetchall()
    }
    if not names:
        if read_only:
            raise StoreSchemaError(
                f"{path} holds no lash store yet; open it once without read_only=True"
            )
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(DDL)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return
    if "lash_meta" not in names:
        shown = ", ".join(sorted(names)[:5])
        raise StoreSchemaError(
            f"{path} is a DuckDB file of another application (tables: {shown}), not a lash "
            "store; point DuckDBStore at another path"
        )
    version = _version(con)
    if version != str(SCHEMA_VERSION):
        older = version is not None and version.isdigit() and int(version) in MIGRATIONS
        hint = (f"migrate it with `python -m lash_nb migrate-store {path}`" if older
                else "point at another path, or delete the file")
        raise StoreSchemaError(
            f"{path} has lash store schema version {version}, this lash_nb uses "
            f"{SCHEMA_VERSION}; {hint}"
        )
    missing = [t for t in TABLES if t not in names]
    if missing:
        raise StoreSchemaError(
            f"{path} lacks lash tables {', '.join(missing)}; point at another path, or delete "
            "the file to start fresh"
        )


def _ensure_added_columns(con: Any, path: str, read_only: bool) -> None:
    """Add the columns added within this schema version (``schema.ADDED_COLUMNS``) to a file
    written before them; a read-only open of such a file is refused (it cannot add them)."""
    import duckdb

    try:
        con.execute(ADDED_PROBE).fetchall()
        return
    except duckdb.BinderException:
        pass
    if read_only:
        raise StoreSchemaError(
            f"{path} was written by an older lash_nb and lacks the usage 'estimated' columns; "
            "open it once without read_only=True (or run python -m lash_nb migrate-store) first"
        )
    con.execute(ADD_COLUMNS_DDL)


def _version(con: Any) -> str | None:
    import duckdb

    try:
        got = con.execute("SELECT value FROM lash_meta WHERE key = 'schema_version'").fetchall()
    except duckdb.CatalogException:
        return None
    return got[0][0] if got else None


def _has_tables(con: Any) -> bool:
    """True when every lash table exists (one statement that binds them all)."""
    import duckdb

    probe = " UNION ALL ".join(f"SELECT NULL FROM {t} WHERE false" for t in TABLES)
    try:
        con.execute(probe).fetchall()
    except duckdb.CatalogException:
        return False
    return True


def _refuse_unfolded(con: Any, path: str) -> None:
    n = con.execute("SELECT count(*) FROM commit_log").fetchone()[0]
    if n:
        raise StoreError(
            f"{path} holds {n} commit(s) of a process that stopped without closing the store; "
            "open it once without read_only=True to fold them in, then read it"
        )


def migrate(path: str, *, lock_timeout_s: float = 10.0) -> tuple[int, int]:
    """Move a lash DuckDB file forward to this schema version, one step per version, each in
    its own transaction. Returns ``(from_version, to_version)``; a current file is left as is."""
    import duckdb

    check_path(path, read_only=False)
    if not os.path.exists(path):
        raise StorePathError(f"{path} does not exist; nothing to migrate")
    con = open_connection(path, read_only=False, lock_timeout_s=lock_timeout_s, check=False)
    try:
        version = _version(con)
        if version is None or not version.isdigit():
            raise StoreSchemaError(f"{path} is not a lash store (no schema version); nothing to migrate")
        start = current = int(version)
        if current > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"{path} has schema version {current}, newer than this lash_nb's "
                f"{SCHEMA_VERSION}; upgrade lash_nb instead"
            )
        while current < SCHEMA_VERSION:
            if current not in MIGRATIONS:
                raise StoreSchemaError(f"{path}: no migration from schema version {current}")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(MIGRATIONS[current])
                con.execute("COMMIT")
            except duckdb.Error:
                con.execute("ROLLBACK")
                raise
            current += 1
        _ensure_added_columns(con, path, read_only=False)
        return start, current
    finally:
        con.close()
