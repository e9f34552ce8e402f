"""DuckDBStore specifics: refusing bad files without touching them, the schema, query()."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import duckdb
import pytest

from lash_nb._core.events import AssistantProseDelta, TurnActivity
from lash_nb._core.records import ToolCallRecord
from lash_nb._core.usage import LlmAttempt, LlmCallRecord, TokenUsage
from lash_nb._errors import QueryNotAllowed, StoreError, StorePathError, StoreSchemaError
from lash_nb._store.base import RuntimeCommit, UsageDelta, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb.testing.conformance import node, turn_record


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_text_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are my notes, not a database\n" * 20)
    before = digest(path)
    with pytest.raises(StoreSchemaError) as e:
        DuckDBStore(path)
    assert "not a DuckDB database" in one_line(e)
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["notes.duckdb"]


def test_empty_file_is_refused_and_left_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    path.touch()
    with pytest.raises(StoreSchemaError):
        DuckDBStore(path)
    assert path.stat().st_size == 0


def test_folder_path_is_refused_with_a_file_suggestion(tmp_path: Path) -> None:
    with pytest.raises(StorePathError) as e:
        DuckDBStore(tmp_path)
    assert "is a folder" in one_line(e)
    assert os.listdir(tmp_path) == []


def test_missing_parent_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorePathError) as e:
        DuckDBStore(tmp_path / "nope" / "lash.duckdb")
    assert "does not exist" in one_line(e)


def test_unwritable_folder_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes through chmod; /proc refuses new files even to root
        target = Path("/proc/lash-nb-test.duckdb")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        target = folder / "lash.duckdb"
    with pytest.raises(StorePathError) as e:
        DuckDBStore(target)
    one_line(e)
    assert not target.exists()


def test_foreign_duckdb_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "analytics.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (day DATE, amount DOUBLE)")
    con.execute("INSERT INTO sales VALUES ('2026-01-01', 3.5)")
    con.close()
    before = digest(path)
    with pytest.raises(StoreSchemaError) as e:
        DuckDBStore(path)
    assert "another application (tables: sales)" in one_line(e)
    assert digest(path) == before


def test_other_schema_version_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    con = duckdb.connect(str(path))
    con.execute("UPDATE lash_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    before = digest(path)
    with pytest.raises(StoreSchemaError) as e:
        DuckDBStore(path)
    text = one_line(e)
    assert "schema version 99" in text and "uses 4" in text
    assert digest(path) == before


def test_new_file_gets_schema_version_four(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "lash.duckdb")
    try:
        meta = store.query("SELECT key, value FROM lash_meta")
        assert meta.to_dict("records") == [{"key": "schema_version", "value": "4"}]
    finally:
        store.close_sync()


def test_read_only_store_reads_but_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    with pytest.raises(StorePathError):
        DuckDBStore(path, read_only=True)
    writer = DuckDBStore(path)
    lease = asyncio.run(writer.try_acquire_lease("s1", lease_owner_id("w")))
    asyncio.run(writer.commit(RuntimeCommit("s1", lease, append_nodes=(node("a", None, "x"),),
                                            leaf_node_id="a")))
    writer.close_sync()
    reader = DuckDBStore(path, read_only=True)
    try:
        got = asyncio.run(reader.load_session("s1"))
        assert got is not None and [n.node_id for n in got.nodes] == ["a"]
        with pytest.raises(StoreError) as e:
            asyncio.run(reader.commit(RuntimeCommit("s1", None)))
        assert "read_only=True" in one_line(e)
    finally:
        reader.close_sync()


def test_query_returns_rows_of_a_commit_as_a_dataframe(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "lash.duckdb")
    calls = (
        ("t1", LlmCallRecord("c1", "m1", 0, (
            LlmAttempt(1, 1000, 4.0, "failed", None, error="timeout"),
            LlmAttempt(2, 1010, 6.0, "completed", TokenUsage(100, 10))))),
        ("t1", LlmCallRecord("c2", "m1", 1, (LlmAttempt(1, 1020, 3.0, "completed",
                                                          TokenUsage(120, 5)),))),
    )
    tools = (("t1", ToolCallRecord("k1", "add", {"a": 1, "b": 2}, 3, True, 1.5, 1015)),
             ("t1", ToolCallRecord("k2", "mul", {"a": 2, "b": 3}, 6, True, 0.5, 1016)))
    events = tuple(TurnActivity(f"e{i}", "p", AssistantProseDelta(str(i)), "t1") for i in range(5))
    lease = asyncio.run(store.try_acquire_lease("s1", lease_owner_id("q")))
    commit = RuntimeCommit("s1", lease, turn=turn_record("t1"), llm_calls=calls, tool_calls=tools,
                           events=events, usage_deltas=(
                               UsageDelta("t1", "turn", "m1", TokenUsage(100, 10)),
                               UsageDelta("t1", "turn", "m1", TokenUsage(120, 5))))
    try:
        asyncio.run(store.commit(commit))
        attempts = store.query(
            "SELECT call_id, attempt, outcome, coalesce(error, '-'), input_tokens FROM llm_calls "
            "ORDER BY seq")
        assert attempts.values.tolist() == [
            ["c1", 1, "failed", "timeout", 0], ["c1", 2, "completed", "-", 100],
            ["c2", 1, "completed", "-", 120]]
        tool_rows = store.query("SELECT name, args->>'b' AS b, output FROM tool_calls ORDER BY seq")
        assert tool_rows.values.tolist() == [["add", "2", "3"], ["mul", "3", "6"]]
        usage = store.query(
            "SELECT sum(input_tokens) AS input, count(*) AS n FROM usage_deltas "
            "WHERE session_id = ?", ["s1"])
        assert usage.to_dict("records") == [{"input": 220, "n": 2}]
        kinds = store.query("SELECT typeof(created_at) AS t FROM turn_events LIMIT 1")
        assert kinds["t"].tolist() == ["TIMESTAMP"]
        assert store.query("SELECT count(*) AS n FROM turn_events")["n"].tolist() == [5]
        with pytest.raises(QueryNotAllowed, match="CREATE is not allowed"):  # queries only read
            store.query("CREATE VIEW my_turns AS SELECT * FROM turns")
    finally:
        store.close_sync()


def test_store_releases_the_file_when_idle_and_reopens_on_demand(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "lash.duckdb", idle_release_s=0.05)
    try:
        deadline = time.monotonic() + 5
        while store.holding_file and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not store.holding_file
        assert asyncio.run(store.list_sessions()) == []
        assert store.opens == 2
    finally:
        store.close_sync()


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "lash.duckdb")
    store.close_sync()
    with pytest.raises(StoreError) as e:
        store.query("SELECT 1")
    assert "closed" in one_line(e)
