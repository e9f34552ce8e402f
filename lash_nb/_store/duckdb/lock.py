"""Opening the DuckDB file: path checks, the file lock, and the schema gate.

Theory of operation
- DuckDB lets one process hold a database file read-write. The store therefore holds the
  file only while it works (see ``worker.py``) and opens it on demand.
- Opening while another process holds the file raises ``duckdb.IOException`` ("Conflicting
  lock is held in <exe> (PID n)"). :func:`open_connection` waits in the file's line
  (``share.py``: lash holders hand the file over at their next job boundary, waiters get it
  in arrival order) until ``lock_timeout_s`` has passed, then raises
  :class:`StoreLockedError` naming the holder ("worker pid N"). A lock conflict later in the
  open (schema check, recovery fold) waits the same way.
- What DuckDB raises about the file itself becomes one line naming the file and the fix
  (:func:`store_error`): damaged (restore a copy), disk full (free space), read-only folder
  (a writable folder; checked before any open), a newer schema (upgrade lash_nb), a storage
  format this duckdb cannot read (which DuckDB wrote it, which is here: ``formats.py``).
- A writable open folds what a crashed process left in ``commit_log`` (``journal.py``);
  a read-only open of such a file is refused until a writable open has done that.
- Nothing already stored is changed by a failed open: a folder, a missing or read-only
  parent, a non-DuckDB file, a foreign DuckDB file or another schema version are refused
  before any write (the schema is only created in a file with no tables at all).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..._errors import (
    LashError,
    StoreDamagedError,
    StoreError,
    StoreFullError,
    StorePathError,
    StoreSchemaError,
)
from ..waits import StoreWaitObserver, WaitStop
from .formats import FLOOR_STORAGE, format_refused
from .schema import (
    ADD_COLUMNS_DDL,
    ADDED_PROBE,
    DDL,
    MIGRATIONS,
    READ_PROBE,
    SCHEMA_VERSION,
    TABLES,
)
from .share import Line, Wait

E = TypeVar("E", bound=LashError)
# how each surface names the read-only open: the library's (which a notebook user calling
# the API may also meet, so it names the magic's too) and the magic's (ADR 0215)
_READ_ONLY_API = ("read_only=True (%lash open ... --read-only)", "read_only=True")
_READ_ONLY_MAGIC = ("--read-only", "--read-only")


def advised(cls: type[E], line: Callable[[str, str], str]) -> E:
    """An error of ``cls`` whose advice names the read-only open: ``line(option, bare)`` is
    called once in the library's spelling (the error's text) and once in the magic's (its
    ``magic_line``), so neither is rewritten from the other's text."""
    err = cls(line(*_READ_ONLY_API))
    err.magic_line = line(*_READ_ONLY_MAGIC)
    return err

# one thread: the store's statements are small, and DuckDB's thread hand-offs cost more
# than they save on them (-25% per insert, -45% on a 10,000-node load here); user queries
# get every core (store.py ``_frame``). A NEW file gets 16 kB blocks instead of DuckDB's
# 256 kB: a one-turn store is ~10x smaller (ADR 0034), and the storage format of the lowest
# duckdb allowed (``formats.py``, ADR 221); an existing file keeps its own of both.
BLOCK_SIZE = 16 * 1024
# DuckDB checkpoints by itself when the .wal passes its threshold, whatever is in the file
# then; a checkpoint that catches commit_log rows writes them into blocks that their fold
# frees again, and the file never shrinks (a 2,000-turn store was 18.5 MB, 82% free blocks).
# So the store checkpoints itself right after a fold, when the log is empty (journal.fold,
# past CHECKPOINT_WAL_BYTES), and DuckDB's own threshold is only a far safety net.
CHECKPOINT_WAL_BYTES = 16 * 1024 * 1024
CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "threads": 1, "default_block_size": str(BLOCK_SIZE), "checkpoint_threshold": "1GB",
    "storage_compatibility_version": FLOOR_STORAGE}
_PID = re.compile(r"\(PID (\d+)\)")
_DUCK_MAGIC = b"DUCK"


class ReadOnlyPath(StorePathError):
    """The file or its folder cannot be written (now): a finished turn's commit waits for it
    to be writable again (``worker.py``, docs/adr/0181)."""


