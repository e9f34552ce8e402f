"""User queries on the store's connection (``store.query``, ``%lash sql``, reports).

Theory of operation
- They run on the store's worker thread like every job, after pending commits were folded
  (the store does that), so a query never misses a commit.
- Each runs inside ``BEGIN TRANSACTION READ ONLY`` that is always rolled back, after
  ``user_sql.check`` (the store-independent rule, ``_store/user_sql.py``) refused anything
  that is not a read; a write the check let through fails in that transaction and is
  reported as :class:`QueryNotAllowed` (ADR 13).
- The store's own statements run on one thread (``lock.py``); a user query may scan millions
  of rows, so it gets every core. Switching costs ~10 ms per 1M-row roll-up here, so queries
  in a row (a report) switch once: the next store job switches back (``worker.py``).
- Report SQL (:func:`report_frame`: text ``lash_nb.reports`` wrote, one ``SELECT``, its values
  as parameters) skips the read-only transaction: nothing a user typed reaches it, and one
  DuckDB statement is its own transaction, so it reads one snapshot (a whole commit or none;
  the store's own writes also run on this thread, between queries). Its naive timestamps
  (the store keeps UTC) come out tz-aware UTC from pyarrow, no pandas pass (ADR 112).
- A user's query can be stopped (``query_async`` awaited by a task that is cancelled: a
  kernel interrupt in a ``%lash sql`` cell). DuckDB ignores SIGINT, so the caller interrupts
  the connection, only while the user's own statement runs (:class:`Statement`: never a
  commit or fold of the same connection), until the job ends; the transaction is rolled back
  (ADR 184).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from ..._errors import QueryNotAllowed
from .. import user_sql
from . import quarantine
from .arrow import need_arrow

_QUERY_THREADS = max(1, os.cpu_count() or 1)
# texts that passed ``user_sql.check`` here (with their allow_files): a report runs the same
# SQL again and again, and the check (parse tree walk plus a catalog query, ~10 ms) would
# cost a third of a 1M-row roll-up. A pass stays valid: the store never drops a table or
# view, so the relations a text may name only grow. Bounded; oldest forgotten first.
_PASSED: dict[tuple[str, bool], int] = {}  # -> its number of statements
_PASSED_MAX = 256
T = TypeVar("T")


class Statement:
    """The connection while a user's statement runs on it, so that statement alone can be
    interrupted from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: Any = None

    @contextlib.contextmanager
    def running(self, con: Any) -> Iterator[None]:
        with self._lock:
            self._con = con
        try:
            yield
        finally:
            with self._lock:
                self._con = None

    def interrupt(self) -> None:
        with self._lock:  # held: the statement cannot end and a commit start meanwhile
            if self._con is not None:
                self._con.interrupt()


async def interruptible(job: Future[T], statement: Statement) -> T:
    """Await a user query's job; cancelled, interrupt its statement until the job is over
    (DuckDB starts a statement with the flag cleared: ask again), then cancelled."""
    waiting = asyncio.wrap_future(job)
    try:
        # the loop wakes every 0.1 s: a SIGINT taken by another thread (DuckDB's) runs its
        # Python handler (ipykernel's interrupt: it cancels the cell) only when this one wakes
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=0.1)  # never cancels ``waiting`` itself
        return waiting.result()
    except asyncio.CancelledError:
        while not waiting.done():
            statement.interrupt()
            await asyncio.wait({waiting}, timeout=0.05)
        if not waiting.cancelled():
            waiting.exception()  # what the interrupted job raised is the interrupt's
        raise


def frame(con: Any, hold: Any, sql: str, params: Any, allow_files: bool,
          statement: Statement | None = None) -> Any:
    """The rows of a read-only query as a ``pandas.DataFrame``."""
    return _read(con, hold, sql, params, allow_files, statement, None)[0]


def head_frame(con: Any, hold: Any, sql: str, params: Any, allow_files: bool,
               statement: Statement | None, rows: int) -> tuple[Any, int]:
    """The first ``rows`` rows of a read-only query as a ``pandas.DataFrame``, and how many
    rows it has, from one run of the query (:func:`_head`)."""
    return _read(con, hold, sql, params, allow_files, statement, rows)


