"""A commit on an idle DuckDB store runs on the caller's thread (ADR 131), and stays whole.

A data scientist runs cell after cell: each turn's two commits are written from the event
loop's thread while the store's thread waits for work, with no trip to it. What must not
change: a commit DuckDB refuses on the file lock is written once, by the store's thread,
after it let the file go and took it back; a process waiting for the file still gets it
between two commits; a process killed right after such a commit's INSERT reopens with the
turn whole; Ctrl-C in that moment arrives after the commit is recorded, never between its
INSERT and the bookkeeping that says it is in the log. Counted and compared, never timed.
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

import duckdb
import pytest

from lash_nb import LashCore
from lash_nb._store.base import RuntimeCommit, lease_owner_id
from lash_nb._store.duckdb import commit as commits
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    extra = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), extra) if p)}


def _stored(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(committed turns by status, the user messages of the graph) as another process sees
    them once it opens the file (a read-only open refuses a file with unfolded commits, so
    a writing open folds them first, as the next process to open it would)."""
    DuckDBStore(path).close_sync()
    con = duckdb.connect(str(path), read_only=True)
    try:
        turns = con.execute("SELECT status, count(*) FROM turns GROUP BY status "
                            "ORDER BY status").fetchall()
        users = con.execute("SELECT content FROM graph_nodes WHERE kind = 'message' "
                            "AND role = 'user' ORDER BY seq").fetchall()
        return turns, users
    finally:
        con.close()


def test_a_refused_commit_on_the_callers_thread_is_written_once_by_the_store_thread(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Fails on the code before ADR 131: no commit ran on the caller's thread."""
    path = tmp_path / "nb.duckdb"
    where: list[str] = []
    real = commits.commit
    refused: list[int] = []

    def spy(con: Any, hold: Any, c: RuntimeCommit, in_txn: Any) -> Any:
        where.append("caller" if threading.current_thread() is threading.main_thread()
                     else "store")
        if c.turn is not None and c.turn_index == 3 and not refused:  # cell 1's final commit
            refused.append(1)
            raise duckdb.TransactionException(
                'TransactionContext Error: Failed to commit: Could not set lock on file '
                f'"{path}.wal": Conflicting lock is held in /usr/bin/python3 (PID 1)')
        return real(con, hold, c, in_txn)

    async def body() -> None:
        store = DuckDBStore(path, fold_idle_s=None)
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \
            .store(store).build()
        s = await core.session("s").open()
        await s.turn("warm").run()
        opens = store.opens
        monkeypatch.setattr(commits, "commit", spy)
        for i in range(2):
            out = await s.turn(f"cell {i}").run()
            assert out.result.assistant_message() == "ok"
        monkeypatch.undo()
        assert refused == [1]
        # turn 1: both commits here; turn 2: its progress commit here, its final commit
        # refused here, then written by the store's thread once it had the file back
        assert where == ["caller", "caller", "caller", "caller", "store"], where
        assert store.opens == opens + 1
        await store.close()

    asyncio.run(body())
    turns, users = _stored(path)
    assert turns == [("committed", 3)]
    assert [sum(w in u for (u,) in users) for w in ("warm", "cell 0", "cell 1")] == [1, 1, 1]


HOLDER = textwrap.dedent("""
    import asyncio, sys, threading
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb._store.duckdb import commit as commits
    from lash_nb.stores import DuckDBStore

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    where = []
    real = commits.commit

    def spy(con, hold, c, in_txn):
        where.append(threading.current_thread() is threading.main_thread())
        return real(con, hold, c, in_txn)

    commits.commit = spy

    async def main(path):
        store = DuckDBStore(path, idle_release_s=None, lock_timeout_s=120)
        held = await store.try_acquire_lease("busy", lease_owner_id("busy"))
        n = 0
        while not stop.is_set():  # back to back, never idle
            await store.commit(RuntimeCommit("busy", held))
            n += 1
            if n == 20:
                print("holding", sum(where), flush=True)
        await store.close()
        print("commits", n, "handovers", store._worker.handovers, flush=True)

    asyncio.run(main(sys.argv[1]))
""")

WAITER = textwrap.dedent("""
    import asyncio, sys
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb.stores import DuckDBStore

    async def main(path):
        store = DuckDBStore(path, lock_timeout_s=120)
        busy = await store.load_session("busy")
        held = await store.try_acquire_lease("waiter", lease_owner_id("waiter"))
        await store.commit(RuntimeCommit("waiter", held, release_lease=True))
        await store.close()
        print(busy.meta.head_revision, flush=True)

    asyncio.run(main(sys.argv[1]))
""")


def test_a_process_waiting_gets_the_file_from_a_holder_committing_on_its_callers_thread(
        tmp_path: Path) -> None:
    """Fails on the code before ADR 131 at the first assertion: the holder's commits ran on
    its store's thread."""
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], env=_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs = [holder]
    try:
        assert holder.stdout is not None
        ready = holder.stdout.readline().split()
        # its commits run on its caller's thread (each of the 20 on an idle machine; one
        # that finds the store's thread busy for 10 ms goes to it)
        assert ready[0] == "holding" and int(ready[1]) >= 1, ready
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, str(path)], env=_env(),
                                  stdout=subprocess.PIPE, text=True)
        procs.append(waiter)
        waiter_out, _ = waiter.communicate(timeout=180)
        assert waiter.returncode == 0
        holder_out, _ = holder.communicate(timeout=120)  # closes its stdin: it stops
        assert holder.returncode == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    seen = int(waiter_out.split()[-1])
    words = holder_out.split()
    total, handovers = int(words[1]), int(words[3])
    assert handovers >= 1
    assert 20 <= seen < total  # the waiter got in between the holder's commits
    con = duckdb.connect(str(path), read_only=True)
    try:
        heads = dict(con.execute("SELECT session_id, head_revision FROM sessions").fetchall())
    finally:
        con.close()
    assert heads == {"busy": total, "waiter": 1}  # every commit of both, once


