"""The DuckDB store at a notebook's pace (issue 21): the file stays open between turns a
person types seconds apart, a burst of turns never pays a fold inside a commit, and a new
store file is small while yesterday's file (256 kB blocks) still opens and keeps its blocks.

Speed itself is measured in ``benchmarks/durable_pace.py``; these tests check the behaviour
that makes it fast (no reopen, no inline fold, the block size) and that nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import duckdb
import pytest
from statement_counter import count_statements

from lash_nb._store.base import Lease, RuntimeCommit, TurnStart, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb.testing.conformance import node, turn_record


def _turn(sid: str, lease: Lease, k: int, leaf: str | None) -> tuple[RuntimeCommit, RuntimeCommit]:
    tid = f"t{k}"
    user = node(f"{tid}-u", leaf, f"question {k}", tid)
    answer = node(f"{tid}-a", user.node_id, f"answer {k}", tid)
    return (
        RuntimeCommit(sid, lease, append_nodes=(user,), leaf_node_id=user.node_id,
                      turn_started=TurnStart(tid, 1000 + k), turn_index=k),
        RuntimeCommit(sid, lease, append_nodes=(answer,), leaf_node_id=answer.node_id,
                      turn=turn_record(tid, f"h{k}"), turn_index=k + 1),
    )


async def _turns(store: DuckDBStore, ks: range, *, pause_s: float = 0.0) -> None:
    lease = await store.try_acquire_lease("s", lease_owner_id("a"))
    assert isinstance(lease, Lease)
    for k in ks:
        if pause_s and k != ks.start:
            await asyncio.sleep(pause_s)  # a person reading the answer before the next cell
        for c in _turn("s", lease, k, f"t{k - 1}-a" if k else None):
            await store.commit(c)
    await store.release_lease(lease)


def test_a_person_typing_seconds_apart_keeps_the_file_open(tmp_path: Path) -> None:
    """Turns 2.5 s apart (longer than the old 2 s idle release): one open for all of them,
    and every turn is in the file once the store closes."""
    path = tmp_path / "nb.duckdb"
    store = DuckDBStore(path)
    try:
        asyncio.run(_turns(store, range(3), pause_s=2.5))
        assert store.holding_file
        assert store.opens == 1  # the old default reopened before each of turns 1 and 2
    finally:
        store.close_sync()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT turn_id FROM turns ORDER BY seq").fetchall() == [
            ("t0",), ("t1",), ("t2",)]
    finally:
        con.close()


def test_a_burst_of_turns_folds_only_when_the_store_rests(tmp_path: Path) -> None:
    """40 turns back to back (80 commits, more than the old inline-fold bound of 32) are all
    still in the log when no read asked for them; a read then sees every one."""
    store = DuckDBStore(tmp_path / "burst.duckdb", fold_idle_s=None)
    try:
        asyncio.run(_turns(store, range(40)))
        assert store.unfolded_commits == 80
        turns = store.query("SELECT count(*) AS n, max(turn_id) AS last FROM turns")
        assert turns.values.tolist() == [[40, "t9"]]  # max of the strings t0..t39
        assert store.unfolded_commits == 0
    finally:
        store.close_sync()


def test_a_burst_folds_by_itself_once_the_store_is_idle(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "idle.duckdb", fold_idle_s=0.05)
    try:
        asyncio.run(_turns(store, range(40)))
        deadline = time.monotonic() + 30
        while store.unfolded_commits and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.unfolded_commits == 0
    finally:
        store.close_sync()


def test_a_new_store_file_is_small(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    store = DuckDBStore(path)
    try:
        asyncio.run(_turns(store, range(1)))
    finally:
        store.close_sync()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT block_size FROM pragma_database_size()").fetchone() == (16384,)
    finally:
        con.close()
    assert path.stat().st_size < 300_000  # 3.1 MB with DuckDB's 256 kB blocks


def test_yesterdays_file_with_large_blocks_opens_and_keeps_them(tmp_path: Path) -> None:
    """A store written before this change (256 kB blocks) opens, takes turns, and keeps its
    block size (DuckDB cannot change it in place)."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path), config={"default_block_size": "262144"})
    con.close()
    store = DuckDBStore(path)
    try:
        asyncio.run(_turns(store, range(2)))
    finally:
        store.close_sync()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT block_size FROM pragma_database_size()").fetchone() == (262144,)
        assert con.execute("SELECT count(*) FROM turns").fetchone() == (2,)
    finally:
        con.close()


