"""The store file under a user's hands while a kernel has it open: copied to share it, made
read-only, on a full disk, at an odd path. Each case as a user meets it, in a real kernel
where the behaviour depends on the process holding the file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from notebook_harness import KernelHarness, wait_until
from test_duckdb_bad_files import _mounted

from lash_nb import LashCore, tool
from lash_nb._errors import StoreError
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]


def _questions_in(path: Path, sid: str) -> list[str]:
    """The user prompts of session ``sid`` in the store at ``path``, opened as a colleague
    opens a file they were sent (a fresh process's view: nothing of the kernel's)."""
    async def body() -> list[str]:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0))
                .store(DuckDBStore(path, idle_release_s=0)).build())
        try:
            s = await core.session(sid).open()
            return [m.text() for m in s.read_view().messages() if m.role == "user" and m.text()]
        finally:
            await core.close()

    return asyncio.run(body())


def _answers_in(path: Path) -> list[str]:
    store = DuckDBStore(path, read_only=True)
    try:
        return [str(r) for r in store.query("SELECT result FROM turns ORDER BY started_at")["result"]]
    finally:
        store.close_sync()


def _copy_holds(src: Path, dest: Path, n: int) -> bool:
    """Copy ``src`` alone (as ``cp team.duckdb`` does: not the .wal) and look at the copy."""
    for extra in dest.parent.glob(dest.name + "*"):
        extra.unlink()
    shutil.copyfile(src, dest)
    try:
        return len(_questions_in(dest, "team")) == n
    except Exception:  # a copy with no lash store in it yet
        return False


def test_a_copy_of_the_file_taken_while_the_kernel_rests_holds_every_turn(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open team --store team.duckdb")
        for i in range(3):
            k.run(f"%%lash\nquestion number {i}")
        # the kernel keeps the store open; the user copies the file to share it (a while
        # after the last cell, as a person does): the copy must hold the three turns
        wait_until("a copy of team.duckdb holding the three turns",
                   lambda: _copy_holds(tmp_path / "team.duckdb", shared / "team.duckdb", 3),
                   timeout=60)
        k.run("%%lash\nquestion number 3")  # the kernel goes on working after the copy
    assert _questions_in(shared / "team.duckdb", "team") == [f"question number {i}" for i in range(3)]
    assert _questions_in(tmp_path / "team.duckdb", "team") == [
        f"question number {i}" for i in range(4)]


FILL_TOOL = '''
import contextlib
from lash_nb import tool

@tool
def fill_the_disk() -> str:
    """Fills the disk the store is on (as a big download in another tab would)."""
    with open({filler!r}, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\\0" * 65536)
            f.flush()
    return "the disk is full now"
'''


def _fill(filler: Path) -> None:
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def _rows(k: KernelHarness, ex: Any) -> list[str]:
    return [b.get("text", "") for mid in ex.widget_ids()
            for b in k.state(mid).get("blocks", []) if b.get("cid") == "~store_wait"]


def test_a_turn_that_meets_a_full_disk_says_it_is_not_saved_until_space_returns(
        tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    filler = small / "filler"
    with _mounted("tmpfs", small):
        with KernelHarness(cwd=str(tmp_path)) as k:
            _full_disk_session(k, filler)
        # a fresh process finds every turn the notebook showed as saved
        questions = _questions_in(small / "nb.duckdb", "nb")
        answers = _answers_in(small / "nb.duckdb")
    assert questions == ["a first question", "please call fill_the_disk",
                         "a question after freeing space"]
    assert any("the disk is full now" in a for a in answers)  # the answer was kept


def _full_disk_session(k: KernelHarness, filler: Path) -> None:
    k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
    k.run(FILL_TOOL.format(filler=str(filler)))
    k.run("%lash open nb --store small/nb.duckdb --tools fill_the_disk")
    k.run("%%lash\na first question")
    # the first commit fits; the tool fills the disk; the finished turn cannot be saved
    ex = k.submit("%%lash\nplease call fill_the_disk")
    k.pump_until(lambda: any("not saved yet" in r for r in _rows(k, ex)), timeout=60)
    row = _rows(k, ex)[0]
    assert "the disk holding the store is full" in row and "free space there" in row
    assert ex.reply is None  # the cell waits for space: nothing was thrown away
    filler.unlink()  # the user frees space
    k.wait(ex, timeout=60)
    assert ex.status == "ok"
    assert _rows(k, ex)[0].startswith("saved once disk space returned")
    assert "held by another process" not in ex.stderr  # it was the disk, not a process
    # full again: a new turn is refused at once, in one line, and nothing is lost
    _fill(filler)
    refused = k.execute("%%lash\na question with no room " + "z" * 200_000,
                        stop_on_error=False)
    assert refused.status == "error"
    line = refused.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert "is full" in line and "free space" in line
    filler.unlink()
    k.run("%%lash\na question after freeing space")  # the session goes on


def test_a_turn_whose_commit_gave_up_on_a_full_disk_leaves_no_unsaved_answer_in_view(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``commit_wait_s`` passed with the disk still full: the turn raises; the session's view
    must then hold what the store holds, not the answer that was never written."""
    small = tmp_path / "small"
    small.mkdir()
    filler = small / "filler"

    @tool
    def fill_the_disk() -> str:
        """Fills the disk the store is on."""
        _fill(filler)
        return "the disk is full now"

    async def notebook() -> tuple[str, list[str], list[str]]:
        store = DuckDBStore(small / "nb.duckdb", commit_wait_s=3)
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store)
                .tools(fill_the_disk).build())
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        with pytest.raises(StoreError) as e:
            await s.turn("please call fill_the_disk").run()
        seen = [m.text() for m in s.read_view().messages()]
        filler.unlink()
        await s.turn("a question after freeing space").run()
        after = [m.text() for m in s.read_view().messages()]
        await core.close()
        return str(e.value), seen, after

    caplog.set_level("INFO", logger="lash_nb")
    with _mounted("tmpfs", small):
        error, seen, after = asyncio.run(notebook())
        stored = _questions_in(small / "nb.duckdb", "nb")
        answers = _answers_in(small / "nb.duckdb")
    assert "is full" in error and "was not written" in error and "\n" not in error
    still = [r.getMessage() for r in caplog.records if "still waiting" in r.getMessage()]
    assert still and all("disk space" in m and "held by" not in m for m in still), still
    assert not any("the disk is full now" in t for t in seen)  # never stored: never shown
    assert not any("the disk is full now" in t for t in after)
    assert not any("the disk is full now" in a for a in answers)
    assert stored == ["a first question", "please call fill_the_disk",
                      "a question after freeing space"]
    assert [t for t in after if t in stored] == stored