_HEAD_BATCH = 65_536  # rows per Arrow batch while counting: a few MB of a wide row at a time


def _head(rel: Any, rows: int) -> tuple[Any, int]:
    """The first ``rows`` rows of ``rel`` as an Arrow table and how many rows it has, from
    one run: the rows stream as Arrow record batches, the first ones kept and the others
    only counted and dropped, so the rest never becomes Python objects and a query whose
    rows change between runs (``random()``) states the total of the rows it shows. (It ran
    twice before, with a ``LIMIT`` and as a ``count(*)``, ADR 192.)"""
    import pyarrow as pa

    reader = rel.to_arrow_reader(_HEAD_BATCH)
    kept: list[Any] = []
    total = 0
    for batch in reader:
        if total < rows:  # a copy of those rows: a slice would hold the whole batch; the
            # intervals first: pyarrow 15's take() made them null
            part = durations(pa.Table.from_batches([batch]))
            kept.append(part.take(pa.array(range(min(rows - total, batch.num_rows)))))
        total += batch.num_rows
    return (pa.concat_tables(kept) if kept else durations(reader.schema.empty_table())), total


def _read(con: Any, hold: Any, sql: str, params: Any, allow_files: bool,
          statement: Statement | None, rows: int | None) -> tuple[Any, int]:
    import duckdb

    _prepare(con, hold)
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        _checked(con, sql, allow_files)
        with statement.running(con) if statement is not None else contextlib.nullcontext():
            rel = con.sql(sql, params=params) if params is not None else con.sql(sql)
            if rel is None:
                import pandas as pd

                return pd.DataFrame(), 0
            if rows is None:
                table = rel.to_arrow_table()
                return _by_position(table), table.num_rows
            table, total = _head(rel, rows)
            names = list(rel.columns)
        if table.column_names != names:
            table = table.rename_columns(names)
        return _by_position(table), total
    except duckdb.TransactionException as e:
        if "read-only" not in str(e):
            raise
        raise QueryNotAllowed(
            f"store queries only read; DuckDB refused it ({str(e).splitlines()[0]})") from e
    finally:
        try:
            con.execute("ROLLBACK")
        finally:
            if hold is None:
                con.execute("SET threads = 1")


def report_frame(con: Any, hold: Any, sql: str, params: Any,
                 to_frame: Callable[[Any], Any] | None = None) -> Any:
    """The rows of one report ``SELECT`` (lash_nb's own text, never a user's: no read-only
    transaction) as a ``pandas.DataFrame``, naive timestamps as UTC; ``to_frame`` (an Arrow
    table -> the frame; default :func:`utc_frame`) lets a report also shape its columns."""
    _prepare(con, hold)
    try:
        if _checked(con, sql, False) != 1:
            raise QueryNotAllowed("report SQL is one SELECT; use store.query for other SQL")
        rel = con.sql(sql, params=params) if params is not None else con.sql(sql)
        return (to_frame or utc_frame)(rel.to_arrow_table())
    finally:
        if hold is None:
            con.execute("SET threads = 1")


def _prepare(con: Any, hold: Any) -> None:
    if hold is not None:
        try:
            hold.flush(con)  # lease rows a user may query are in the file
        except Exception as e:  # a file that cannot be written now is still read (ADR 175)
            from .lock import is_disk_full, is_read_only

            if not (is_read_only(e) or is_disk_full(e)):
                raise
    need_arrow()  # not racing the store's background import; never holding the file (ADR 0213)
    if hold is None or not hold.query_threads:
        con.execute(f"SET threads = {_QUERY_THREADS}")
        # DuckDB's bar for a slow query is an ipywidget, shown from the store's thread in
        # whichever cell runs then; a saved notebook keeps it as a dead widget
        con.execute("SET enable_progress_bar = false")
        if hold is not None:  # the next store job sets one thread again (worker.py)
            hold.query_threads = True