class NotTheHeldFile(StorePathError):
    """The path names another file than the one held (moved, deleted, replaced)."""


def let_go_file_gone(path: str) -> NotTheHeldFile:
    """The file this process held and let go is no longer at ``path`` (ADR 185)."""
    return NotTheHeldFile(
        f"{path} was moved or deleted after this process let it go; nothing was "
        "written there: put it back, or open the store where it is now (restart the "
        "kernel or process to start a new store at this path)")


def replaced_read(path: str, held: bool) -> NotTheHeldFile:
    """A read of the file this process opened, no longer at ``path`` (ADR 233); ``held``: this
    process still has it open, so ``backup`` can copy its data (ADR 235)."""
    keep = ("; first, await store.backup('rescued.duckdb') (or %lash backup rescued.duckdb) "
            "copies the old file's data, which this process still holds" if held else "")
    return NotTheHeldFile(
        f"{path} was deleted, moved away or replaced since this process opened it: nothing was "
        "read (the answer would come from the old file, at no path now); %lash open SESSION "
        f"--store {path} opens the file there now, as does opening it again in Python after "
        f"closing the cores on it here (await core.close()){keep}")


def unwritable(e: BaseException) -> str | None:
    """What a finished turn's commit waits for when ``e`` refused it (a ``Wait`` reason:
    ``disk_full``, ``read_only``, ``moved``), or None: ``e`` is not that."""
    if isinstance(e, StoreFullError) or is_disk_full(e):
        return "disk_full"
    if isinstance(e, NotTheHeldFile):
        return "moved"
    if isinstance(e, ReadOnlyPath):
        return "read_only"
    return None


