"""``store.query`` / ``%lash sql`` / reports only read: writes, transactions, file access and
functions that run other SQL are refused with one line, the store is unchanged and the next
turn runs. Normal analysis SQL still works. On DuckDB and on PostgreSQL.

The user's situation: a hurried analyst pastes ``DELETE FROM turns`` or
``SELECT 1; DELETE FROM tool_calls`` into ``%lash sql`` (the second showed one row and
emptied the table), or leaves ``BEGIN TRANSACTION`` open (the next turn failed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pg_fixture import PgServer

from lash_nb import LashCore, tool
from lash_nb._core.llm import LlmPart
from lash_nb._errors import QueryNotAllowed
from lash_nb.testing import scripted

TABLES = ("sessions", "graph_nodes", "turns", "usage_deltas", "llm_calls", "tool_calls",
          "turn_events", "queued_work_batches", "queue_history", "execution_leases", "lash_meta")


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _provider() -> Any:
    return scripted([LlmPart.tool_call("c1", "add", '{"a": 2, "b": 3}')], "five")


def _core(store: Any) -> Any:
    return LashCore.builder().provider(_provider()).tools(add).store(store).build()


async def _turn(core: Any, text: str) -> str:
    s = await core.session("s").open()
    out = await s.turn(text).provider(_provider()).run()  # one tool call per turn
    return str(out.result.outcome.kind)


def _snapshot(store: Any) -> dict[str, Any]:
    # one query (was one per table: ~500 round trips in the PostgreSQL test, 42 s of the
    # lowest run)
    counts = ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in TABLES)
    row = store.query(f"SELECT {counts}, (SELECT string_agg(value, ',') FROM lash_meta "
                      "WHERE key = 'schema_version') AS schema_version").iloc[0]
    return {**{t: int(row[t]) for t in TABLES}, "schema_version": row["schema_version"]}


DUCKDB_ATTACKS = [
    ("DELETE FROM turns", "DELETE"),
    ("DROP TABLE turns", "DROP"),
    ("UPDATE lash_meta SET value = '9' WHERE key = 'schema_version'", "UPDATE"),
    ("SELECT 1; DELETE FROM tool_calls", "DELETE"),
    ("INSERT INTO lash_meta VALUES ('x', 'y')", "INSERT"),
    ("BEGIN TRANSACTION", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("COPY turns TO '{tmp}/stolen.csv'", "COPY"),
    ("EXPORT DATABASE '{tmp}/exported'", "EXPORT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
    ("SELECT * FROM read_text('/etc/hostname')", "read_text"),
    ("SELECT count(*) FROM glob('/etc/*')", "glob"),
    ("SELECT * FROM '{tmp}/data.csv'", "data.csv"),
    ("SELECT * FROM turns WHERE turn_id IN (SELECT column0 FROM read_csv('{tmp}/data.csv'))",
     "read_csv"),
    ("EXPLAIN ANALYZE DELETE FROM turns", "EXPLAIN"),
    ("SELECT * FROM query('DELETE FROM turns')", "query"),
    ("SELECT * FROM checkpoint()", "checkpoint"),
    ("CREATE VIEW my_turns AS SELECT * FROM turns", "CREATE"),
    ("CREATE TEMP TABLE scratch AS SELECT 1", "CREATE"),
    ("SET threads = 1", "SET"),
    ("PRAGMA threads = 1", "PRAGMA threads"),  # DuckDB parses it as SET
    ("INSTALL httpfs", "INSTALL"),  # DuckDB parses it as LOAD
    ("WITH x AS (SELECT 1) DELETE FROM turns", "DELETE"),
    ("CALL checkpoint()", "CALL checkpoint"),
    ("CALL query('DELETE FROM turns')", "CALL query"),
    ("CALL read_text('/etc/hostname')", "read_text"),
    # a PIVOT anywhere is several statements to DuckDB (its parser says MULTI)
    ("SELECT * FROM (PIVOT (SELECT * FROM read_text('/etc/hostname')) ON filename)",
     "pivot_table"),
]


@pytest.fixture
def duck(tmp_path: Path) -> Any:
    (tmp_path / "data.csv").write_text("column0\nt1\n")
    core = _core(str(tmp_path / "lash.duckdb"))
    assert asyncio.run(_turn(core, "add 2 and 3")) == "finished"
    yield core
    asyncio.run(core.close())


@pytest.mark.parametrize("attack,named", DUCKDB_ATTACKS, ids=[a for a, _ in DUCKDB_ATTACKS])
def test_duckdb_query_refuses_what_is_not_a_read_and_changes_nothing(
    duck: Any, tmp_path: Path, attack: str, named: str
) -> None:
    store = duck.store
    before = _snapshot(store)
    with pytest.raises(QueryNotAllowed) as e:
        store.query(attack.format(tmp=tmp_path))
    message = str(e.value)
    assert "\n" not in message and named in message
    assert _snapshot(store) == before
    assert not (tmp_path / "stolen.csv").exists() and not (tmp_path / "exported").exists()
    assert not (tmp_path / "other.duckdb").exists()
    assert asyncio.run(_turn(duck, "add again")) == "finished"  # the next turn is fine
    after = _snapshot(store)
    assert after["turns"] == before["turns"] + 1
    assert after["tool_calls"] == before["tool_calls"] + 1


def test_duckdb_query_that_passes_the_check_still_cannot_write(duck: Any) -> None:
    """``nextval`` is a read to the parser but advances a sequence: the read-only
    transaction refuses it, and the next enqueue gets the next number as if it never ran."""
    store = duck.store

    async def enqueue_seq() -> int:
        s = await duck.session("s").open()
        batch = await s.enqueue("later").send()
        await s.cancel_queued_work_batch(batch.batch_id)
        return batch.enqueue_seq

    first = asyncio.run(enqueue_seq())
    with pytest.raises(QueryNotAllowed, match="read-only"):
        store.query("SELECT nextval('enqueue_seq')")
    assert asyncio.run(enqueue_seq()) == first + 1


def test_duckdb_analysis_queries_still_work(duck: Any, tmp_path: Path) -> None:
    store = duck.store
    got = store.query("""
        WITH t AS (SELECT session_id, turn_id, duration_ms FROM turns)
        SELECT turn_id, row_number() OVER (PARTITION BY session_id ORDER BY turn_id) AS n
        FROM t ORDER BY n""")
    assert got["n"].tolist() == [1]
    assert len(store.query("EXPLAIN SELECT * FROM turns")) >= 1
    assert len(store.query("EXPLAIN ANALYZE SELECT count(*) FROM tool_calls")) >= 1
    info = store.query("PRAGMA table_info('turns')")
    assert "turn_id" in info["name"].tolist()
    assert "status" in store.query("DESCRIBE turns")["column_name"].tolist()
    assert "tool_calls" in store.query("SHOW TABLES")["name"].tolist()
    assert len(store.query("SUMMARIZE tool_calls")) > 0
    cols = store.query("SELECT count(*) AS n FROM information_schema.columns "
                       "WHERE table_name = 'turns'")
    assert int(cols["n"][0]) == 11
    assert store.query("SELECT count(*) AS n FROM turns WHERE session_id = $sid",
                       {"sid": "s"})["n"].tolist() == [1]
    assert store.query("SELECT name FROM tool_calls WHERE session_id = ?", ["s"])[
        "name"].tolist() == ["add"]
    assert store.query("SELECT sum(x) AS s FROM range(4) t(x)")["s"].tolist() == [6]
    two = store.query("SELECT 1 AS a; SELECT 2 AS b")  # several reads: the last one's rows
    assert two.to_dict("records") == [{"b": 2}]
    # files on request
    (tmp_path / "data.csv").write_text("column0\nhello\n")
    got = store.query(f"SELECT * FROM read_csv('{tmp_path}/data.csv')", allow_files=True)
    assert got["column0"].tolist() == ["hello"]


def test_reports_still_work_on_a_read_only_query_path(duck: Any) -> None:
    from lash_nb.reports import queue_frame, tool_calls_frame, turns_frame, usage_frame

    assert turns_frame(duck.store)["outcome"].tolist() == ["finished"]
    assert tool_calls_frame(duck.store)["name"].tolist() == ["add"]
    assert len(usage_frame(duck.store, by="model")) == 0  # scripted() reports no tokens
    assert len(queue_frame(duck.store)) == 0


# ---------------------------------------------------------------------- PostgreSQL

PG_ATTACKS = [
    ("DELETE FROM turns", "DELETE"),
    ("DROP TABLE turns", "DROP"),
    ("UPDATE lash_meta SET value = '9' WHERE key = 'schema_version'", "UPDATE"),
    ("SELECT 1; DELETE FROM tool_calls", "DELETE"),
    ("BEGIN", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("COPY turns TO '/tmp/lash-stolen.csv'", "COPY"),
    ("SELECT pg_read_file('/etc/hostname')", "pg_read_file"),
    ("SELECT * FROM pg_ls_dir('/etc')", "pg_ls_dir"),
    ("SELECT * FROM pg_ls_replslotdir('slot')", "pg_ls_replslotdir"),
    ("SELECT pg_file_unlink('postgresql.auto.conf')", "pg_file_unlink"),
    ("CREATE TABLE scratch (a int)", "CREATE"),
    ("SET search_path = public", "SET"),
]


@pytest.mark.postgres
def test_postgres_query_refuses_what_is_not_a_read_and_changes_nothing(pg_server: PgServer) -> None:
    dsn = pg_server.create_database()
    core = _core(dsn)
    try:
        assert asyncio.run(_turn(core, "add 2 and 3")) == "finished"
        store = core.store
        for attack, named in PG_ATTACKS:
            before = _snapshot(store)
            with pytest.raises(QueryNotAllowed) as e:
                store.query(attack)
            assert "\n" not in str(e.value) and named in str(e.value), attack
            assert _snapshot(store) == before, attack
        assert not Path("/tmp/lash-stolen.csv").exists()
        # what the statement check lets through (a SELECT that writes) or cannot parse
        # (PostgreSQL-only syntax) meets the read-only transaction, one statement per call
        for attack in ("SELECT nextval('enqueue_seq')", "DELETE FROM ONLY tool_calls",
                       "DO $$ BEGIN DELETE FROM turns; END $$",
                       "WITH d AS (DELETE FROM turns RETURNING *) SELECT count(*) FROM d",
                       "SELECT * INTO stolen FROM turns"):
            before = _snapshot(store)
            with pytest.raises(QueryNotAllowed, match=r"^store queries only read"):
                store.query(attack)
            assert _snapshot(store) == before, attack
        before = _snapshot(store)
        with pytest.raises(QueryNotAllowed, match="one statement at a time"):
            store.query("SELECT * FROM ONLY turns; COMMIT; DELETE FROM tool_calls")
        assert _snapshot(store) == before
        assert asyncio.run(_turn(core, "add again")) == "finished"
        assert _snapshot(store)["turns"] == before["turns"] + 1
        got = store.query("WITH t AS (SELECT turn_id FROM turns) "
                          "SELECT count(*) OVER () AS n FROM t LIMIT 1")
        assert got["n"].tolist() == [2]
        assert store.query("SELECT count(*) AS n FROM turns WHERE session_id = $sid",
                           {"sid": "s"})["n"].tolist() == [2]
        assert store.query("SELECT count(*) AS n FROM tool_calls WHERE name LIKE 'a%'")[
            "n"].tolist() == [2]
        # jsonb's ? operator is not a placeholder when no parameters are given
        assert store.query("SELECT count(*) AS n FROM tool_calls WHERE args::jsonb ? 'a'")[
            "n"].tolist() == [2]
    finally:
        asyncio.run(core.close())


def test_a_call_is_checked_as_a_table_function_on_duckdb_only() -> None:
    """DuckDB runs ``CALL f()`` as ``SELECT * FROM f()``; PostgreSQL's CALL runs a procedure,
    which may write: there it stays refused."""
    from lash_nb._store import user_sql

    assert user_sql.check("CALL pragma_table_info('turns')").statements == (
        "CALL pragma_table_info('turns')",)
    with pytest.raises(QueryNotAllowed, match=r"^store queries only read; CALL is not allowed"):
        user_sql.check("CALL pragma_table_info('turns')", dialect="postgres")


@pytest.mark.postgres
def test_postgres_only_syntax_does_not_carry_a_write_a_file_read_or_a_lock_past_the_check(
        pg_server: PgServer, tmp_path: Path) -> None:
    """Text DuckDB's parser cannot read (``TO PROGRAM``, ``FROM ONLY``) used to go to
    PostgreSQL unchecked: ``COPY (SELECT 1) TO PROGRAM '...'`` ran a shell command on the
    database server, ``pg_read_file`` read a server file and ``pg_advisory_lock`` took a lock
    the pooled connection kept; ``query_to_xml`` ran SQL text the check never saw."""
    import psycopg

    tmp_path.chmod(0o777)  # the server's user could write here
    ran = tmp_path / "ran"
    dsn = pg_server.create_database()
    core = _core(dsn)
    try:
        assert asyncio.run(_turn(core, "add 2 and 3")) == "finished"
        store = core.store
        for attack, named in [
            (f"COPY (SELECT 1) TO PROGRAM 'id > {ran}'", "COPY"),
            (f"COPY (SELECT * FROM ONLY turns) TO '{ran}'", "COPY"),
            ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SET"),
            ("LOCK TABLE ONLY turns", "LOCK"),
            ("SELECT pg_read_file('/etc/hostname') AS f FROM ONLY turns", "pg_read_file"),
            ("SELECT pg_catalog.pg_read_file('/etc/hostname') FROM ONLY turns", "pg_read_file"),
            ("SELECT pg_advisory_lock(4242) FROM ONLY turns", "pg_advisory_lock"),
            ("SELECT pg_read_file/**/('/etc/hostname') FROM ONLY turns", "pg_read_file"),
            ('SELECT "pg_read_file" (\'/etc/hostname\') FROM ONLY turns', "pg_read_file"),
            ("/* note */ COPY (SELECT 1) TO STDOUT", "COPY"),
            ("SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, true, '')",
             "query_to_xml"),
            ("SELECT query_to_xml('SELECT 1', true, true, '') FROM ONLY turns", "query_to_xml"),
            ("SELECT * FROM ts_stat('SELECT to_tsvector(result) FROM turns')", "ts_stat"),
        ]:
            before = _snapshot(store)
            with pytest.raises(QueryNotAllowed) as e:
                store.query(attack)
            assert "\n" not in str(e.value) and named in str(e.value), attack
            assert _snapshot(store) == before, attack
        assert not ran.exists()
        with psycopg.connect(dsn) as other:
            held = other.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND objid = 4242").fetchone()
        assert held == (0,)
        # PostgreSQL-only reads still run
        assert store.query("SELECT count(*) AS n FROM ONLY turns")["n"].tolist() == [1]
        assert store.query("TABLE lash_meta")["key"].tolist() != []
        assert asyncio.run(_turn(core, "add again")) == "finished"
    finally:
        asyncio.run(core.close())