def _checked(con: Any, sql: str, allow_files: bool) -> int:
    """How many statements ``sql`` has, once ``user_sql.check`` let it pass (remembered)."""
    key = (sql, allow_files)
    passed = _PASSED.get(key)
    if passed is None:
        checked = user_sql.check(sql, allow_files=allow_files, con=con,
                                 relations=lambda: relations(con))
        passed = _PASSED[key] = len(checked.statements or ())
        if len(_PASSED) > _PASSED_MAX:
            del _PASSED[next(iter(_PASSED))]
    return passed


def _by_position(table: Any) -> Any:
    """An Arrow table as a DataFrame; a name given twice (``SELECT 1 AS a, 2 AS a``, allowed in
    SQL) is kept, built by position: pyarrow before 16 refuses duplicate names. Decimals and
    intervals become numbers and time spans first (:func:`plain_numbers`)."""
    table = plain_numbers(table)
    names = table.column_names
    if len(set(names)) == len(names):
        return table.to_pandas()
    frame = table.rename_columns([f"c{i}" for i in range(len(names))]).to_pandas()
    frame.columns = names
    return frame


_INT64 = (-(2**63), 2**63 - 1)
_MONTH_US = 30 * 86_400_000_000  # a month of an INTERVAL as DuckDB's own .df() counts it


def plain_numbers(table: Any) -> Any:
    """``table`` with its DECIMAL columns as int64 (a scale of 0, values that fit) or float64
    (a scale, a value past int64, no value at all), and its INTERVAL columns as durations
    (ADR 211): ``sum()`` of a BIGINT is a HUGEINT, which Arrow carries as ``decimal128(38,
    0)`` and pandas as ``Decimal`` objects that do not plot, describe or aggregate as numbers;
    an interval became objects ``to_parquet`` refuses. The PostgreSQL store's frames already
    did this (``_store/postgres/query.py``; its ``numeric`` has no scale to go by, so there
    whole values decide)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = durations(table)
    for i, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_decimal(kind):
            col = table.column(i)
            low, high = (v.as_py() for v in pc.min_max(col).values())
            fits = low is not None and _INT64[0] <= low <= high <= _INT64[1]
            col = col.cast(pa.int64() if kind.scale == 0 and fits else pa.float64(), safe=False)
            table = table.set_column(i, pa.field(field.name, col.type), col)
    return table


def durations(table: Any) -> Any:
    """``table`` with its INTERVAL columns as ``duration[us]``, a month counted 30 days as
    DuckDB's own ``.df()`` counts it."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_interval(field.type):
            col = pa.array([None if v is None else v.months * _MONTH_US + v.days * 86_400_000_000
                            + v.nanoseconds // 1000 for v in table.column(i).to_pylist()],
                           pa.duration("us"))
            table = table.set_column(i, pa.field(field.name, col.type), col)
    return table


def utc_frame(table: Any) -> Any:
    """An Arrow table as a DataFrame, its naive timestamp columns (UTC in the store) tz-aware
    UTC, converted so by pyarrow itself (no pandas pass over the column afterwards)."""
    import pandas as pd
    import pyarrow as pa

    utc = {f.type: pd.DatetimeTZDtype(f.type.unit, "UTC") for f in table.schema
           if pa.types.is_timestamp(f.type) and f.type.tz is None}
    return table.to_pandas(types_mapper=utc.get) if utc else table.to_pandas()


def relations(con: Any) -> set[str]:
    """Names of the tables and views a query may read (no file replacement scans)."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
    ).fetchall()}


def quarantined(con: Any) -> Any:
    """``commit_quarantine`` as a DataFrame (empty, with its columns, before the first one)."""
    import pandas as pd

    if "commit_quarantine" not in relations(con):
        return pd.DataFrame(columns=list(quarantine.COLUMNS))
    return con.sql(f"SELECT {', '.join(quarantine.COLUMNS)} FROM commit_quarantine "
                   "ORDER BY quarantined_at, session_id, head_revision").df()