def check_path(path: str, read_only: bool) -> None:
    """Refuse paths DuckDB cannot use, before DuckDB touches anything."""
    if os.path.isdir(path):
        raise StorePathError(
            f"{path} is a folder; pass a file path such as {os.path.join(path, 'lash.duckdb')}"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        if os.path.exists(parent):
            raise StorePathError(f"{parent} is a file, not a folder; put the store in a folder "
                                 "(e.g. lash.duckdb beside it)")
        raise StorePathError(f"folder {parent} does not exist; create it or choose another path")
    if os.path.islink(path) and not os.path.exists(path):  # the file it named was moved
        raise StorePathError(f"{path} links to {os.readlink(path)}, which does not exist; fix "
                             "the link or point at the file")
    if os.path.exists(path):
        with open(path, "rb") as f:
            head = f.read(12)
        if head[8:12] != _DUCK_MAGIC:
            raise StoreSchemaError(
                f"{path} is not a DuckDB database (or its header is damaged: then restore it "
                "from a copy); point DuckDBStore at another path (a new file is created on "
                "first use)"
            )
    elif read_only:
        raise advised(StorePathError, lambda _, ro: (
            f"{path} does not exist and {ro} cannot create it; open it writable once"))
    elif not os.access(parent, os.W_OK):
        raise ReadOnlyPath(f"folder {parent} is read-only; choose a writable path")
    if os.path.exists(path) and not read_only and not (
            os.access(parent, os.W_OK) and os.access(path, os.W_OK)):
        raise advised(ReadOnlyPath, lambda ro, _: (
            f"{path} cannot be written here (folder {parent} or the file is read-only, and "
            f"DuckDB writes a .wal beside the file); copy it to a writable folder, or open it "
            f"with {ro} to only read it"))


def open_connection(
    path: str, *, read_only: bool, lock_timeout_s: float, check: bool = True,
    line: Line | None = None, observer: StoreWaitObserver | None = None,
    stop: WaitStop | None = None, held_before: Callable[[], bool] | None = None,
) -> Any:
    """Connect, waiting in the file's line (``share.py``) while another process holds it;
    validate or create the schema (unless ``check`` is False: :func:`migrate` opens files of
    older versions). A lock conflict at any step of the open waits the same way.
    ``held_before()`` true: this process held the file and let it go; a path with no file
    then is refused at each attempt (DuckDB would create a new, empty store: ADR 185)."""
    import duckdb

    check_path(path, read_only)
    wait = Wait(path, line, lock_timeout_s, observer, stop=stop)
    try:
        while True:
            if not wait.my_turn():
                wait.blocked(queued=True)
                continue
            wait.trying()
            if held_before is not None and held_before() and not os.path.exists(path):
                raise let_go_file_gone(path)  # moved while this open waited in the line
            try:
                con = duckdb.connect(path, read_only=read_only, config=CONNECT_CONFIG)
            except duckdb.IOException as e:
                if not is_lock_conflict(e):
                    raise _classify(path, str(e)) from e
                wait.blocked(_pid_in(e))
                continue
            except duckdb.ConnectionException as e:
                raise StoreError(
                    f"{path} is already open in this process with another read_only setting; "
                    "use one DuckDBStore per file in a process"
                ) from e
            except duckdb.Error as e:
                raise _classify(path, str(e)) from e
            if not check:
                return con
            if held_before is not None and held_before() and _version(con) is None:
                _drop_fresh(con, path)  # the move landed while DuckDB opened the path
                raise let_go_file_gone(path)
            try:
                ensure_schema(con, path, read_only)
                if read_only:
                    _refuse_unfolded(con, path)
                else:
                    from .journal import recover

                    recover(con)
            except duckdb.Error as e:
                con.close()
                if is_lock_conflict(e):
                    wait.blocked(_pid_in(e))
                    continue
                mapped = store_error(path, e)
                if mapped is e:
                    raise
                raise mapped from e
            except BaseException:
                con.close()
                raise
            wait.opened()
            return con
    finally:
        wait.done()


def is_lock_conflict(e: BaseException) -> bool:
    """DuckDB's "another process holds the file" (at connect, or at a commit on the .wal)."""
    import duckdb

    msg = str(e)
    return isinstance(e, duckdb.Error) and (
        "Conflicting lock" in msg or "Could not set lock" in msg)


def is_disk_full(e: BaseException) -> bool:
    return "No space left on device" in str(e) or "Disk quota exceeded" in str(e)


def is_read_only(e: BaseException) -> bool:
    """The file or its folder cannot be written (now): a read-only mount, lost permission,
    or a store opened ``read_only=True`` (DuckDB's "attached in read-only mode")."""
    msg = str(e)
    return ("Read-only file system" in msg or "Permission denied" in msg
            or "attached in read-only mode" in msg)


def _pid_in(e: BaseException) -> int | None:
    m = _PID.search(str(e))
    return int(m.group(1)) if m else None


_DAMAGE = ("Corrupt database file", "Could not read enough bytes", "not a valid DuckDB database")


def store_error(path: str, e: BaseException, *, opening: bool = True) -> BaseException:
    """A one-line store error for what DuckDB raised about the store's own file, or ``e``
    itself (a bug, or a user's statement failing on some other file, keeps its message).
    After the open (``opening=False``) only errors that name this file, or a corrupt block,
    are the store's."""
    import duckdb

    msg = str(e)
    if not isinstance(e, duckdb.Error) or isinstance(e, (
            duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
            duckdb.ConversionException, duckdb.ConstraintException)):
        return e
    ours = os.path.basename(path) in msg or "Corrupt database file" in msg
    if not opening and not ours:
        return e
    first = msg.splitlines()[0][:160] if msg else type(e).__name__
    if is_disk_full(e):
        return StoreFullError(path)
    if any(d in msg for d in _DAMAGE):
        return StoreDamagedError(path, first)
    if opening and is_read_only(e):
        return _cannot_write(path, first)
    if is_read_only(e):  # made read-only while open (chmod, a remount): reads still work
        return ReadOnlyPath(
            f"cannot write {path} ({first}): it or its folder became read-only, and nothing "
            "of this was written; make it writable again and retry (reading it still works)"
        )
    return e


def _cannot_write(path: str, first: str) -> ReadOnlyPath:
    """Opening ``path`` to write failed on a permission (``first``: DuckDB's first line)."""
    return advised(ReadOnlyPath, lambda ro, _: (
        f"cannot write {path} ({first}); move it to a writable folder, or open it with {ro} "
        "to only read it"))


def _classify(path: str, msg: str) -> StoreError:
    refused = format_refused(path, msg)  # a storage format this duckdb cannot read
    if refused is not None:
        return refused
    if "Is a directory" in msg:
        return StorePathError(f"{path} is a folder; pass a file path inside it")
    if any(d in msg for d in _DAMAGE):
        return StoreDamagedError(path, msg.splitlines()[0][:160])
    if is_disk_full(Exception(msg)):
        return StoreFullError(path)
    if "Read-only file system" in msg or "Permission denied" in msg:
        return _cannot_write(path, msg.splitlines()[0][:160])
    return StorePathError(
        f"cannot open {path} ({msg.splitlines()[0][:160]}); check the path and its folder's "
        "permissions"
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
            raise advised(StoreSchemaError, lambda _, ro: (
                f"{path} holds no lash store yet; open it once without {ro}"))
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
        newer = version is not None and version.isdigit() and int(version) > SCHEMA_VERSION
        if older:
            def told(run: str) -> str:
                return (f"{path} has lash store schema version {version}, this lash_nb uses "
                        f"{SCHEMA_VERSION}; migrate it with `{run} -m lash_nb migrate-store "
                        f"{path}` (then a lash_nb still at schema {version}, such as a "
                        "colleague's sharing the file, refuses it until upgraded)")
            # in a notebook, as the kernel's own Python runs it: ``!python`` in a cell may be
            # another one, without lash_nb or with an older one (ADR 221)
            err = StoreSchemaError(told("python"))
            err.magic_line = told("%run")
            raise err
        if newer:
            hint = ("it was written by a newer lash_nb: upgrade lash_nb here "
                    "(pip install -U lash-nb-core); the file is unchanged")
        else:
            hint = "point at another path (the file is unchanged)"
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
        try:
            con.execute(READ_PROBE).fetchall()
            return  # only columns the reads never need are missing (ADR 197)
        except duckdb.BinderException:
            pass
        raise advised(StoreSchemaError, lambda _, ro: (
            f"{path} was written by an older lash_nb and lacks the usage 'estimated' columns; "
            f"open it once without {ro} (or run python -m lash_nb migrate-store) first"))
    con.execute(ADD_COLUMNS_DDL)


def _drop_fresh(con: Any, path: str) -> None:
    """Close ``con`` and take away the file DuckDB just created at ``path`` (no lash store:
    the held one was moved while the open ran, ADR 185). It is first renamed aside and only
    removed if it is still that file: a file put back at the path meanwhile stays."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    con.close()
    if st is None:
        return
    aside = f"{path}.lash-fresh-{os.getpid()}"
    try:
        os.rename(path, aside)
    except OSError:
        return
    try:
        now = os.stat(aside)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.remove(aside)
            return
    except OSError:
        return
    os.rename(aside, path)  # not the file it created: put back as found


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
        raise advised(StoreError, lambda _, ro: (
            f"{path} holds {n} commit(s) of a process that stopped without closing the store; "
            f"open it once without {ro} to fold them in, then read it"))


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
            step = MIGRATIONS[current]
            con.execute("BEGIN TRANSACTION")
            try:
                if callable(step):
                    step(con)
                else:
                    con.execute(step)
                con.execute("COMMIT")
            except duckdb.Error:
                con.execute("ROLLBACK")
                raise
            current += 1
        _ensure_added_columns(con, path, read_only=False)
        return start, current
    finally:
        con.close()


def after_migration(old: int) -> str:
    """What a migration from schema ``old`` means for the other installs sharing the file."""
    return (f"a lash_nb still at schema {old} (an older install sharing this file) now refuses "
            "it: upgrade lash_nb there (pip install -U lash-nb-core); do not delete the file")


def file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path) if path else None
    except OSError:
        return (-1, -1)  # gone: never equal to a held file's id
    return None if st is None else (st.st_dev, st.st_ino)


def wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(path + ".wal")
    except OSError:
        return 0


def connection_broken(e: BaseException) -> bool:
    import duckdb

    return isinstance(e, (duckdb.FatalException, duckdb.InternalException)) or (
        isinstance(e, duckdb.Error) and "invalidated" in str(e)
    )