def test_a_fold_checkpoints_once_the_wal_is_large(tmp_path: Path, monkeypatch) -> None:
    """DuckDB's own checkpoint (at its .wal threshold) used to catch unfolded commit_log rows
    and write them into blocks their fold freed again, for good (a 2,000-turn store was 82%
    free blocks; benchmarks/durable_pace.py). Now the store checkpoints right after a fold,
    with the log empty, once the .wal is past ``CHECKPOINT_WAL_BYTES`` (lowered here)."""
    from lash_nb._store.duckdb import lock

    monkeypatch.setattr(lock, "CHECKPOINT_WAL_BYTES", 1)
    path = tmp_path / "ckpt.duckdb"
    store = DuckDBStore(path, fold_idle_s=None)
    try:
        asyncio.run(_turns(store, range(20)))
        wal = Path(str(path) + ".wal")
        logged = wal.stat().st_size  # 40 commits logged, nothing folded
        assert logged > 10_000
        assert store.query("SELECT count(*) AS n FROM turns")["n"].tolist() == [20]  # folds
        # checkpointed: what is left is the lease row the query wrote after it, if anything
        assert not wal.exists() or wal.stat().st_size < logged // 10
    finally:
        store.close_sync()


EXIT_WITHOUT_CLOSE = """
import asyncio, sys
from lash_nb import LashCore
from lash_nb._core.llm import LlmPart, LlmResponse
from lash_nb._core.usage import TokenUsage
from lash_nb._store.duckdb import DuckDBStore
from lash_nb.providers import FunctionProvider

def model(request):
    return LlmResponse(parts=(LlmPart.text_part("noted"),), usage=TokenUsage(10, 2))

async def main():
    store = DuckDBStore(sys.argv[1], fold_idle_s=None)
    core = LashCore.builder().provider(FunctionProvider(model)).model("m").store(store).build()
    session = await core.session("s").open()
    for i in range(40):
        await session.turn(f"note {i}").run()
    print(store.unfolded_commits, flush=True)

asyncio.run(main())
# the script ends here: no close(), as a hurried one does
"""


def test_a_script_that_ends_without_closing_keeps_every_turn_in_the_tables(tmp_path: Path) -> None:
    """80 commits still in the log when the interpreter exits: the exit-time fold cannot run
    Python there, and used to quarantine every one of them as if its data were bad. They stay
    in the log instead and fold at the next open."""
    import subprocess
    import sys

    path = tmp_path / "script.duckdb"
    done = subprocess.run([sys.executable, "-c", EXIT_WITHOUT_CLOSE, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["80"]
    store = DuckDBStore(path)
    try:
        assert store.query("SELECT count(*) AS n FROM turns")["n"].tolist() == [40]
        assert len(store.quarantined_commits()) == 0
    finally:
        store.close_sync()


def test_after_a_release_an_unchanged_session_reads_one_row_not_its_history(tmp_path: Path) -> None:
    """A notebook's store gave the file to a worker (hand-over) and got it back: its next turn
    checks the session's row, not every turn row and node id it ever stored."""
    store = DuckDBStore(tmp_path / "nb.duckdb")
    try:
        asyncio.run(_turns(store, range(30)))
        asyncio.run(store.release_file())
        seen = count_statements(store)
        asyncio.run(_turns(store, range(30, 32)))
        assert store.opens == 2
        assert not any("FROM turns" in q or "FROM graph_nodes" in q for q in seen), seen
        assert any("FROM sessions WHERE session_id" in q for q in seen)
    finally:
        store.close_sync()
    con = duckdb.connect(str(tmp_path / "nb.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM turns").fetchone() == (32,)
    finally:
        con.close()


def test_after_a_release_a_session_written_meanwhile_is_read_again(tmp_path: Path) -> None:
    """Another process committed to the session while this one had released the file (here:
    its head moved in the file): this process's next commit is checked against the file, not
    against what it remembered, so a commit that expected the old head is refused."""
    from lash_nb._errors import HeadRevisionConflict

    path = tmp_path / "nb.duckdb"
    store = DuckDBStore(path)
    try:
        asyncio.run(_turns(store, range(3)))
        asyncio.run(store.release_file())
        other = duckdb.connect(str(path))  # the other process, in short
        rev = other.execute("SELECT head_revision FROM sessions WHERE session_id = 's'").fetchone()[0]
        other.execute("UPDATE sessions SET head_revision = head_revision + 1, "
                      "next_seq = next_seq + 1 WHERE session_id = 's'")
        other.close()

        async def stale() -> None:
            lease = await store.try_acquire_lease("s", lease_owner_id("a"))
            assert isinstance(lease, Lease)
            await store.commit(RuntimeCommit("s", lease, expected_head_revision=rev,
                                             turn_started=TurnStart("late", 9)))

        with pytest.raises(HeadRevisionConflict):
            asyncio.run(stale())
    finally:
        store.close_sync()
