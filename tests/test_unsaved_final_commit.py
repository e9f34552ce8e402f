"""A finished turn whose final commit the store refuses (a read-only folder, the file moved
away, a full disk) must not lose the answer: it waits for the store, is saved once the user
fixes it, and when the wait ends (Stop, the kernel's interrupt, ``commit_wait_s``) the answer
stays readable, marked NOT saved, with the store as it was (docs/adr/0181). Real kernels and
worker processes where the behaviour depends on the process holding the file; a read-only
bind mount and a small tmpfs (root only, else skipped) as in
``test_duckdb_store_under_hands.py``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notebook_harness import KernelHarness, kernel_serves_widgets_mid_cell, wait_until
from test_duckdb_bad_files import _mounted
from test_duckdb_store_under_hands import FILL_TOOL, _answers_in, _questions_in, _rows

from lash_nb import LashCore, tool
from lash_nb.errors import TurnNotSaved
from lash_nb.providers import FunctionProvider, OfflineProvider
from lash_nb.stores import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]


def _can_mount() -> None:
    if os.geteuid() != 0 or subprocess.run(["which", "mount"], capture_output=True).returncode:
        pytest.skip("needs root to mount a read-only folder")


def _make_read_only(folder: Path) -> None:
    """What an admin's remount does (a read-only bind mount over the folder)."""
    for cmd in (["mount", "--bind", str(folder), str(folder)],
                ["mount", "-o", "remount,ro,bind", str(folder)]):
        if subprocess.run(cmd, capture_output=True).returncode:
            subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip(f"mount is not allowed here ({' '.join(cmd)})")


def _writable_again(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=True, capture_output=True)


@contextlib.contextmanager
def _unmounted_at_end(folder: Path) -> Iterator[None]:
    try:
        yield
    finally:
        while subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
            pass  # every mount a tool or the test left there


# while the turn runs, the user's tool takes a backup of the store (its .wal goes into the
# file: the next commit must create it again) and an admin remounts the folder read-only
# (a bind mount refuses the new .wal; a file already open would still be written)
RO_TOOL = '''
import os, subprocess
from lash_nb import tool
from lash_nb.stores import DuckDBStore

@tool
async def make_read_only() -> str:
    """Makes the store's folder read-only, as a remount does."""
    store = DuckDBStore({path!r})  # this kernel's store of that file (one worker per file)
    if os.path.exists({copy!r}):
        os.remove({copy!r})
    await store.backup({copy!r})
    await store.close()
    for cmd in (["mount", "--bind", {folder!r}, {folder!r}],
                ["mount", "-o", "remount,ro,bind", {folder!r}]):
        subprocess.run(cmd, check=True, capture_output=True)
    return "the folder is read-only now"
'''

MOVE_TOOL = '''
import os
from lash_nb import tool

@tool
def tidy_the_folder() -> str:
    """Moves the store's file away, as tidying a folder does."""
    os.rename({path!r}, {moved!r})
    return "the store file was moved"
'''


def _turn_rows(path: Path) -> list[tuple[str, str]]:
    store = DuckDBStore(path, read_only=True)
    try:
        rows = store.query("SELECT outcome, result FROM turns WHERE outcome IS NOT NULL "
                           "ORDER BY started_at")
        return [(str(o), str(r)) for o, r in zip(rows["outcome"], rows["result"], strict=True)]
    finally:
        store.close_sync()


def _final(k: KernelHarness, ex: Any) -> dict[str, Any]:
    return k.state(ex.widget_ids()[0])


def _prose(state: dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in state.get("blocks", []) if b.get("kind") == "prose")


