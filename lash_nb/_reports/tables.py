"""Where report SQL runs: one SQL text, three kinds of row holders.

- A DuckDB store (or a path to one): the SQL runs on the store's own worker thread through
  ``store.query`` -- never a second connection to the file.
- A memory store or an imported lash trace: their rows are bulk-inserted (one Arrow batch per
  table) into a private in-memory DuckDB database that has the store schema, and the same SQL
  runs there. The in-memory database lives for one report call.
- A PostgreSQL store: the SQL runs on the server through ``store.query`` (its ``sql_dialect``
  is ``"postgres"``; see ``sql.py`` for the two places the text differs).
- A session narrows any of these to its ``session_id``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from .._errors import StorePathError
from .._store.target import is_dsn

if TYPE_CHECKING:
    from .._runtime.core import LashCore
    from .._runtime.session import LashSession
    from .._store.duckdb import DuckDBStore
    from .._store.memory import MemoryStore
    from .trace import LashTrace

Params = Mapping[str, Any]
Columns = Mapping[str, str]  # a report frame's columns -> dtype names (``frames.py``)


class StoreTables:
    """Report SQL over a store that offers ``query(sql, params)`` (DuckDB or PostgreSQL).
    A DuckDB store runs it as the report SQL it is (``user_query.report_frame``: no read-only
    transaction, timestamps UTC from Arrow), which keeps a roll-up at the cost of its SQL."""

    def __init__(self, store: Any, session_id: str | None) -> None:
        self.store = store
        self.session_id = session_id
        self.dialect: str = getattr(store, "sql_dialect", "duckdb")
        self._duckdb = isinstance(store, _kinds().duckdb)

    def query(self, sql: str, params: Params | None = None, cols: Columns | None = None) -> Any:
        """The rows as a DataFrame; with ``cols`` shaped to those columns and dtypes
        (``frames.conform``; checked on the Arrow schema where the rows come as Arrow)."""
        from .frames import arrow_frame, conform

        p = dict(params) if params else None
        if self._duckdb:
            if cols is None:
                return self.store._report_frame(sql, p)
            return self.store._report_frame(sql, p, lambda table: arrow_frame(table, cols))
        frame = self.store.query(sql, p)
        return frame if cols is None else conform(frame, cols)


class LoadedTables:
    """Report SQL over rows loaded into an in-memory DuckDB database with the store schema."""

    dialect = "duckdb"

    def __init__(self, load: Callable[[Any], None], session_id: str | None) -> None:
        self._load = load
        self.session_id = session_id
        self._con: Any = None

    def query(self, sql: str, params: Params | None = None, cols: Columns | None = None) -> Any:
        if self._con is None:
            import_arrow()  # pandas + pyarrow, never racing a DuckDB store's background import
            self._con = memory_connection()
            self._load(self._con)
        from .._store.duckdb.user_query import utc_frame
        from .frames import arrow_frame

        rel = self._con.sql(sql, params=dict(params)) if params else self._con.sql(sql)
        table = rel.to_arrow_table()
        # naive times are UTC here too
        return utc_frame(table) if cols is None else arrow_frame(table, cols)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def import_arrow() -> None:
    """pandas + pyarrow imported in the order and under the lock a DuckDB store's background
    import uses (``_store/duckdb/arrow.py``): a report never races that import."""
    from .._store.duckdb.arrow import import_arrow as imported

    imported()


def memory_connection() -> Any:
    """An in-memory DuckDB database holding the (empty) lash store schema."""
    from .._store.duckdb.lock import open_connection

    return open_connection(":memory:", read_only=False, lock_timeout_s=0.0)


def insert_arrow(con: Any, table: str, data: Any) -> None:
    """Insert an Arrow table (columns named as the store's) in one statement."""
    if data.num_rows == 0:
        return
    con.register("lash_report_rows", data)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM lash_report_rows")
    finally:
        con.unregister("lash_report_rows")


class _Kinds(NamedTuple):
    session: type[LashSession]
    core: type[LashCore]
    trace: type[LashTrace]
    memory: type[MemoryStore]
    duckdb: type[DuckDBStore]


@functools.cache
def _kinds() -> _Kinds:
    """The source classes, imported once (not at module import: the runtime imports reports)
    rather than on every report call (a 1M-row roll-up runs in ~15 ms; each import is ~1 us)."""
    from .._runtime.core import LashCore
    from .._runtime.session import LashSession
    from .._store.duckdb import DuckDBStore
    from .._store.memory import MemoryStore
    from .trace import LashTrace

    return _Kinds(LashSession, LashCore, LashTrace, MemoryStore, DuckDBStore)


@contextmanager
def open_tables(source: Any) -> Iterator[StoreTables | LoadedTables]:
    """Resolve a report ``source``: session, core, store, DuckDB path or :class:`LashTrace`."""
    kinds = _kinds()
    session_id: str | None = None
    if isinstance(source, kinds.session):
        session_id, source = source.session_id, source.store
    elif isinstance(source, kinds.core):
        source = source.store
    if isinstance(source, kinds.trace):
        tables: StoreTables | LoadedTables = LoadedTables(source.load_into, session_id)
    elif isinstance(source, kinds.memory):
        from .memory_rows import load_memory_store

        tables = LoadedTables(lambda con: load_memory_store(con, source), session_id)
    elif isinstance(source, (str, os.PathLike)):
        with _opened_path(os.fspath(source)) as store:
            yield StoreTables(store, None)
        return
    elif callable(getattr(source, "query", None)):
        tables = StoreTables(source, session_id)
    else:
        raise TypeError(
            f"reports read a LashSession, a LashCore, a store, a DuckDB file path or a "
            f"LashTrace (read_lash_trace(path)); got {type(source).__name__}"
        )
    try:
        yield tables
    finally:
        if isinstance(tables, LoadedTables):
            tables.close()


@contextmanager
def _opened_path(path: str) -> Iterator[Any]:
    if is_dsn(path):
        raise StorePathError(
            "reports take a PostgreSQL store as an object, not its DSN: pass the LashCore or "
            "session that uses it, or lash_nb.stores.PostgresStore(dsn)"
        )
    if path.endswith(".jsonl"):
        raise StorePathError(
            f"{path} looks like a lash trace; pass read_lash_trace({path!r}) instead of the path"
        )
    if not os.path.isfile(path):
        raise StorePathError(
            f"no lash store at {path}; pass the path of an existing DuckDB store file"
        )
    from .._store.duckdb import DuckDBStore

    store = DuckDBStore(path, idle_release_s=None)
    try:
        yield store
    finally:
        store.close_sync()


def session_filter(tables: StoreTables | LoadedTables, column: str = "session_id") -> tuple[str, dict[str, Any]]:
    """``AND <column> = $sid`` and its parameter when the source is one session."""
    if tables.session_id is None:
        return "", {}
    return f" AND {column} = $sid", {"sid": tables.session_id}