KILLED = textwrap.dedent("""
    import asyncio, os, signal, sys, threading
    from lash_nb import LashCore
    from lash_nb.providers import FunctionProvider
    from lash_nb._store.duckdb import commit as commits

    inner = commits._apply

    def apply(con, hold, c, *, direct):
        out = inner(con, hold, c, direct=direct)
        # the 3rd turn's final commit is in commit_log; the hold does not know it yet
        if c.turn is not None and c.turn_index == 3 and threading.current_thread() is threading.main_thread():
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    commits._apply = apply

    async def main():
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \\
            .store(sys.argv[1]).build()
        s = await core.session("s").open()
        for i in range(5):
            await s.turn(f"cell {i}").run()

    asyncio.run(main())
""")


def test_a_process_killed_inside_a_commit_on_its_callers_thread_reopens_whole(
        tmp_path: Path) -> None:
    """Fails on the code before ADR 131: the commit ran on the store's thread, so the
    process was not killed there and ran all five turns."""
    path = tmp_path / "nb.duckdb"
    victim = subprocess.run([sys.executable, "-c", KILLED, str(path)], env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-2000:]
    turns, users = _stored(path)
    assert turns == [("committed", 3)]  # the third was durable at its INSERT
    assert len(users) == 3
    assert [sum(w in u for (u,) in users) for w in ("cell 0", "cell 1", "cell 2")] == [1, 1, 1]

    async def again() -> None:  # the session goes on from there
        core = LashCore.builder().provider(FunctionProvider(lambda r: "ok")).model("m") \
            .store(str(path)).build()
        s = await core.session("s").open()
        out = await s.turn("cell 3 again").run()
        assert out.result.assistant_message() == "ok"
        await core.store.close()

    asyncio.run(again())
    turns, _ = _stored(path)
    assert turns == [("committed", 4)]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals reach the main thread only")
def test_ctrl_c_during_a_commit_on_the_callers_thread_arrives_after_it_is_recorded(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Passes on the code before ADR 131 (the commit ran on the store's thread, which no
    signal reaches); fails with ADR 131 without its hold on SIGINT: the KeyboardInterrupt
    left the commit's row in commit_log unknown to the store, and the next commit of the
    session was refused on its revision."""
    path = tmp_path / "nb.duckdb"
    store = DuckDBStore(path, fold_idle_s=None)
    inner = commits._apply
    interrupted: list[int] = []

    def apply(con: Any, hold: Any, c: RuntimeCommit, *, direct: bool) -> Any:
        out = inner(con, hold, c, direct=direct)
        if not interrupted:
            interrupted.append(1)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, right after the INSERT
        return out

    loop = asyncio.new_event_loop()  # a plain loop: SIGINT raises KeyboardInterrupt, as in IPython
    try:
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        held = loop.run_until_complete(store.try_acquire_lease("s", lease_owner_id("me")))
        monkeypatch.setattr(commits, "_apply", apply)
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(store.commit(RuntimeCommit("s", held)))
        monkeypatch.undo()
        assert interrupted == [1]
        assert store.unfolded_commits == 1  # the store knows the row is in the log
        got = loop.run_until_complete(store.commit(RuntimeCommit("s", held)))
        assert got.head_revision == 2
        loaded = loop.run_until_complete(store.load_session("s"))  # folds both
        assert loaded is not None and loaded.meta.head_revision == 2
    finally:
        loop.close()
        store.close_sync()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM commit_log").fetchone() == (0,)
        assert con.execute("SELECT head_revision FROM sessions").fetchall() == [(2,)]
    finally:
        con.close()


def test_the_size_bounds_fold_of_a_commit_run_here_runs_on_the_store_thread(
        tmp_path: Path, monkeypatch: Any) -> None:
    """Passes on the code before ADR 131 too (every commit, and so its fold, ran on the
    store's thread); fails with ADR 131 if a commit run here folded the log itself."""
    from lash_nb._store.duckdb import journal

    monkeypatch.setattr(journal, "FOLD_AFTER_DELTAS", 3)
    real = journal.fold
    folded_on: list[str] = []

    def spy(con: Any, hold: Any) -> None:
        if hold.pending:
            folded_on.append(threading.current_thread().name)
        real(con, hold)

    monkeypatch.setattr(journal, "fold", spy)
    store = DuckDBStore(tmp_path / "nb.duckdb", fold_idle_s=None)  # only the bound folds
    try:
        held = asyncio.run(store.try_acquire_lease("s", lease_owner_id("me")))
        for _ in range(3):
            asyncio.run(store.commit(RuntimeCommit("s", held)))
        store._worker.submit(lambda con: None).result(timeout=120)  # after the queued fold
        assert store.unfolded_commits == 0
        assert folded_on == [store._worker._thread.name]
    finally:
        store.close_sync()
