"""A report's SQL is checked for writes once per text, not on every run (issue 21: the check
cost a third of a 1M-row usage roll-up), and the shortcut never lets through what the
check refuses: a refused text is refused every time, and a text that passed only with
``allow_files=True`` is refused without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_nb._errors import QueryNotAllowed
from lash_nb._store import user_sql
from lash_nb._store.duckdb import DuckDBStore, user_query
from lash_nb.reports import usage_frame


def test_the_same_report_twice_is_checked_once(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    real = user_sql.check

    def counting(sql: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(sql)
        return real(sql, **kw)

    monkeypatch.setattr(user_sql, "check", counting)
    # the texts an earlier test of this process passed are remembered (per process): forget
    # them, or the first report here is a remembered one and nothing is counted
    monkeypatch.setattr(user_query, "_PASSED", {})
    store = DuckDBStore(tmp_path / "r.duckdb")
    try:
        first = usage_frame(store, by="model")
        n = len(calls)
        second = usage_frame(store, by="model")
        assert n >= 1 and len(calls) == n
        assert list(first.columns) == list(second.columns)
    finally:
        store.close_sync()


def test_a_refused_query_is_refused_every_time(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "r.duckdb")
    try:
        for _ in range(2):
            with pytest.raises(QueryNotAllowed):
                store.query("DELETE FROM turns")
        csv = tmp_path / "x.csv"
        csv.write_text("a\n1\n")
        text = f"SELECT * FROM read_csv('{csv}')"
        assert store.query(text, allow_files=True)["a"].tolist() == [1]
        with pytest.raises(QueryNotAllowed):
            store.query(text)
        assert store.query("SELECT count(*) AS n FROM turns")["n"].tolist() == [0]
    finally:
        store.close_sync()


def test_queries_in_a_row_get_every_core_and_the_next_turn_gets_one_thread(tmp_path: Path) -> None:
    """A report's queries run on every core and switch the connection once for the lot (the
    switch cost ~10 ms per 1M-row roll-up); the store's own next job is back on one thread,
    and its commit lands."""
    import asyncio
    import os

    from lash_nb._store.base import Lease, RuntimeCommit, lease_owner_id
    from lash_nb.testing.conformance import node

    store = DuckDBStore(tmp_path / "t.duckdb")

    def threads_now() -> int:  # as a store job sees it (not a query)
        return int(store._worker.submit(
            lambda con: con.execute("SELECT current_setting('threads')").fetchone()[0]).result())

    try:
        cores = max(1, os.cpu_count() or 1)
        for _ in range(2):
            got = store.query("SELECT current_setting('threads') AS t")["t"].tolist()
            assert [int(x) for x in got] == [cores]
        assert store._worker.hold.query_threads  # still raised: the queries switched once

        async def commit() -> None:
            lease = await store.try_acquire_lease("s", lease_owner_id("a"))
            assert isinstance(lease, Lease)
            await store.commit(RuntimeCommit("s", lease, append_nodes=(node("n1", None, "hi"),),
                                             leaf_node_id="n1"))

        asyncio.run(commit())
        assert threads_now() == 1
        assert store.query("SELECT count(*) AS n FROM graph_nodes")["n"].tolist() == [1]
    finally:
        store.close_sync()
