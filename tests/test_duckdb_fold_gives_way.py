"""An idle fold of a DuckDB store gives way to the turn that arrives while it runs (issue 21).

The user's situation: a script or a notebook runs turns in a loop with a little work
between them (a DataFrame, a plot, a print). Each pause of 50 ms starts the store's idle
fold (one transaction writing every logged commit into the typed tables, ~10-30 ms), and
the next turn's commit used to wait for all of it. Now the fold looks for waiting work
before each statement and rolls its slice back when a job waits: the commit is served first
and the fold resumes at the next idle moment. What must not change: after an idle moment
everything is folded (drain claims and completions in log order, an undecodable commit
quarantined), and a process killed in the middle of a sliced fold loses and doubles nothing.
Ordering is checked with events, never with a clock.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from test_duckdb_quarantine import _bad_commit

from lash_nb import LashCore
from lash_nb._store.base import lease_owner_id
from lash_nb._store.duckdb import commit as commit_mod
from lash_nb._store.duckdb import journal, rows
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 120.0  # generous: a loaded machine is slow, never wrong


async def _open(store: DuckDBStore, sid: str = "s") -> Any:
    core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \
        .store(store).build()
    return await core.session(sid).open()


async def _until(cond: Any, timeout_s: float = WAIT_S) -> bool:
    end = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() >= end:
            return False
        await asyncio.sleep(0.005)
    return True


def _wake(store: DuckDBStore, fold_idle_s: float) -> None:
    """Turn idle folding on (the burst ran without it) and let the store thread see it."""
    store._worker._fold_idle = fold_idle_s
    store._worker.submit(lambda con: None).result(timeout=WAIT_S)


def test_a_turn_that_arrives_while_the_store_folds_is_served_before_the_fold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_thread: list[threading.Thread] = []
    entered, go = threading.Event(), threading.Event()
    insert = rows.insert

    def blocking_insert(con: Any, table: str, columns: Any, statement: str = "") -> None:
        # the first statement of the armed fold waits here until the test has queued a turn
        if store_thread and threading.current_thread() is store_thread[0] and not entered.is_set():
            entered.set()
            go.wait(WAIT_S)
        insert(con, table, columns, statement)

    pending_at_commit: list[int] = []
    apply = commit_mod._apply

    def recording_apply(con: Any, hold: Any, c: Any, **kw: Any) -> Any:
        pending_at_commit.append(len(hold.pending))  # logged commits not yet folded
        return apply(con, hold, c, **kw)

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", idle_release_s=None, fold_idle_s=0.05)
        s = await _open(store)
        await s.turn("warm").run()
        assert await _until(lambda: store.unfolded_commits == 0)
        for i in range(2):  # the user's loop: two turns, then some work of their own
            await s.turn(f"cell {i}").run()
        waiting = store.unfolded_commits
        assert waiting == 4  # two commits per turn, logged
        store_thread.append(store._worker._thread)
        monkeypatch.setattr(rows, "insert", blocking_insert)
        monkeypatch.setattr(commit_mod, "_apply", recording_apply)
        assert await asyncio.to_thread(entered.wait, WAIT_S)  # the idle fold has begun
        turn = asyncio.create_task(s.turn("the next cell").run())
        assert await _until(lambda: not store._worker._queue.empty())  # its commit waits
        go.set()
        out = await asyncio.wait_for(turn, WAIT_S)
        assert out.result.assistant_message() == "ok"
        # the turn's first commit ran with the fold's deltas still pending: the fold gave
        # way (it used to finish first: 0 pending)
        assert pending_at_commit[0] == waiting, pending_at_commit
        assert store._worker.folds.gave_way >= 1
        monkeypatch.undo()
        assert await _until(lambda: store.unfolded_commits == 0)  # the fold resumed, alone
        folds = store._worker.folds
        assert folds.idle >= 1
        await store.close()

    asyncio.run(body())
    reopened = DuckDBStore(tmp_path / "nb.duckdb", read_only=True)
    try:
        got = reopened.query("SELECT turn_id, count(*) AS n FROM turns GROUP BY ALL")
        assert len(got) == 4 and set(got["n"]) == {1}  # every turn, once
    finally:
        reopened.close_sync()


def test_after_a_burst_and_an_idle_moment_everything_is_folded_in_slices(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst with drains and a commit that cannot be written, then an idle moment: the idle
    fold (in slices of 3 here) writes it all, the quarantine included, with no read's help."""
    monkeypatch.setattr(journal, "FOLD_SLICE", 3)
    path = tmp_path / "nb.duckdb"

    async def body() -> list[str]:
        store = DuckDBStore(path, idle_release_s=None, fold_idle_s=None)  # the burst: no pause
        s = await _open(store)
        other = await _open(store, "other")
        batches = [str((await s.enqueue(f"follow-up {k}").send()).batch_id) for k in range(2)]
        await s.turn("first").run()
        assert (await s.queued_turn().run()) is not None
        lease = await store.try_acquire_lease("bad", lease_owner_id("bad"))
        await store.commit(_bad_commit("bad", "t-bad", lease))  # logged; folding it fails
        await other.turn("elsewhere").run()
        assert (await s.queued_turn().run()) is not None
        await s.turn("last").run()
        pending = store.unfolded_commits
        assert pending >= 10
        full_before = store._worker.folds.full
        _wake(store, 0.05)  # the idle moment
        assert await _until(lambda: store.unfolded_commits == 0)
        folds = store._worker.folds
        assert folds.full == full_before  # no read folded for it: the idle fold did it all
        assert folds.slices == -(-pending // 3) and folds.gave_way == 0  # in slices of 3
        assert folds.idle == 1
        await store.close()
        return batches

    batches = asyncio.run(body())
    _check_fresh_process(path, batches)


def _check_fresh_process(path: Path, batches: list[str]) -> None:
    script = textwrap.dedent("""
        import json, sys
        from lash_nb.stores import DuckDBStore
        store = DuckDBStore(sys.argv[1], read_only=True)
        q = lambda sql: store.query(sql).values.tolist()
        print(json.dumps({
            "turns": q("SELECT session_id, count(*), count(DISTINCT turn_id) FROM turns "
                       "WHERE status = 'committed' GROUP BY ALL ORDER BY 1"),
            "history": q("SELECT batch_id, final_state, attempts FROM queue_history ORDER BY 1"),
            "queued": q("SELECT count(*) FROM queued_work_batches"),
            "log": q("SELECT count(*) FROM commit_log"),
            "quarantined": [r[0] for r in store.quarantined_commits()[["turn_ids"]].values],
            "nodes": q("SELECT count(*), count(DISTINCT node_id) FROM graph_nodes"),
        }))
        store.close_sync()
    """)
    import json

    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["turns"] == [["other", 1, 1], ["s", 4, 4]]  # the two drains are turns of "s"
    assert got["history"] == sorted([[b, "completed", 1] for b in batches])  # each ran once
    assert got["queued"] == [[0]] and got["log"] == [[0]]
    assert got["quarantined"] == ["t-bad"]
    n, distinct = got["nodes"][0]
    assert n == distinct > 0  # no node written twice


VICTIM = textwrap.dedent("""
    import asyncio, os, signal, sys
    from lash_nb import LashCore
    from lash_nb.providers import FunctionProvider
    from lash_nb.stores import DuckDBStore
    from lash_nb._store.duckdb import journal, rows

    journal.FOLD_SLICE = 3
    store = DuckDBStore(sys.argv[1], idle_release_s=None, fold_idle_s=None)
    insert = rows.insert

    def insert_then_die(con, table, columns, statement=""):
        if store._worker.folds.slices >= 1 and table == "turns":  # mid-way through slice 2
            print("killing", store.unfolded_commits, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        insert(con, table, columns, statement)

    async def main():
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \\
            .store(store).build()
        s = await core.session("s").open()
        await s.enqueue("queued").send()
        await s.turn("one").run()
        await s.queued_turn().run()
        for k in range(3):
            await s.turn(f"more {k}").run()
        rows.insert = insert_then_die
        store._worker._fold_idle = 0.01
        await asyncio.to_thread(store._worker.submit(lambda con: None).result)
        await asyncio.sleep(120)  # killed long before, unless the fold never got there
        print("not killed", store._worker.folds, flush=True)

    asyncio.run(main())
""")


@pytest.mark.slow
def test_a_process_killed_in_the_middle_of_a_sliced_fold_reopens_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "nb.duckdb")
    victim = subprocess.run([sys.executable, "-c", VICTIM, path], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert victim.returncode == -signal.SIGKILL, (victim.stdout, victim.stderr[-2000:])
    word, left = victim.stdout.split()
    assert word == "killing" and 0 < int(left) < 10  # one slice folded, the rest in the log

    async def reopen() -> None:
        store = DuckDBStore(path, idle_release_s=None)
        try:
            assert store.query("SELECT count(*) AS n FROM commit_log")["n"].tolist() == [0]
            turns = store.query("SELECT turn_id, status FROM turns ORDER BY seq")
            assert len(turns) == 5 and not turns["turn_id"].duplicated().any()
            assert set(turns["status"]) == {"committed"}
            nodes = store.query("SELECT node_id FROM graph_nodes")
            assert len(nodes) > 0 and not nodes["node_id"].duplicated().any()
            history = store.query("SELECT final_state, attempts FROM queue_history")
            assert history.values.tolist() == [["completed", 1]]  # the drain ran once
            assert store.query("SELECT count(*) AS n FROM queued_work_batches")["n"].tolist() == [0]
            s = await _open(store)
            out = await s.turn("after the crash").run()  # the session goes on
            assert out.result.assistant_message() == "ok"
            assert len(await store.load_turns("s")) == 6
        finally:
            await store.close()

    asyncio.run(reopen())


def test_idle_folds_that_keep_giving_way_still_keep_up_with_the_turns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turns come in blocks with gaps just long enough to start a fold, and every fold meets
    the next block (here: work always waits). The log must not grow block after block until
    the size bound folds it on a turn's path: every few fruitless tries one fold runs to the
    end, and it folds everything that came meanwhile."""
    monkeypatch.setattr(journal, "FOLD_SLICE", 3)

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", idle_release_s=None, fold_idle_s=None)
        s = await _open(store)
        worker = store._worker
        monkeypatch.setattr(worker, "_work_waits", lambda: True)  # a turn always arrives
        seen = []
        for k in range(4 * (journal.FOLD_FIRM_AFTER + 1)):
            await s.turn(f"block {k}").run()  # two logged commits
            await asyncio.wrap_future(worker.submit(lambda con: worker._fold_when_idle()))
            seen.append(store.unfolded_commits)
        # at most what arrived since the last firm fold (it used to fold one slice of 3 per
        # 4 blocks of 2 commits each: 2, 4, 6, 5, 7, ... growing)
        assert max(seen) <= 2 * (journal.FOLD_FIRM_AFTER + 1), seen
        assert seen[journal.FOLD_FIRM_AFTER::journal.FOLD_FIRM_AFTER + 1] == [0, 0, 0, 0], seen
        assert worker.folds.idle == 4 and worker.folds.gave_way == 12
        await store.close()
        again = DuckDBStore(tmp_path / "nb.duckdb")
        assert len(await again.load_turns("s")) == 16  # every turn, once
        await again.close()

    asyncio.run(body())


def test_after_a_fold_gave_way_the_next_starts_sooner_in_the_pause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fold that gave way met turns coming back after a pause: the next one starts after a
    fraction of the idle moment (here the moment is 1,000 s and the fraction 1/10,000, so only
    the early start can fold within the test), and an early fold that gives way with nothing
    folded puts the whole moment back (pauses too short for a fold)."""
    from lash_nb._store.duckdb import worker as worker_mod

    monkeypatch.setattr(worker_mod, "FOLD_EARLY", 1e-4)

    async def body() -> None:
        store = DuckDBStore(tmp_path / "nb.duckdb", idle_release_s=None, fold_idle_s=1000.0)
        s = await _open(store)
        worker = store._worker
        for k in range(2):
            await s.turn(f"cell {k}").run()
        assert store.unfolded_commits == 4

        def fold_meeting_a_turn(con: Any) -> bool:
            worker._work_waits = lambda: True  # type: ignore[method-assign]
            try:
                return worker._fold_when_idle()
            finally:
                del worker._work_waits

        assert await asyncio.wrap_future(worker.submit(fold_meeting_a_turn))  # it gave way
        assert store.unfolded_commits == 4
        assert await _until(lambda: store.unfolded_commits == 0)  # early: 0.1 s, not 1,000 s
        assert worker.folds.idle == 1
        assert worker.folds.seconds > 0  # the fold's work is timed (durable_pace prints it)
        await s.turn("cell 2").run()
        assert worker._early  # folds that finish keep starting early
        assert await asyncio.wrap_future(worker.submit(fold_meeting_a_turn))
        assert not worker._early  # an early fold met a turn with nothing folded
        await store.close()

    asyncio.run(body())
