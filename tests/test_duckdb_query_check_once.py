"""A report's SQL is checked for writes once per text, not on every run (issue 21: the check
cost a third of a 1M-row usage roll-up), and the shortcut never lets through what the
check refuses: a refused text is refused every time, and a text that passed only with
``allow_files=True`` is refused without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_nb._errors import QueryNotAllowed
from lash_nb._store import user_sql
from lash_nb._store.duckdb import DuckDBStore
from lash_nb.reports import usage_frame


def test_the_same_report_twice_is_checked_once(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    real = user_sql.check

    def counting(sql: str, **kw):  # type: ignore[no-untyped-def]
        calls.append(sql)
        return real(sql, **kw)

    monkeypatch.setattr(user_sql, "check", counting)
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