def _queue_three(path: Path) -> None:
    async def body() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(DuckDBStore(path)).build()
        s = await core.session("w").open()
        await s.turn("hello").run()
        for i in range(3):
            await s.enqueue(f"queued question {i} " + "q" * 200_000).send()
        await core.close()

    asyncio.run(body())


def _worker(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all",
         "--exit-when-idle", "5"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_a_worker_on_a_full_disk_stops_with_status_75_and_leaves_the_queue_whole(
        tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    path = small / "w.duckdb"
    with _mounted("tmpfs", small):
        _queue_three(path)
        _fill(small / "filler")
        full = _worker(path)
        store = DuckDBStore(path, read_only=True)  # reading works on the full disk
        try:
            attempts = list(store.query(
                "SELECT attempts FROM queued_work_batches ORDER BY enqueue_seq")["attempts"])
        finally:
            store.close_sync()
        (small / "filler").unlink()
        again = _worker(path)  # space freed: the next worker answers all three, once each
        store = DuckDBStore(path, read_only=True)
        try:
            turns = store.query("SELECT outcome FROM turns ORDER BY started_at")
        finally:
            store.close_sync()
        questions = _questions_in(path, "w")
    # exit status 75 (EX_TEMPFAIL: start it again), not 0 ("done") with the work undone
    assert full.returncode == 75, full.stderr
    said = [line for line in full.stderr.splitlines() if "is full" in line]
    assert said and len(said) <= 2, full.stderr  # said, not repeated every poll
    assert "free space there" in said[-1] and "start the worker again" in said[-1]
    assert "the queued work stays in the queue" in said[-1]
    assert "Traceback" not in full.stderr
    assert attempts == [0, 0, 0]  # nothing claimed, nothing spent
    assert again.returncode == 0, again.stderr
    assert list(turns["outcome"]) == ["finished"] * 4
    assert [q[:17] for q in questions] == ["hello", "queued question 0", "queued question 1",
                                          "queued question 2"]


def test_a_store_made_read_only_under_the_kernel_refuses_a_turn_in_one_line_and_still_reads(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open team --store shared/team.duckdb")
        k.run("%%lash\nquestion number 0")
        k.run("%%lash\nquestion number 1")
        # the user reads the answer; the store rests (its .wal written into the file) ...
        wait_until("the store at rest", lambda: not (shared / "team.duckdb.wal").exists(),
                   timeout=60)
        with _mounted("ro", shared):  # ... and an admin makes the folder read-only
            refused = k.execute("%%lash\nquestion number 2", stop_on_error=False)
            read = k.execute("%%lash sql\nSELECT count(*) AS stored_turns FROM turns",
                             stop_on_error=False)
        k.run("%%lash\nquestion number 3")  # writable again: the session goes on
    assert refused.status == "error"
    shown = refused.error + refused.stderr
    assert "Traceback" not in shown and "TransactionException" not in shown, shown
    assert "became read-only" in shown and "nothing of this was written" in shown, shown
    assert "make it writable again" in shown
    assert read.status == "ok", read.stderr
    assert "stored_turns" in str(read.data("text/html") or read.data("text/plain"))
    assert _questions_in(shared / "team.duckdb", "team") == [
        "question number 0", "question number 1", "question number 3"]


def test_a_store_moved_under_the_kernel_refuses_the_next_turn_and_keeps_the_earlier_ones(
        tmp_path: Path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open team --store team.duckdb")
        k.run("%%lash\nquestion number 0")
        wait_until("the store at rest", lambda: not (tmp_path / "team.duckdb.wal").exists(),
                   timeout=60)
        (tmp_path / "team.duckdb").rename(tmp_path / "moved.duckdb")  # tidying the folder
        refused = k.execute("%%lash\nquestion number 1", stop_on_error=False)
        (tmp_path / "moved.duckdb").rename(tmp_path / "kept.duckdb")
        k.execute("%lash open other --store other.duckdb")  # a second store: then delete it
        k.run("%%lash\na question in the other store")
        wait_until("the other store at rest",
                   lambda: not (tmp_path / "other.duckdb.wal").exists(), timeout=60)
        (tmp_path / "other.duckdb").unlink()
        gone = k.execute("%%lash\nanother question in the other store", stop_on_error=False)
    for ex, name, path in ((refused, "team", "team.duckdb"), (gone, "other", "other.duckdb")):
        assert ex.status == "error"
        shown = ex.error + ex.stderr
        assert "Traceback" not in shown, shown
        # refused before the turn ran, with the line that opens the file there now (ADR 233)
        assert "was deleted, moved away or replaced since this kernel opened it" in shown, shown
        assert "nothing was read or run" in shown
        assert f"%lash open {name} --store {path} opens the file there now" in shown
    # before: the turn was answered, written into the renamed file's inode and a .wal left
    # under the old name; after the deletion every later turn went to a file nobody can open
    assert _questions_in(tmp_path / "kept.duckdb", "team") == ["question number 0"]
    assert not (tmp_path / "other.duckdb").exists()


BACKUP_CELL = '''
import os, subprocess, sys
done = subprocess.run([sys.executable, "-m", "lash_nb", "backup", "team.duckdb",
                       "shared/team.duckdb"], capture_output=True, text=True,
                      env={{**os.environ, "PYTHONPATH": {root!r}}})
print(done.returncode, done.stdout, done.stderr)
'''


def test_python_m_lash_nb_backup_copies_a_store_the_kernel_is_using_whole(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open team --store team.duckdb")
        for i in range(3):
            k.run(f"%%lash\nquestion number {i}")
        # right after the turns, from the notebook itself (the kernel keeps the file)
        out = k.run(BACKUP_CELL.format(root=str(ROOT))).stdout
        again = k.run(BACKUP_CELL.format(root=str(ROOT))).stdout  # the copy is not replaced
        k.run("%%lash\nquestion number 3")  # the kernel goes on with its store
    assert out.startswith("0 team.duckdb copied whole to shared/team.duckdb"), out
    assert again.startswith("2 ") and "shared/team.duckdb exists" in again, again
    assert "--overwrite" in again
    assert not list((tmp_path / "shared").glob("*.wal"))  # the copy is one file
    assert _questions_in(tmp_path / "shared" / "team.duckdb", "team") == [
        f"question number {i}" for i in range(3)]
    assert _questions_in(tmp_path / "team.duckdb", "team") == [
        f"question number {i}" for i in range(4)]


def test_a_backup_taken_while_a_worker_drains_opens_with_whole_turns(tmp_path: Path) -> None:
    path = tmp_path / "team.duckdb"

    async def queue() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(DuckDBStore(path)).build()
        s = await core.session("w").open()
        for i in range(30):
            await s.enqueue(f"queued question {i}").send()
        await core.close()

    asyncio.run(queue())
    worker = subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all",
         "--delay", "0.01", "--exit-when-idle", "2"],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    copies = []
    try:
        for n in range(3):  # while it drains
            dest = tmp_path / f"copy{n}.duckdb"
            done = subprocess.run([sys.executable, "-m", "lash_nb", "backup", str(path), str(dest)],
                                  capture_output=True, text=True, timeout=120,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
            assert done.returncode == 0, done.stderr
            copies.append(dest)
    finally:
        worker.communicate(timeout=300)
    for dest in copies:
        store = DuckDBStore(dest, read_only=True)  # opens without a .wal: nothing to replay
        try:
            turns = store.query("SELECT outcome, result FROM turns WHERE outcome IS NOT NULL "
                                "ORDER BY started_at")
            pending = store.query("SELECT count(*) AS n FROM queued_work_batches")["n"].iloc[0]
        finally:
            store.close_sync()
        # every answered batch is a finished turn in the copy, the rest still queued: the
        # copy is one moment of the store, not a mix of two
        assert set(turns["outcome"]) <= {"finished"}
        assert len(turns) + pending == 30, (len(turns), pending)


def test_a_backup_to_the_store_itself_or_a_missing_folder_is_one_line_and_writes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "team.duckdb"
    store = DuckDBStore(path)
    try:
        for dest, said in [(path, "is the store itself"),
                           (tmp_path / "nope" / "team.duckdb", "does not exist; create it"),
                           (tmp_path, "is a folder; pass a file path such as")]:
            with pytest.raises(StoreError) as e:
                asyncio.run(store.backup(dest))
            assert said in str(e.value) and "\n" not in str(e.value)
    finally:
        store.close_sync()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team.duckdb", "team.duckdb.lash-share"]


def test_a_store_path_with_spaces_and_unicode_works_and_a_missing_folder_is_one_line(
        tmp_path: Path) -> None:
    """Regression cover (this passed before): a folder a person named, and a typo'd folder."""
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        missing = k.execute('%lash open a --store "my notes/équipe données 📊.duckdb"',
                            stop_on_error=False)
        (tmp_path / "my notes").mkdir()
        k.run('%lash open a --store "my notes/équipe données 📊.duckdb"')
        k.run("%%lash\nune question, s'il vous plaît")
    assert missing.status == "error"
    line = (missing.error + missing.stderr).strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert f"folder {tmp_path / 'my notes'} does not exist; create it" in line
    assert _questions_in(tmp_path / "my notes" / "équipe données 📊.duckdb", "a") == [
        "une question, s'il vous plaît"]
