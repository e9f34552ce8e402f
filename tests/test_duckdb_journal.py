"""The DuckDB commit log: commits land as ``commit_log`` rows and fold into the tables.

Covers: reads never miss a logged commit; idle folding; a process killed with unfolded
commits (LashCore turns, not store calls) loses none of them; a read-only open of such a
file is refused without changing it; the schema 1 -> 2 migration step.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from lash_nb import LashCore
from lash_nb._core.usage import TokenUsage
from lash_nb._errors import StoreError, StoreSchemaError
from lash_nb._store.base import Lease, RuntimeCommit, TurnStart, UsageDelta, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb.testing.conformance import node, turn_record

DATA = Path(__file__).parent / "data"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _turn(sid: str, lease: Lease, k: int, leaf: str | None, **fields: object) -> tuple[RuntimeCommit, RuntimeCommit]:
    tid = f"t{k}"
    user = node(f"{tid}-u", leaf, f"question {k}", tid)
    answer = node(f"{tid}-a", user.node_id, f"answer {k}", tid)
    progress = RuntimeCommit(sid, lease, append_nodes=(user,), leaf_node_id=user.node_id,
                             turn_started=TurnStart(tid, 1000 + k), turn_index=k, **fields)  # type: ignore[arg-type]
    terminal = RuntimeCommit(sid, lease, append_nodes=(answer,), leaf_node_id=answer.node_id,
                             usage_deltas=(UsageDelta(tid, "turn", "m", TokenUsage(100 + k, 7)),),
                             turn=turn_record(tid, f"h{k}"), turn_index=k + 1)
    return progress, terminal


def test_reads_see_logged_commits_and_fold_them(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "lash.duckdb", idle_release_s=None, fold_idle_s=None)
    try:
        async def run() -> None:
            lease = await store.try_acquire_lease("s", lease_owner_id("a"))
            assert isinstance(lease, Lease)
            leaf = None
            for k in range(3):
                # only the first commit names provider, model, policy and tool state
                extra = ({"provider_id": "offline", "model": "echo-1", "policy": {"max_turns": 4},
                          "tool_state": {"enabled": ["add"]}} if k == 0 else {})
                for c in _turn("s", lease, k, leaf, **extra):
                    await store.commit(c)
                leaf = f"t{k}-a"
        asyncio.run(run())
        assert store.unfolded_commits == 6  # nothing has read the tables yet

        turns = store.query("SELECT turn_id, status, commit_hash FROM turns ORDER BY seq")
        assert store.unfolded_commits == 0
        assert turns.values.tolist() == [["t0", "committed", "h0"], ["t1", "committed", "h1"],
                                         ["t2", "committed", "h2"]]
        session = store.query(
            "SELECT provider_id, model, policy, tool_state, head_revision, leaf_node_id, "
            "turn_index FROM sessions")
        assert session.values.tolist() == [[
            "offline", "echo-1", '{"max_turns":4}', '{"enabled":["add"]}', 6, "t2-a", 3]]
        log = store.query("SELECT count(*) AS n FROM commit_log")
        assert log["n"].tolist() == [0]
        loaded = asyncio.run(store.load_session("s"))
        assert loaded is not None
        assert [n.message.text() for n in loaded.nodes if n.message] == [
            "question 0", "answer 0", "question 1", "answer 1", "question 2", "answer 2"]
        assert [(e.source, e.usage.input_tokens) for e in loaded.ledger] == [("turn", 303)]
    finally:
        store.close_sync()


def test_a_logged_commit_records_when_it_was_written(tmp_path: Path) -> None:
    """``commit_log.written_at`` is the commit's wall-clock time, to the millisecond (UTC),
    as a row a crash left behind shows it."""
    store = DuckDBStore(tmp_path / "lash.duckdb", idle_release_s=None, fold_idle_s=None)
    try:
        async def run() -> None:
            lease = await store.try_acquire_lease("s", lease_owner_id("a"))
            assert isinstance(lease, Lease)
            for c in _turn("s", lease, 0, None):
                await store.commit(c)
        before = int(time.time() * 1000)
        asyncio.run(run())
        after = int(time.time() * 1000)
        logged = store._worker.submit(lambda con: con.execute(
            "SELECT head_revision, epoch_ms(written_at), typeof(written_at) FROM commit_log "
            "ORDER BY head_revision").fetchall()).result(timeout=60)
    finally:
        store.close_sync()
    assert [r[0] for r in logged] == [1, 2]
    assert all(before <= r[1] <= after and r[2] == "TIMESTAMP" for r in logged), (before, logged, after)
    assert logged[0][1] <= logged[1][1]


def test_idle_store_folds_without_a_read(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "lash.duckdb", idle_release_s=None, fold_idle_s=0.05)
    try:
        async def run() -> None:
            lease = await store.try_acquire_lease("s", lease_owner_id("a"))
            assert isinstance(lease, Lease)
            for c in _turn("s", lease, 0, None):
                await store.commit(c)
        asyncio.run(run())
        deadline = time.monotonic() + 10
        while store.unfolded_commits and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.unfolded_commits == 0
    finally:
        store.close_sync()
    # folded before the release too: a plain DuckDB connection sees the rows
    con = duckdb.connect(str(tmp_path / "lash.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM commit_log").fetchone() == (0,)
        assert con.execute("SELECT status FROM turns").fetchall() == [("committed",)]
    finally:
        con.close()


CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from lash_nb import LashCore, TurnInput, tool
    from lash_nb._providers.offline import OfflineProvider
    from lash_nb._store.duckdb import DuckDBStore

    @tool
    def add(a: int, b: int) -> int:
        \"\"\"Add two numbers.\"\"\"
        return a + b

    async def main():
        store = DuckDBStore(sys.argv[1], idle_release_s=None, fold_idle_s=None)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).tools(add).store(store).build()
        session = await core.session("s").open()
        for k in range(5):
            await session.turn(TurnInput.text(f"call add with a={k} and b=1")).run()
        print("done", store.unfolded_commits, flush=True)
        time.sleep(600)

    asyncio.run(main())
""")