def test_a_turn_finished_on_a_read_only_folder_waits_is_saved_once_writable_or_kept_unsaved_on_stop(
        tmp_path: Path) -> None:
    _can_mount()
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "nb.duckdb"
    stop_button = kernel_serves_widgets_mid_cell()
    with _unmounted_at_end(folder), KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run(RO_TOOL.format(path=str(path), folder=str(folder),
                             copy=str(tmp_path / "backup.duckdb")))
        k.run("%lash open nb --store shared/nb.duckdb --tools make_read_only")
        k.run("%%lash\na first question")
        # 1. the turn finishes while the folder is read-only: it waits, says so, and is
        #    saved once the folder is writable again
        ex = k.submit("%%lash\nplease call make_read_only")
        k.pump_until(lambda: any("not saved yet" in r for r in _rows(k, ex)), timeout=60)
        row = _rows(k, ex)[0]
        assert "read-only" in row and "make it writable again" in row, row
        # what ends the wait in this kernel (a widget's Stop waits for the cell on 6.x)
        gives_up = "Stop" if stop_button else "the kernel's interrupt"
        assert f"({gives_up} leaves it unsaved)" in row, row
        assert ex.reply is None  # the cell waits: nothing was thrown away
        _writable_again(folder)
        k.wait(ex, timeout=60)
        assert ex.status == "ok", ex.error + ex.stderr
        assert _rows(k, ex)[0].startswith("saved once the store was writable again")
        # 2. again, and this time the user gives up waiting: Stop (the interrupt where the
        #    kernel hears no widget message while a cell runs, ipykernel < 7.4)
        ex = k.submit("%%lash -o out\nplease call make_read_only")
        k.pump_until(lambda: any("not saved yet" in r for r in _rows(k, ex)), timeout=60)
        if stop_button:
            k.send_custom(ex.widget_ids()[0], {"type": "stop"})
        else:
            k.km.interrupt_kernel()
        k.wait(ex, timeout=60)
        kept = k.run("print(repr(out.text))").stdout
        record = ex.data("text/html")[-1]
        state = _final(k, ex)
        _writable_again(folder)
        k.run("%%lash\na question once writable again")  # the session goes on
    assert ex.status == "error"
    shown = "\n".join([ex.stderr] + [line for m in ex.outputs if m["msg_type"] == "error"
                                     for line in m["content"]["traceback"]])
    assert "Traceback" not in shown, shown
    said = "UsageError" if stop_button else "KeyboardInterrupt"
    errors = [line for line in shown.splitlines() if line.startswith(said)]
    assert len(errors) == 1, shown  # the error in one line
    assert "gave up waiting" not in shown and "commit waits until" not in shown, shown
    line = errors[0]
    assert "NOT saved" in line and "read-only" in line and "make it writable again" in line
    assert "make_read_only returned the folder is read-only now." in kept  # out.text
    # the cell's record (what the saved notebook keeps) holds the answer, marked unsaved
    assert "make_read_only returned the folder is read-only now." in _prose(state)
    assert state["status"] == "failed" and state["outcome"].startswith("NOT saved")
    assert "make_read_only returned the folder is read-only now." in record
    assert "NOT saved" in record
    # the store: the first wait's turn saved once, the stopped one's answer never, and the
    # session went on; its prompt was stored by its first commit, as any turn's is
    assert _questions_in(path, "nb") == [
        "a first question", "please call make_read_only", "please call make_read_only",
        "a question once writable again"]
    answers = [r for _, r in _turn_rows(path)]
    assert sum("make_read_only returned" in a for a in answers) == 1, answers


