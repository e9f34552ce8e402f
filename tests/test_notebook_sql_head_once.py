"""A bare ``%lash sql`` runs its query once: the rows it shows and the total it states come
from the same run, on DuckDB and on PostgreSQL.

Before, the DuckDB store ran the query twice (with a ``LIMIT`` for the rows shown, then as a
``count(*)``, ADR 186): a heavy aggregate cost twice, and a query whose rows change from one
run to the next (``random()``, a table another process writes) stated a total that was not
its rows'. PostgreSQL brought every row into Python and cut them. The query here keeps about
half its rows at random and carries, in column ``n``, how many rows that run kept: one run
shows the same number in the line as in ``n``; two runs differ.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from notebook_harness import KernelHarness

DUCK = ("SELECT i, count(*) OVER () AS n FROM range(200000) t(i) WHERE random() < 0.5 "
        "ORDER BY i")
PG = ("SELECT i, count(*) OVER () AS n FROM generate_series(0, 199999) i "
      "WHERE random() < 0.5 ORDER BY i")
SHOWN = re.compile(r"lash: showing the first (\d+) of ([\d,]+) rows")


def _stated_and_carried(k: KernelHarness, query: str) -> tuple[int, int, list[int]]:
    ex = k.run(f"%lash sql {query}")
    m = SHOWN.search(ex.stdout)
    assert m is not None, ex.stdout
    got = k.run("print(len(_), int(_['n'].iloc[0]), *_['i'].tolist()[:3])").stdout.split()
    assert int(m.group(1)) == int(got[0]) == 5
    return int(m.group(2).replace(",", "")), int(got[1]), [int(x) for x in got[2:]]


@pytest.mark.slow  # a real kernel
def test_a_bare_duckdb_query_states_the_total_of_the_rows_it_shows(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.sql_rows = 5")
        k.run("%lash open s --store s.duckdb")
        for _ in range(4):
            stated, carried, first = _stated_and_carried(k, DUCK)
            assert stated == carried, (stated, carried)
            assert 90_000 < stated < 110_000
            assert first == sorted(first)  # the query's order
        # assigned: every row, as before
        k.run(f"df = %lash sql {DUCK}")
        assert k.run("print(len(df) == df['n'].iloc[0])").stdout.strip() == "True"


@pytest.mark.slow  # a real kernel and a PostgreSQL server
def test_a_bare_postgres_query_shows_its_head_and_the_total_of_one_run(pg_dsn: str,
                                                                      tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run(f"%load_ext lash_nb\n%config LashMagics.sql_rows = 5\ndsn = {pg_dsn!r}")
        k.run("%lash open s --store {dsn}")
        k.run("%lash turn hello")
        for _ in range(4):
            stated, carried, first = _stated_and_carried(k, PG)
            assert stated == carried, (stated, carried)
            assert 90_000 < stated < 110_000
            assert first == sorted(first)
        # fewer rows than shown: no line, every row
        ex = k.run("%lash sql SELECT session_id FROM sessions")
        assert "showing" not in ex.stdout
        assert k.run("print(_['session_id'].tolist())").stdout.strip() == "['s']"
        # a write is still refused, and a SQL mistake is one line
        ex = k.execute("%lash sql DELETE FROM sessions", stop_on_error=False)
        assert ex.status == "error" and "\n" not in ex.stderr.strip()
        ex = k.execute("%lash sql SELECT nope FROM sessions", stop_on_error=False)
        assert ex.status == "error" and "SQL error" in (ex.stderr + ex.error)


def test_the_postgres_head_keeps_order_names_and_parameters(pg_dsn: str) -> None:
    """The store's side: the first rows in the query's order, a name given twice kept twice,
    parameters as ``store.query`` takes them, and the count of every row."""
    from lash_nb.stores import PostgresStore

    async def body() -> list:
        store = PostgresStore(pg_dsn)
        try:
            ordered = await store.query_head_async(
                "SELECT g AS i FROM generate_series(0, 999) g ORDER BY i DESC", 3)
            twice = await store.query_head_async(
                "SELECT 1 AS a, 2 AS a FROM generate_series(1, 10)", 4)
            few = await store.query_head_async("SELECT ? AS n", 50, [7])
            return [(ordered[0]["i"].tolist(), ordered[1]),
                    (list(twice[0].columns), twice[0].values.tolist(), twice[1]),
                    (few[0]["n"].tolist(), few[1])]
        finally:
            await store.close()

    assert asyncio.run(body()) == [
        ([999, 998, 997], 1000),
        (["a", "a"], [[1, 2]] * 4, 10),
        ([7], 1),
    ]


ENDLESS = {"duckdb": "SELECT range AS i FROM range(100000000000)",
           "postgres": "SELECT generate_series(1, 100000000000) AS i"}  # streams


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_cancelled_head_stops_while_it_counts_and_the_store_answers_next(
        kind: str, tmp_path, request) -> None:
    """The count is the query's own run now: a cancel (the kernel's interrupt of a bare
    ``%lash sql``) must stop it there, and nothing of it may stay running."""
    from lash_nb.stores import DuckDBStore, PostgresStore

    async def body() -> list:
        store = (DuckDBStore(tmp_path / "c.duckdb") if kind == "duckdb"
                 else PostgresStore(request.getfixturevalue("pg_dsn")))
        try:
            task = asyncio.ensure_future(store.query_head_async(ENDLESS[kind], 5))
            await asyncio.sleep(1.0)  # into the counting (the first rows come at once)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            out = [(await store.query_async("SELECT 42 AS x"))["x"].tolist()]
            if kind == "postgres":
                running = []
                for _ in range(100):  # the server's own view, until the cancel reached it
                    running = (await store.query_async(
                        "SELECT query FROM pg_stat_activity WHERE state = 'active' AND "
                        "query LIKE '%lash_head%' AND pid <> pg_backend_pid()"))["query"]
                    if not len(running):
                        break
                    await asyncio.sleep(0.1)
                out.append(list(running))
            return out
        finally:
            await store.close()

    assert asyncio.run(body()) == ([[42]] if kind == "duckdb" else [[42], []])