@pytest.mark.slow
def test_killed_process_loses_no_logged_turn(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    word, unfolded = child.stdout.readline().split()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert word == "done" and int(unfolded) > 0  # the kill left commits only in the log

    before = digest(path)
    with pytest.raises(StoreError) as e:
        DuckDBStore(path, read_only=True)
    assert "without read_only=True" in str(e.value) and "\n" not in str(e.value)
    assert digest(path) == before

    store = DuckDBStore(path, idle_release_s=None)
    try:
        assert store.query("SELECT count(*) AS n FROM commit_log")["n"].tolist() == [0]
        turns = asyncio.run(store.load_turns("s"))
        assert [(t.outcome, t.stop_reason) for t in turns] == [("finished", "assistant_message")] * 5
        tools = store.query("SELECT args FROM tool_calls ORDER BY seq")["args"].tolist()
        assert tools == [f'{{"a":{k},"b":1}}' for k in range(5)]
        per_call = store.query(
            "SELECT sum(input_tokens) AS i, sum(output_tokens) AS o FROM llm_calls")
        core = LashCore.builder().store(store).build()

        async def reopen() -> tuple[list[str], int, int]:
            session = await core.session("s").open()
            texts = [m.text() for m in session.read_view().messages()
                     if m.role.value == "user" and m.text()]  # not the tool results
            report = session.usage_report()
            return texts, report.usage.input_tokens, report.usage.output_tokens

        texts, used_in, used_out = asyncio.run(reopen())
        assert texts == [f"call add with a={k} and b=1" for k in range(5)]
        assert used_in > 0 and (used_in, used_out) == (per_call["i"][0], per_call["o"][0])
    finally:
        store.close_sync()
    # the reopen let the file go (closed): moved alone, it holds every turn (ADR 193)
    (tmp_path / "moved").mkdir()
    path.rename(tmp_path / "moved" / "lash.duckdb")
    moved = DuckDBStore(tmp_path / "moved" / "lash.duckdb")
    try:
        turns = asyncio.run(moved.load_turns("s"))
        assert [(t.outcome, t.stop_reason) for t in turns] == [("finished", "assistant_message")] * 5
    finally:
        moved.close_sync()


def _v1_file(path: Path) -> None:
    """A file as lash_nb wrote it at schema version 1, with one two-message session."""
    con = duckdb.connect(str(path))
    con.execute((DATA / "duckdb_schema_v1.sql").read_text())
    con.execute(
        "INSERT INTO sessions VALUES ('old', 'offline', 'echo-1', NULL, '{}', 2, 'n2', 1, "
        "NULL, now(), now(), 4)")
    for seq, (nid, parent, role, text) in enumerate(
            (("n1", None, "user", "hello"), ("n2", "n1", "assistant", "hi there")), start=1):
        content = (f'{{"id":"{nid}","role":"{role}","parts":[{{"id":"{nid}.p0","kind":"text","content":"{text}"}}]}}')
        con.execute("INSERT INTO graph_nodes VALUES ('old', ?, ?, ?, 'message', ?, ?, now(), 't1', "
                    "false)", [seq, nid, parent, role, content])
    con.close()


def test_version_1_file_is_refused_then_migrated_by_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _v1_file(path)
    before = digest(path)
    with pytest.raises(StoreSchemaError) as e:
        DuckDBStore(path)
    assert f"python -m lash_nb migrate-store {path}" in str(e.value)
    assert digest(path) == before

    cli = [sys.executable, "-m", "lash_nb", "migrate-store", str(path)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: schema version 1 -> 4; ")
    again = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == f"{path}: already at schema version 4"

    store = DuckDBStore(path, idle_release_s=None)
    try:
        loaded = asyncio.run(store.load_session("old"))
        assert loaded is not None and loaded.meta.head_revision == 2
        assert [n.message.text() for n in loaded.nodes if n.message] == ["hello", "hi there"]
    finally:
        store.close_sync()


def test_migrating_a_foreign_file_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE measurements (x INTEGER)")
    con.close()
    before = digest(path)
    done = subprocess.run([sys.executable, "-m", "lash_nb", "migrate-store", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {path} is not a lash store (no schema version); nothing to migrate"
    assert digest(path) == before


def test_two_stores_of_one_file_in_one_process_share_leases_and_commits(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    a = DuckDBStore(path, idle_release_s=None, fold_idle_s=None)
    b = DuckDBStore(path)
    try:
        async def run() -> None:
            lease = await a.try_acquire_lease("s", lease_owner_id("a"))
            assert isinstance(lease, Lease)
            busy = await b.try_acquire_lease("s", lease_owner_id("b"))
            assert not isinstance(busy, Lease)  # one session, one runner
            for c in _turn("s", lease, 0, None):
                await a.commit(c)
            seen = await b.load_session("s")
            assert seen is not None and seen.meta.head_revision == 2
            assert [n.message.text() for n in seen.nodes if n.message] == ["question 0", "answer 0"]
        asyncio.run(run())
        with pytest.raises(StoreError) as e:
            DuckDBStore(path, read_only=True)
        assert "another read_only setting" in str(e.value)
        a.close_sync()
        assert b.query("SELECT count(*) AS n FROM turns")["n"].tolist() == [1]
    finally:
        a.close_sync()
        b.close_sync()
    con = duckdb.connect(str(path), read_only=True)  # the last close released the file
    con.close()
