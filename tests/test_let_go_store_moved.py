"""A store this process let go (a hand-over to another process, an idle release) whose
file the user then moves or deletes (``mv agent.duckdb backup/`` in a terminal while the
notebook is open): the next call must not create a new, empty file at the old path and go
on as if the session were new. It refuses in one line, before the model is called, and
writes nothing there; a turn whose model was answering when it happened waits for the file
like any finished turn (docs/adr/0181, 0185)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from notebook_harness import KernelHarness, wait_until
from test_duckdb_store_under_hands import _questions_in

from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]


def _colleague_reads(path: Path) -> None:
    """Another process opens the file (the kernel hands it over between its calls)."""
    subprocess.run(
        [sys.executable, "-c", ("import sys; from lash_nb.stores import DuckDBStore; "
                                "s = DuckDBStore(sys.argv[1], lock_timeout_s=60); "
                                "s.query('SELECT count(*) FROM turns'); s.close_sync()"),
         str(path)],
        check=True, cwd=ROOT, timeout=120)


def _error_lines(ex: Any) -> list[str]:
    return [line for m in ex.outputs if m["msg_type"] == "error"
            for line in m["content"]["traceback"]]


def test_a_turn_after_the_let_go_file_was_moved_refuses_in_one_line_and_writes_nothing_there(
        tmp_path: Path) -> None:
    path = tmp_path / "agent.duckdb"
    backup = tmp_path / "backup"
    backup.mkdir()
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open agent --store agent.duckdb")
        k.run("%%lash\na first question")
        _colleague_reads(path)  # the kernel let the file go for it
        path.rename(backup / "agent.duckdb")  # the user tidies the folder in a terminal
        ex = k.execute("%%lash\na second question", stop_on_error=False)
        created = path.exists()
        (backup / "agent.duckdb").rename(path)  # puts it back, runs the cell again
        again = k.execute("%%lash\na second question")
        k.run("%lash open agent --store agent.duckdb")  # as a colleague reopens it
    assert not created  # nothing at the old path: no new, empty store there
    assert ex.status == "error"
    assert "Traceback" not in ex.stderr and not _error_lines(ex), ex.stderr
    shown = [line for line in ex.stderr.splitlines() if line.strip()]
    assert len(shown) == 1 and shown[0].startswith("UsageError"), shown  # one line
    assert "moved away" in shown[0] and "put it back" in shown[0], shown
    assert again.status == "ok", again.error + again.stderr
    # the history was there for the turn that ran: the store holds both questions in
    # one session, the second once (the refused one stored nothing)
    assert _questions_in(path, "agent") == ["a first question", "a second question"]


def test_a_turn_whose_let_go_file_is_moved_while_the_model_answers_waits_and_is_saved_once_back(
        tmp_path: Path) -> None:
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    store = DuckDBStore(path)

    async def model(request: Any) -> str:
        if "slow" in request.messages[-1].text():
            await store.release_file()  # a hand-over to a worker does this
            path.rename(moved)
        return "an answer that cost money"

    async def notebook() -> tuple[Any, list[str], bool]:
        core = LashCore.builder().provider(FunctionProvider(model)).store(store).build()
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        waits: list[Any] = []
        task = asyncio.ensure_future(s.turn("a slow question").stream().follow(waits.append))
        while not any(getattr(a.event, "reason", None) == "moved" for a in waits):
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        created = path.exists()
        moved.rename(path)  # the user puts it back
        result = await task
        seen = [m.text() for m in s.read_view().messages()]
        await core.close()
        return result, seen, created

    result, seen, created = asyncio.run(notebook())
    assert not created
    assert result.text == "an answer that cost money" and result.head_revision is not None
    assert seen.count("an answer that cost money") == 2
    assert _questions_in(path, "nb") == ["a first question", "a slow question"]


def test_a_turn_whose_let_go_file_was_deleted_refuses_and_creates_no_store(tmp_path: Path) -> None:
    path = tmp_path / "nb.duckdb"
    store = DuckDBStore(path)

    async def notebook() -> str:
        core = LashCore.builder().provider(FunctionProvider(lambda r: "an answer")).store(store).build()
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        await store.release_file()
        path.unlink()
        try:
            await s.turn("a second question").run()
        except Exception as e:  # the test reads its message
            return f"{type(e).__name__}: {e}"
        finally:
            await core.close()
        return "no error"

    said = asyncio.run(notebook())
    assert not path.exists()
    assert "moved or deleted" in said and "\n" not in said, said


def test_a_worker_whose_let_go_file_was_moved_stops_in_one_line_and_creates_no_store(
        tmp_path: Path) -> None:
    """A worker lets the file go when idle; the user moves the file away meanwhile. Before,
    the worker's next poll created a new, empty store at the path and polled it until idle
    (the work queued in the moved file never ran, and nobody was told).

    No ``--exit-when-idle``: the worker must stop because of the move, however long the
    colleague's read and the move take (with ``--exit-when-idle 20`` a loaded run saw the
    worker exit 0 before the move: ADR 0213); a worker that never notices runs into the
    ``wait`` timeout below."""
    from test_unsaved_final_commit import _queue

    path = tmp_path / "w.duckdb"
    _queue(path, "a first question")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all"],
        stderr=log.open("wb"), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        wait_until("the worker's first turn", lambda: "finished" in log.read_text(), timeout=120)
        _colleague_reads(path)  # the worker has let the file go after this
        path.rename(tmp_path / "moved.duckdb")
        code = worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    said = log.read_text()
    assert not path.exists()
    assert code == 75, said  # EX_TEMPFAIL: start it again once the file is back
    stopped = [line for line in said.splitlines() if line.startswith("worker stopped:")]
    assert len(stopped) == 1 and "moved or deleted" in stopped[0], said
    assert "Traceback" not in said, said


HOLDER = ("import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
          "sys.stdin.read(); con.close()")


def test_a_file_moved_while_the_reopen_waits_for_another_process_is_not_recreated(
        tmp_path: Path) -> None:
    """The move lands while this process waits in line for the file (another process holds
    it): the check before the wait saw the file, so each attempt checks again (a full run
    under load met this: a new, empty store at the path, and the next commit read the
    session as deleted)."""
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    store = DuckDBStore(path, lock_timeout_s=120)

    async def notebook() -> str:
        core = LashCore.builder().provider(FunctionProvider(lambda r: "an answer")).store(store).build()
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        await store.release_file()
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=ROOT,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        waits: list[Any] = []
        turn = asyncio.ensure_future(s.turn("a second question").stream().follow(waits.append))
        try:
            while not any(getattr(a.event, "type", "") == "store_wait" for a in waits):
                assert not turn.done(), turn.result()
                await asyncio.sleep(0.02)
            path.rename(moved)  # the user's mv, while this process waits for the holder
            assert holder.stdin is not None
            holder.stdin.close()  # the holder lets the file go
            holder.wait(timeout=60)
            try:
                await turn
            except Exception as e:  # the test reads its message
                return f"{type(e).__name__}: {e}"
            return "no error"
        finally:
            holder.kill()
            await core.close()

    said = asyncio.run(notebook())
    assert not path.exists()  # no new, empty store at the old path
    assert "moved or deleted" in said and "\n" not in said, said
    assert _questions_in(moved, "nb") == ["a first question"]


def test_a_file_moved_while_duckdb_opens_the_path_leaves_no_new_store_there(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The move lands between the last check and DuckDB's open of the path (a loaded full
    run met this: DuckDB created a new file, the store gave it a schema and a fresh lease,
    and the finished turn read its session as deleted). The test moves the file at the
    instant the store calls ``duckdb.connect``."""
    import duckdb

    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    store = DuckDBStore(path)
    real_connect = duckdb.connect
    armed: list[bool] = []

    def connect(database: Any = ":memory:", *args: Any, **kwargs: Any) -> Any:
        if armed and str(database) == str(path):
            armed.clear()
            path.rename(moved)  # the user's mv, as DuckDB opens the path
        return real_connect(database, *args, **kwargs)

    async def notebook() -> tuple[str, list[Any]]:
        core = LashCore.builder().provider(FunctionProvider(lambda r: "an answer")).store(store).build()
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        await store.release_file()
        monkeypatch.setattr(duckdb, "connect", connect)
        armed.append(True)
        try:
            await s.turn("a second question").run()
            said = "no error"
        except Exception as e:  # the test reads its message
            said = f"{type(e).__name__}: {e}"
        left = sorted(p.name for p in tmp_path.iterdir())
        moved.rename(path)  # put back: the session goes on
        await s.turn("a third question").run()
        await core.close()
        return said, left

    said, left = asyncio.run(notebook())
    assert "moved or deleted" in said and "\n" not in said, said
    assert "nb.duckdb" not in left and not any("lash-fresh" in n for n in left), left
    assert _questions_in(path, "nb") == ["a first question", "a third question"]
