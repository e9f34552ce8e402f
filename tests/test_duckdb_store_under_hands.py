"""The store file under a user's hands while a kernel has it open: copied to share it, made
read-only, on a full disk, at an odd path. Each case as a user meets it, in a real kernel
where the behaviour depends on the process holding the file."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from notebook_harness import KernelHarness, wait_until

from lash_nb import LashCore
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore


def _questions_in(path: Path, sid: str) -> list[str]:
    """The user prompts of session ``sid`` in the store at ``path``, opened as a colleague
    opens a file they were sent (a fresh process's view: nothing of the kernel's)."""
    async def body() -> list[str]:
        core = (LashCore.builder().provider(OfflineProvider(delay_s=0))
                .store(DuckDBStore(path, idle_release_s=0)).build())
        try:
            s = await core.session(sid).open()
            return [m.text() for m in s.read_view().messages() if m.role == "user"]
        finally:
            await core.close()

    return asyncio.run(body())


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
