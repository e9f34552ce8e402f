"""Bad files and full disks: one line naming the file and the real fix, nothing changed, and a
finished turn that met a full disk is committed once space returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lash_nb import LashCore, tool
from lash_nb._errors import StoreError
from lash_nb._store.base import RuntimeCommit, lease_owner_id
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore


def _store_with_sessions(path: Path, n: int = 20) -> bytes:
    store = DuckDBStore(path)
    for i in range(n):
        lease = asyncio.run(store.try_acquire_lease(f"s{i}", lease_owner_id("bad-files")))
        asyncio.run(store.commit(RuntimeCommit(f"s{i}", lease, release_lease=True)))
    store.close_sync()
    return path.read_bytes()


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and isinstance(e, StoreError), repr(e)
    return msg


@pytest.mark.parametrize("damage", ["truncated", "scribbled"])
def test_a_damaged_file_is_refused_at_open_with_restore_a_copy(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "lash.duckdb"
    good = _store_with_sessions(path)
    if damage == "truncated":  # a copy cut short (a full disk, a sync tool, a crash of cp)
        path.write_bytes(good[: len(good) // 2])
    else:  # a bad block in the middle (the header is fine)
        bad = bytearray(good)
        bad[12288:12288 + 4096] = os.urandom(4096)
        path.write_bytes(bytes(bad))
    before = path.read_bytes()
    with pytest.raises(StoreError) as e:
        DuckDBStore(path)
    msg = _one_line(e.value)
    assert str(path) in msg and "damaged" in msg and "restore the file from a copy" in msg
    assert path.read_bytes() == before  # lash_nb changed nothing


def test_a_store_of_a_newer_lash_nb_says_upgrade_not_delete(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "lash.duckdb"
    _store_with_sessions(path, 1)
    con = duckdb.connect(str(path))
    con.execute("UPDATE lash_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as e:
        DuckDBStore(path)
    msg = _one_line(e.value)
    assert str(path) in msg and "upgrade lash_nb" in msg and "delete" not in msg
    assert path.read_bytes() == before


@contextlib.contextmanager
def _mounted(kind: str, target: Path) -> Iterator[None]:
    """A read-only bind mount or a small tmpfs at ``target`` (root only; else skip)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a read-only folder / a small filesystem")
    if kind == "ro":
        cmds = [["mount", "--bind", str(target), str(target)],
                ["mount", "-o", "remount,ro,bind", str(target)]]
    else:
        cmds = [["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(target)]]
    for cmd in cmds:
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(target)], capture_output=True)
            pytest.skip(f"mount is not allowed here ({' '.join(cmd)})")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], check=True)  # a store left open


def test_a_read_only_folder_is_refused_at_open_and_still_readable(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "lash.duckdb"
    _store_with_sessions(path, 3)
    for extra in folder.glob("lash.duckdb.*"):
        extra.unlink()
    with _mounted("ro", folder):
        with pytest.raises(StoreError) as e:
            DuckDBStore(path)
        msg = _one_line(e.value)
        assert str(path) in msg and "writable folder" in msg and "read_only=True" in msg
        reader = DuckDBStore(path, read_only=True)  # reading still works there
        try:
            assert len(asyncio.run(reader.list_sessions())) == 3
        finally:
            reader.close_sync()


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def test_a_turn_finished_on_a_full_disk_waits_and_is_committed_when_space_returns(
        tmp_path: Path) -> None:
    folder = tmp_path / "small"
    folder.mkdir()
    path = folder / "lash.duckdb"
    filled: dict[str, Path] = {}

    @tool
    async def fill_the_disk() -> str:
        """Fills the disk the store is on (as a big download in another tab would)."""
        filled["f"] = _fill(folder)
        return "the disk is full now"

    async def notebook() -> tuple[list[Any], Any, str]:
        store = DuckDBStore(path, idle_release_s=None)
        # a short lease: the wait below outlasts it, and the turn must still commit
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store)
                .tools(fill_the_disk).lease_ttl_ms(1000).build())
        s = await core.session("nb").open()
        await s.turn("a first question").run()
        stream = s.turn("please call fill_the_disk").stream()
        waits = []
        async for activity in stream:
            if activity.type == "store_wait":
                waits.append(activity.event)
                # the user frees space after a while (events come every second)
                if sum(not w.done for w in waits) == 3 and filled["f"].exists():
                    filled["f"].unlink()
        result = await stream.finish()
        filler = _fill(folder)  # full again: work that is not a finished turn fails at once
        refused = "no error"
        for i in range(500):  # the first few may still fit in the .wal's last page
            try:
                await s.enqueue(f"another question {i} " + "x" * 2000).send()
            except StoreError as e:
                refused = _one_line(e)
                break
        filler.unlink()
        await store.close()
        return waits, result, refused

    with _mounted("tmpfs", folder):
        waits, result, refused = asyncio.run(notebook())
        assert result.outcome.kind == "finished"
        assert waits[0].reason == "disk_full" and not waits[0].done and waits[-1].done
        assert str(path) in refused and "full" in refused and "free space" in refused
        store = DuckDBStore(path)
        try:
            turns = store.query("SELECT outcome, result FROM turns ORDER BY started_at")
        finally:
            store.close_sync()
    assert list(turns["outcome"]) == ["finished", "finished"]
    assert "the disk is full now" in turns["result"].iloc[1]  # the answer was kept


def test_a_sidecar_that_cannot_be_opened_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lash.duckdb"
    _store_with_sessions(path, 1)
    sidecar = tmp_path / "lash.duckdb.lash-share"
    sidecar.unlink()
    sidecar.mkdir()  # something else took the sidecar's name
    before = path.read_bytes()
    with pytest.raises(StoreError) as e:
        DuckDBStore(path)
    msg = _one_line(e.value)
    assert "lash.duckdb.lash-share" in msg and "Is a directory" in msg
    assert path.read_bytes() == before


def test_a_store_path_under_a_file_or_through_a_dangling_link_says_which(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(StoreError) as e:
        DuckDBStore(notes / "lash.duckdb")  # "notes.txt/lash.duckdb": a file, not a folder
    assert _one_line(e.value) == (f"{notes} is a file, not a folder; put the store in a "
                                  "folder (e.g. lash.duckdb beside it)")
    link = tmp_path / "lash.duckdb"
    link.symlink_to(tmp_path / "moved" / "lash.duckdb")  # the store was moved away
    with pytest.raises(StoreError) as e:
        DuckDBStore(link)
    assert _one_line(e.value) == (f"{link} links to {tmp_path / 'moved' / 'lash.duckdb'}, "
                                  "which does not exist; fix the link or point at the file")
    assert notes.read_text() == "my notes\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "lash.duckdb", "notes.txt"]  # nothing created