def test_a_turn_finished_after_its_file_was_moved_is_saved_once_the_file_is_put_back(
        tmp_path: Path) -> None:
    path, moved = tmp_path / "team.duckdb", tmp_path / "moved.duckdb"
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run(MOVE_TOOL.format(path=str(path), moved=str(moved)))
        k.run("%lash open team --store team.duckdb --tools tidy_the_folder")
        k.run("%%lash\na first question")
        ex = k.submit("%%lash -o out\nplease call tidy_the_folder")
        k.pump_until(lambda: any("not saved yet" in r for r in _rows(k, ex)), timeout=60)
        row = _rows(k, ex)[0]
        assert "moved or deleted" in row and "put it back" in row, row
        assert ex.reply is None
        moved.rename(path)  # the user puts it back
        k.wait(ex, timeout=60)
        text = k.run("print(repr(out.text))").stdout
        k.run("%%lash\na question after putting it back")
    assert ex.status == "ok", ex.error + ex.stderr
    assert _rows(k, ex)[0].startswith("saved once the store's file was back")
    # the saved cell keeps no warning under its record that the row's "saved" contradicts
    # (the store's wait lines are INFO for a turn a widget shows)
    assert "put back" not in ex.stderr and "lash_nb" not in ex.stderr, ex.stderr
    assert "tidy_the_folder returned the store file was moved." in text
    assert _questions_in(path, "team") == [
        "a first question", "please call tidy_the_folder", "a question after putting it back"]
    outcomes = [o for o, _ in _turn_rows(path)]
    assert outcomes == ["finished"] * 3, outcomes  # each turn once, none lost


def test_the_kernel_interrupt_ends_a_full_disk_wait_in_one_line_and_keeps_the_answer(
        tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    filler = small / "filler"
    with _mounted("tmpfs", small):
        with KernelHarness(cwd=str(tmp_path)) as k:
            k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
            k.run(FILL_TOOL.format(filler=str(filler)))
            k.run("%lash open nb --store small/nb.duckdb --tools fill_the_disk")
            k.run("%%lash\na first question")
            ex = k.submit("%%lash -o out\nplease call fill_the_disk")
            k.pump_until(lambda: any("not saved yet" in r for r in _rows(k, ex)), timeout=60)
            k.km.interrupt_kernel()
            k.wait(ex, timeout=60)  # before: the interrupt was ignored for commit_wait_s
            shown = k.run("print(repr(out.text))").stdout
            last = k.run("r = %lash last\nprint(repr(r.text))").stdout  # no -o needed
            state = _final(k, ex)
            filler.unlink()
            k.run("%%lash\na question after freeing space")  # the next cell runs
        questions = _questions_in(small / "nb.duckdb", "nb")
        answers = _answers_in(small / "nb.duckdb")
    assert ex.status == "error"
    error = next(m["content"] for m in ex.outputs if m["msg_type"] == "error")
    assert error["ename"] in ("KeyboardInterrupt", "TurnInterrupted"), error
    assert len(error["traceback"]) == 1, error["traceback"]  # one line, not a traceback wall
    said = error["traceback"][0]
    assert said.startswith("KeyboardInterrupt: the kernel's interrupt ended the wait to save")
    assert "NOT saved" in said and "is full" in said and "free space there" in said
    assert "fill_the_disk returned the disk is full now." in shown
    assert "fill_the_disk returned the disk is full now." in last
    assert "fill_the_disk returned the disk is full now." in _prose(state)
    assert state["outcome"].startswith("NOT saved")
    assert questions == ["a first question", "please call fill_the_disk",
                         "a question after freeing space"]
    assert not any("the disk is full now" in a for a in answers)


def _ro_session(tmp_path: Path, **store_kw: Any) -> tuple[Path, Path, Any]:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "nb.duckdb"
    store = DuckDBStore(path, **store_kw)

    @tool
    async def make_read_only() -> str:
        """Makes the store's folder read-only, as a remount does."""
        copy = tmp_path / "backup.duckdb"
        copy.unlink(missing_ok=True)
        await store.backup(copy)  # its .wal goes into the file: the next commit creates it
        _make_read_only(folder)
        return "the folder is read-only now"

    return folder, path, (store, make_read_only)


def test_a_read_only_wait_that_runs_out_raises_turn_not_saved_carrying_the_answer(
        tmp_path: Path) -> None:
    _can_mount()
    folder, path, (store, make_read_only) = _ro_session(tmp_path, commit_wait_s=2)

    async def notebook() -> tuple[TurnNotSaved, list[str], list[str]]:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store)
                .tools(make_read_only).build())
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        with pytest.raises(TurnNotSaved) as e:
            await s.turn("please call make_read_only").run()
        seen = [m.text() for m in s.read_view().messages()]
        _writable_again(folder)
        await s.turn("a question once writable again").run()
        after = [m.text() for m in s.read_view().messages()]
        await core.close()
        return e.value, seen, after

    with _unmounted_at_end(folder):
        err, seen, after = asyncio.run(notebook())
    message = str(err)
    assert "\n" not in message and "NOT saved" in message and "read-only" in message
    assert "waited 2 s" in message and "make it writable again" in message
    assert err.stopped_by is None  # it ran out
    # the answer the model produced is readable from the error, not from the store
    assert err.result.text == "make_read_only returned the folder is read-only now."
    assert any(a.event.type == "tool_call_completed" for a in err.activities)
    assert not any("read-only now" in t for t in seen + after)
    assert _questions_in(path, "nb") == ["a first question", "please call make_read_only",
                                         "a question once writable again"]
    assert not any("read-only now" in r for _, r in _turn_rows(path))


