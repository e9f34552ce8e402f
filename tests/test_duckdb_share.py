"""Two (or three) real processes on one DuckDB file at human pace: a worker draining a queue
and a notebook, a process that just ran turns, and the order in which waiters get the file.

Every test waits on what the other process says (its log lines, its stdout), never on time.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore

pytestmark = pytest.mark.slow


class WorkerProcess:
    """``python -m lash_nb worker`` on the file; counts the turns it logs."""

    def __init__(self, path: Path, *, delay: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all",
             "--delay", str(delay), "--poll", "0.05"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    @property
    def turns(self) -> int:
        with self._cond:
            return sum(1 for ln in self.lines if " finished" in ln)

    def wait_turns(self, n: int, timeout: float = 120.0) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(
                1 for ln in self.lines if " finished" in ln) >= n, timeout)
        assert ok, f"the worker logged no {n} turns: {self.lines[-5:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=120) == 0, self.lines[-10:]


def fill_queue(path: Path, n: int) -> None:
    async def run() -> None:
        # the file stays open while it fills (idle_release_s=0 closed and reopened it after
        # each enqueue: 11 s of CPU for 300 batches, 1 s now); close() releases it
        store = DuckDBStore(path, idle_release_s=None)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("queue").open()
        for i in range(n):
            await s.enqueue(f"queued question {i}").send()
        await store.close()

    asyncio.run(run())


def stored_turns(path: Path) -> Any:
    store = DuckDBStore(path, idle_release_s=0)
    try:
        return store.query("SELECT session_id, turn_id, status, outcome, stop_reason, result "
                           "FROM turns ORDER BY started_at")
    finally:
        store.close_sync()


def test_a_notebook_opens_and_runs_turns_while_a_worker_drains(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    fill_queue(path, 300)
    worker = WorkerProcess(path, delay=0.01)
    answers: dict[str, str] = {}
    try:
        worker.wait_turns(2)
        _until("the worker named as the holder", lambda: _holder(path) == (worker.proc.pid, "worker"))

        async def notebook() -> None:
            store = DuckDBStore(path)  # the default lock_timeout_s: a user just opening it
            core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
            s = await core.session("nb").open()
            for k in range(3):
                out = await s.turn(f"notebook question {k}").run()
                assert out.result.outcome.kind == "finished"
                answers[out.result.turn_id] = out.result.assistant_output.safe_text
            await store.close()

        asyncio.run(notebook())
        still_draining = worker.turns < 300
    finally:
        worker.stop()
    assert still_draining  # the notebook really shared the file with a draining worker
    turns = stored_turns(path)
    mine = turns[turns["session_id"] == "nb"]
    assert sorted(mine["turn_id"]) == sorted(answers)
    assert set(mine["outcome"]) == {"finished"}
    for tid, text in answers.items():
        assert "notebook question" in text and text in mine[mine["turn_id"] == tid]["result"].iloc[0]
    assert set(turns["status"]) == {"committed"}
    assert "runtime_error" not in set(turns["stop_reason"].dropna())


def test_a_turn_that_finishes_while_the_worker_holds_the_file_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    fill_queue(path, 300)
    worker_running = threading.Event()
    holder: dict[str, WorkerProcess] = {}

    @tool
    async def wait_for_the_worker() -> str:
        """Returns once a worker drains the queue (the turn "streams" meanwhile)."""
        holder["w"] = WorkerProcess(path, delay=0.01)
        await asyncio.to_thread(holder["w"].wait_turns, 3)
        worker_running.set()
        return "the worker is draining"

    async def notebook() -> Any:
        store = DuckDBStore(path, idle_release_s=0.05)
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store)
                .tools(wait_for_the_worker).build())
        s = await core.session("nb").open()
        out = await s.turn("please call wait_for_the_worker").run()
        await store.close()
        return out

    try:
        out = asyncio.run(notebook())
        still_draining = holder["w"].turns < 300
    finally:
        if "w" in holder:
            holder["w"].stop()
    assert worker_running.is_set() and still_draining
    assert out.result.outcome.kind == "finished"
    answer = out.result.assistant_output.safe_text
    assert "the worker is draining" in answer
    turns = stored_turns(path)
    mine = turns[turns["session_id"] == "nb"]
    assert list(mine["status"]) == ["committed"] and list(mine["outcome"]) == ["finished"]
    assert answer in mine["result"].iloc[0]  # the answer is kept


RAN_TURNS = textwrap.dedent("""
    import asyncio, sys
    from lash_nb import LashCore
    from lash_nb.providers import OfflineProvider
    from lash_nb.stores import DuckDBStore

    async def main(path):
        # a notebook that keeps the file between its cells
        store = DuckDBStore(path, idle_release_s=None)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("first").open()
        for i in range(5):
            assert (await s.turn(f"first {i}").run()).result.outcome.kind == "finished"
        print("ran", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for i in range(5, 7):
            assert (await s.turn(f"first {i}").run()).result.outcome.kind == "finished"
        print("ran", flush=True)
        await store.close()

    asyncio.run(main(sys.argv[1]))
""")


def test_open_while_another_process_just_ran_turns_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    first = subprocess.Popen([sys.executable, "-c", RAN_TURNS, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert first.stdin is not None and first.stdout is not None
    try:
        assert first.stdout.readline().strip() == "ran"

        async def second() -> list[str]:
            store = DuckDBStore(path)
            core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
            s = await core.session("second").open()
            done = []
            for i in range(3):
                out = await s.turn(f"second {i}").run()
                assert out.result.outcome.kind == "finished"
                done.append(out.result.turn_id)
            first.stdin.write("go on\n")  # type: ignore[union-attr]
            first.stdin.flush()  # type: ignore[union-attr]
            # the first process now waits for the file this store holds: it is handed over
            assert await asyncio.to_thread(first.stdout.readline) == "ran\n"  # type: ignore[union-attr]
            await store.close()
            return done

        done = asyncio.run(second())
        first.stdin.close()
        assert first.wait(timeout=60) == 0
    finally:
        if first.poll() is None:
            first.kill()
    turns = stored_turns(path)
    assert sorted(turns[turns["session_id"] == "second"]["turn_id"]) == sorted(done)
    assert len(turns[turns["session_id"] == "first"]) == 7
    assert set(turns["outcome"]) == {"finished"}


BUSY = textwrap.dedent("""
    import asyncio, sys, threading
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb.stores import DuckDBStore

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    async def main(path):
        # waits as long as the waiters for the file back (a loaded machine once kept a waiter
        # past the default 10 s between its start and its commit)
        store = DuckDBStore(path, idle_release_s=None, lock_timeout_s=120)
        n = 0
        held = await store.try_acquire_lease("busy", lease_owner_id("busy"))
        while not stop.is_set():  # back to back, never idle
            await store.commit(RuntimeCommit("busy", held))
            n += 1
            if n == 1:
                print("holding", flush=True)
        await store.close()
        print("commits", n, flush=True)

    asyncio.run(main(sys.argv[1]))
""")

# a waiter that imports pandas while it has the file hands the file on meanwhile and waits
# for it again (ADRs 213, 216): here both have imported it before they ask, as a worker does,
# so their order is the order they asked in
WAITER = textwrap.dedent("""
    import asyncio, sys
    import pandas, pyarrow  # noqa: F401
    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb.stores import DuckDBStore

    async def main(path, name):
        store = DuckDBStore(path, lock_timeout_s=120)
        seq = store._worker.line.acquired_seq
        busy = await store.load_session("busy")
        held = await store.try_acquire_lease(name, lease_owner_id(name))
        await store.commit(RuntimeCommit(name, held, release_lease=True))
        await store.close()
        print(seq, busy.meta.head_revision, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


def _waiters(path: Path) -> list[int]:
    from lash_nb._store.duckdb.share import Line

    line = Line(str(path))
    try:
        return line.waiters()
    finally:
        line.close()


def _holder(path: Path) -> tuple[int, str] | None:
    from lash_nb._store.duckdb.share import Line

    line = Line(str(path))
    try:
        return line.holder()
    finally:
        line.close()


def _until(what: str, probe: Any) -> None:
    import time

    for _ in range(6000):  # a bound on polls, not a timing assertion
        if probe():
            return
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}")


def test_waiters_get_the_file_between_a_busy_holders_commits_in_arrival_order(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    busy = subprocess.Popen([sys.executable, "-c", BUSY, str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs = [busy]
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "holding"
        early = subprocess.Popen([sys.executable, "-c", WAITER, str(path), "early"],
                                 stdout=subprocess.PIPE, text=True)
        procs.append(early)
        _until("the early waiter in line", lambda: early.pid in _waiters(path)
               or early.poll() is not None)
        late = subprocess.Popen([sys.executable, "-c", WAITER, str(path), "late"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(late)
        early_out, _ = early.communicate(timeout=180)
        late_out, _ = late.communicate(timeout=180)
        assert early.returncode == 0 and late.returncode == 0
        busy_out, _ = busy.communicate(timeout=60)  # closes its stdin: it stops
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    early_seq, early_seen = map(int, early_out.split())
    late_seq, late_seen = map(int, late_out.split())
    total = int(busy_out.split()[-1])
    assert early_seq < late_seq  # arrival order
    assert 0 < early_seen <= late_seen < total  # both got in between the holder's commits


STUCK = textwrap.dedent("""
    import asyncio, sys, threading
    from lash_nb.stores import DuckDBStore

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    async def main(path):
        store = DuckDBStore(path, lock_timeout_s=120)
        # one long job (a slow query, say): no hand-over is possible inside it
        job = store._worker.submit(lambda con: (print("holding", flush=True), stop.wait()))
        await asyncio.wrap_future(job)
        await store.close()

    asyncio.run(main(sys.argv[1]))
""")


def test_a_turn_waiting_for_the_file_shows_store_wait_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    child: dict[str, subprocess.Popen[str]] = {}

    @tool
    async def hold_elsewhere() -> str:
        """Starts another process that takes the file and keeps it in one long job."""
        p = child["p"] = subprocess.Popen([sys.executable, "-c", STUCK, str(path)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert await asyncio.to_thread(p.stdout.readline) == "holding\n"  # type: ignore[union-attr]
        return "held"

    async def notebook() -> tuple[list[Any], Any]:
        store = DuckDBStore(path, idle_release_s=0.05)
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store)
                .tools(hold_elsewhere).build())
        s = await core.session("nb").open()
        stream = s.turn("please call hold_elsewhere").stream()
        waits = []
        async for activity in stream:
            if activity.type == "store_wait":
                waits.append(activity)
                if not activity.event.done and child["p"].stdin and not child["p"].stdin.closed:
                    child["p"].stdin.close()  # seen waiting: let the holder finish its job
        result = await stream.finish()
        await store.close()
        return waits, result

    try:
        waits, result = asyncio.run(notebook())
        assert child["p"].wait(timeout=60) == 0
    finally:
        if "p" in child and child["p"].poll() is None:
            child["p"].kill()
    pid = child["p"].pid
    assert result.outcome.kind == "finished"
    first, last = waits[0].event, waits[-1].event
    assert (first.reason, first.holder_pid, first.holder, first.done) == (
        "locked", pid, f"process pid {pid}", False)
    assert last.done and last.waited_s >= first.waited_s
    assert {w.correlation_id for w in waits} == {waits[0].correlation_id}  # one row to update
    turns = stored_turns(path)
    assert list(turns["outcome"]) == ["finished"]
    assert "held" in turns["result"].iloc[0]


FOREIGN = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])  # the DuckDB CLI, DBeaver, a script: not lash_nb
    print("holding", flush=True)
    sys.stdin.read()
    con.close()
""")


def test_a_foreign_holder_is_named_in_the_error_and_the_log(tmp_path: Path, caplog: Any) -> None:
    from lash_nb._errors import StoreLockedError

    path = tmp_path / "lash.duckdb"
    DuckDBStore(path).close_sync()
    p = subprocess.Popen([sys.executable, "-c", FOREIGN, str(path)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline() == "holding\n"
        # the wait is announced once it passes NOTIFY_AFTER_S (0.25 s), a warning comes at 2 s;
        # a bound of 0.5 s let a loaded machine's slow connect attempts jump past both in one
        # step (no INFO record): 1.5 s leaves room on both sides
        with caplog.at_level("INFO", logger="lash_nb.store"), pytest.raises(StoreLockedError) as e:
            DuckDBStore(path, lock_timeout_s=1.5)
    finally:
        p.communicate(timeout=30)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert f"held by process {p.pid} (not a lash_nb store" in msg
    logged = [r for r in caplog.records if r.name == "lash_nb.store"]
    assert [r.levelname for r in logged] == ["INFO", "ERROR"]
    assert all(str(p.pid) in r.getMessage() for r in logged)
    store = DuckDBStore(path)  # the holder has gone: nothing was changed or lost
    store.close_sync()


def test_a_commit_refused_on_the_wal_lock_waits_for_the_file_and_commits(
        tmp_path: Path, monkeypatch: Any) -> None:
    """DuckDB can refuse a COMMIT with "Could not set lock on file ...wal" when another
    process got the file in the moment this one let it go; the commit is run again once the
    file is back, instead of surfacing a raw TransactionException and losing the turn."""
    import duckdb

    from lash_nb._store.base import RuntimeCommit, lease_owner_id
    from lash_nb._store.duckdb import commit as commits

    path = tmp_path / "lash.duckdb"
    store = DuckDBStore(path, idle_release_s=None)
    try:
        held = asyncio.run(store.try_acquire_lease("s1", lease_owner_id("t")))
        asyncio.run(store.commit(RuntimeCommit("s1", held)))
        opens = store.opens
        real = commits.commit
        refusals = []

        def refuse_once(*args: Any, **kw: Any) -> Any:
            if not refusals:
                refusals.append(1)
                raise duckdb.TransactionException(
                    'TransactionContext Error: Failed to commit: Could not set lock on file '
                    f'"{path}.wal": Conflicting lock is held in /usr/bin/python3 (PID 1)')
            return real(*args, **kw)

        monkeypatch.setattr(commits, "commit", refuse_once)
        got = asyncio.run(store.commit(RuntimeCommit("s1", held)))
        assert refusals == [1] and got.head_revision == 2
        assert store.opens == opens + 1  # it let the file go and took it again
        meta = asyncio.run(store.load_session("s1"))
        assert meta is not None and meta.meta.head_revision == 2
    finally:
        store.close_sync()
