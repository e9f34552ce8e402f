"""``DuckDBStore``'s query methods: a user's SQL (``query``, ``query_async``,
``query_head_async``; ``%lash sql``) and a report's (``_report_frame``), run on the store's
connection by ``user_query.py``'s rules. A user's query is stopped by Ctrl-C (``query``) or
by cancelling the awaiting task (the async ones), which interrupts its statement alone
(``user_query.Statement``, ADR 184)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..._errors import StoreInterrupted
from . import user_query
from .lock import replaced_read
from .sigint import Interrupted, result_unless_interrupted, sigint_raises
from .worker import ConnectionWorker


class Queries:
    """The query methods of :class:`~lash_nb.stores.DuckDBStore` (its base class)."""

    _worker: ConnectionWorker
    _statement: user_query.Statement  # the user's statement running now, to interrupt
    _fold: Callable[[Any], None]  # pending commits into the tables (``DuckDBStore._fold``)

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
        allow_files: bool = False,
    ) -> Any:
        """Run a read-only query on the store's connection (on the store's thread; from a
        thread other than the main one, on the calling thread when the store is idle); rows
        come back as a ``pandas.DataFrame``. Only reads run (``_store/user_sql.py``), in a
        read-only transaction; files are read only with ``allow_files=True``. Ctrl-C (a
        kernel's interrupt) stops it: :class:`~lash_nb.errors.StoreInterrupted`."""
        def job(con: Any) -> Any:
            return self._frame(con, sql, params, allow_files)

        self._refuse_replaced()
        try:
            if threading.current_thread() is not threading.main_thread():
                here = self._worker.run_here(job)  # an idle store: no trip to its thread
                if here is not None:  # (ADR 113); no Ctrl-C lands on this thread
                    return here.result()
            # on the main thread the query runs on the store's: DuckDB running a statement
            # here does not stop for Ctrl-C (it sat out a kernel's interrupt), the wait does
            with sigint_raises():  # in any cell (sigint.py)
                return result_unless_interrupted(self._worker.submit(job, query=True),
                                                 self._statement.interrupt)
        except (Interrupted, KeyboardInterrupt):
            pass
        raise StoreInterrupted("the interrupt stopped the query (nothing in the store changed)")

    async def query_async(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, *,
        allow_files: bool = False,
    ) -> Any:
        """``query`` on the store's thread; cancelling the awaiting task stops the query."""
        self._refuse_replaced()
        return await user_query.interruptible(self._worker.submit(
            lambda con: self._frame(con, sql, params, allow_files), query=True), self._statement)

    async def query_head_async(
        self, sql: str, rows: int, params: Sequence[Any] | dict[str, Any] | None = None, *,
        allow_files: bool = False,
    ) -> tuple[Any, int]:
        """The first ``rows`` rows of ``query`` as a ``pandas.DataFrame`` and how many rows
        the query has (counted in the database: the rest never reaches Python); cancelling
        the awaiting task stops it. A bare ``%lash sql`` shows this."""
        self._refuse_replaced()
        def job(con: Any) -> tuple[Any, int]:
            self._ready(con)
            return user_query.head_frame(con, self._worker.hold, sql, params, allow_files,
                                         self._statement, rows)

        return await user_query.interruptible(self._worker.submit(job, query=True),
                                              self._statement)

    def _refuse_replaced(self) -> None:
        """A read of the file this process opened, deleted or replaced since, would answer
        from data no file at the path holds: refused (ADR 233). A ``stat``, ~2 µs."""
        if self._worker.file_replaced():
            raise replaced_read(self._worker.path, self._worker.holding)

    def _frame(self, con: Any, sql: str, params: Any, allow_files: bool) -> Any:
        self._ready(con)
        return user_query.frame(con, self._worker.hold, sql, params, allow_files,
                                self._statement)

    def _ready(self, con: Any) -> None:
        con.complete()  # a partly read execute() result would make con.sql refuse to run
        self._fold(con)  # every commit is in the tables a user queries

    def _report_frame(self, sql: str, params: dict[str, Any] | None = None,
                      to_frame: Callable[[Any], Any] | None = None) -> Any:
        """One report ``SELECT`` written by ``lash_nb.reports`` (never user text: it runs
        without the read-only transaction, ``user_query.report_frame``); timestamps UTC.
        ``to_frame``: the report's Arrow table -> frame step (``user_query.report_frame``)."""
        def job(con: Any) -> Any:
            con.complete()
            self._fold(con)
            return user_query.report_frame(con, self._worker.hold, sql, params, to_frame)

        self._refuse_replaced()
        here = self._worker.run_here(job)  # an idle store: no trip to its thread (ADR 113)
        return (here or self._worker.submit(job, query=True)).result()