def test_stop_during_a_moved_file_wait_keeps_the_answer_and_the_store_as_it_was(
        tmp_path: Path) -> None:
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"

    @tool
    def tidy_the_folder() -> str:
        """Moves the store's file away."""
        path.rename(moved)
        return "the store file was moved"

    async def notebook() -> TurnNotSaved:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(DuckDBStore(path))
                .tools(tidy_the_folder).build())
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        waits: list[Any] = []
        stream = s.turn("please call tidy_the_folder").stream()
        task = asyncio.ensure_future(stream.follow(waits.append))
        while not any(getattr(a.event, "reason", None) == "moved" for a in waits):
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        s.cancel_running_turns("widget_stop")  # the user gives up waiting
        with pytest.raises(TurnNotSaved) as e:
            await task
        moved.rename(path)  # then puts the file back: the session goes on
        await s.turn("a question after putting it back").run()
        await core.close()
        return e.value

    err = asyncio.run(notebook())
    assert err.stopped_by == "widget_stop"
    assert "NOT saved" in str(err) and "put the file back" in str(err)
    assert "the wait was stopped (widget_stop)" in str(err)
    assert err.result.text == "tidy_the_folder returned the store file was moved."
    assert _questions_in(path, "nb") == ["a first question", "please call tidy_the_folder",
                                         "a question after putting it back"]
    rows = _turn_rows(path)
    assert not any("store file was moved" in r for _, r in rows), rows
    assert [o for o, _ in rows].count("finished") == 2, rows


WORKER_TOOL = '''
import os
from lash_nb import tool

@tool
def tidy_the_folder() -> str:
    """Moves the store's file away once (while a flag file exists)."""
    if os.path.exists({flag!r}):
        os.remove({flag!r})
        os.rename({path!r}, {moved!r})
    return "tidied"
'''


def _queue(path: Path, *prompts: str) -> None:
    async def body() -> None:
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(DuckDBStore(path)).build()
        s = await core.session("w").open()
        for p in prompts:
            await s.enqueue(p).send()
        await core.close()

    asyncio.run(body())


def _start_worker(tmp_path: Path, path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lash_nb", "worker", "--store", str(path), "--all",
         "--tools", "worker_tools:tidy_the_folder", "--exit-when-idle", "3", "--grace", "1"],
        stderr=log.open("wb"), env=dict(os.environ, PYTHONPATH=f"{ROOT}:{tmp_path}"))


def _batches(path: Path) -> tuple[int, list[str]]:
    store = DuckDBStore(path, read_only=True)
    try:
        queued = int(store.query("SELECT count(*) AS n FROM queued_work_batches")["n"].iloc[0])
        done = list(store.query("SELECT final_state FROM queue_history ORDER BY finished_at_ms")["final_state"])
        return queued, [str(s) for s in done]
    finally:
        store.close_sync()


def test_a_worker_whose_final_commit_meets_a_moved_file_waits_and_on_stop_leaves_the_batch_queued(
        tmp_path: Path) -> None:
    path, moved, flag = tmp_path / "w.duckdb", tmp_path / "moved.duckdb", tmp_path / "flag"
    (tmp_path / "worker_tools.py").write_text(
        WORKER_TOOL.format(flag=str(flag), path=str(path), moved=str(moved)))
    _queue(path, "please call tidy_the_folder")
    flag.touch()
    log = tmp_path / "worker.log"
    worker = _start_worker(tmp_path, path, log)
    try:
        wait_until("the worker waiting for the file to be put back",
                   lambda: "waits for it to be put back" in log.read_text(), timeout=120)
        worker.send_signal(signal.SIGTERM)  # the operator stops it meanwhile
        code = worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    said = log.read_text()
    moved.rename(path)
    queued, done = _batches(path)  # the batch was not marked done: it is still queued
    again = _start_worker(tmp_path, path, tmp_path / "again.log")  # flag gone: no move now
    assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()
    queued_after, done_after = _batches(path)
    rows = _turn_rows(path)
    assert code == 75, said  # EX_TEMPFAIL: start it again
    assert "Traceback" not in said, said
    stopped = [line for line in said.splitlines() if line.startswith("worker stopped:")]
    assert stopped and "is not the file this process opened any more" in stopped[-1], said
    assert "the queued work stays in the queue" in stopped[-1]
    assert (queued, done) == (1, []), (queued, done)
    assert (queued_after, done_after) == (0, ["completed"])
    assert sum(o == "finished" for o, _ in rows) == 1, rows  # answered once, saved once


def test_a_worker_whose_final_commit_meets_a_moved_file_saves_it_once_the_file_is_back(
        tmp_path: Path) -> None:
    path, moved, flag = tmp_path / "w.duckdb", tmp_path / "moved.duckdb", tmp_path / "flag"
    (tmp_path / "worker_tools.py").write_text(
        WORKER_TOOL.format(flag=str(flag), path=str(path), moved=str(moved)))
    _queue(path, "please call tidy_the_folder", "a second question")
    flag.touch()
    log = tmp_path / "worker.log"
    worker = _start_worker(tmp_path, path, log)
    try:
        wait_until("the worker waiting for the file to be put back",
                   lambda: "waits for it to be put back" in log.read_text(), timeout=120)
        moved.rename(path)
        code = worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert code == 0, log.read_text()
    assert _batches(path) == (0, ["completed", "completed"])
    assert [o for o, _ in _turn_rows(path)] == ["finished", "finished"]


def test_a_turn_whose_store_was_let_go_and_made_read_only_meanwhile_waits_and_is_saved(
        tmp_path: Path) -> None:
    """The kernel let the file go while the model answered (a hand-over to a worker does):
    the final commit opens it again, finds the folder read-only, waits, and commits once the
    folder is writable."""
    _can_mount()
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "nb.duckdb"
    store = DuckDBStore(path)

    async def model(request: Any) -> str:
        if "slow" in request.messages[-1].text():
            await store.release_file()
            _make_read_only(folder)
        return "an answer that cost money"

    async def notebook() -> tuple[Any, list[str]]:
        core = LashCore.builder().provider(FunctionProvider(model)).store(store).build()
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        waits: list[Any] = []
        task = asyncio.ensure_future(s.turn("a slow question").stream().follow(waits.append))
        while not any(getattr(a.event, "reason", None) == "read_only" for a in waits):
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        _writable_again(folder)
        result = await task
        seen = [m.text() for m in s.read_view().messages()]
        await core.close()
        return result, seen

    with _unmounted_at_end(folder):
        result, seen = asyncio.run(notebook())
    assert result.text == "an answer that cost money" and result.head_revision is not None
    assert seen.count("an answer that cost money") == 2
    assert [r for _, r in _turn_rows(path)].__len__() == 2
    assert _questions_in(path, "nb") == ["a first question", "a slow question"]
