"""A store file deleted by accident while the kernel holds it: its data is rescued.

The situation: a user runs ``!rm lash.duckdb`` in the wrong folder (or a clean-up script takes
it) while the kernel still holds the file. Every read is refused from then on (ADR 233), and
the refusal used to say only that the old data is "at no path now": the turns were lost with
the kernel. The kernel still holds the deleted file, so ``%lash backup PATH`` copies its data
(every turn, the queue) to a new file, which opens as the store it was; the refusal names it.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell

from lash_nb import LashCore
from lash_nb.errors import StorePathError
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch,
                    "session = %lash open analysis --store usage.duckdb --provider offline",
                    "await session.turn('Please add a=19 b=23.').run()",
                    "await session.turn('Please add a=1 b=2.').run()",
                    "%lash enqueue summarise both answers tomorrow") as shell:
        yield shell


def _read(path: str) -> tuple[list[str], list[str]]:
    """The turn ids and the queued prompts, as a new store object reads them."""
    async def body() -> tuple[list[str], list[str]]:
        store = DuckDBStore(path)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("analysis").open()
        turns = [t.turn_id for t in await store.load_turns("analysis")]
        queued = [b.items[0].turn_input.items[0].text for b in await s.queued_work()]
        await core.close()
        return turns, queued

    return asyncio.run(body())


def test_a_store_file_deleted_under_the_kernel_is_rescued_by_lash_backup(sh, tmp_path):
    turn_ids = [str(t) for t in sh.run_cell(
        "%%lash sql\nSELECT turn_id FROM turns ORDER BY started_at")["turn_id"]]
    assert len(turn_ids) == 2
    os.remove(tmp_path / "usage.duckdb")  # by accident
    with pytest.raises(UsageError) as e:
        sh.run_cell("%lash usage")
    said = str(e.value)
    assert "\n" not in said and "%lash backup --session analysis rescued.duckdb" in said, said

    sh.run_cell("%lash backup rescued.duckdb")
    assert not (tmp_path / "usage.duckdb").exists()  # nothing was made at the old path
    turns, queued = _read(str(tmp_path / "rescued.duckdb"))
    assert sorted(turns) == sorted(turn_ids)
    assert queued == ["summarise both answers tomorrow"]


def test_lash_backup_copies_a_store_in_use_and_refuses_to_overwrite(sh, tmp_path):
    sh.run_cell("%lash backup copy.duckdb")
    turns, queued = _read(str(tmp_path / "copy.duckdb"))
    assert len(turns) == 2 and queued == ["summarise both answers tomorrow"]
    with pytest.raises(UsageError, match=r"copy\.duckdb exists; choose a new path"):
        sh.run_cell("%lash backup copy.duckdb")
    sh.run_cell("%lash backup copy.duckdb --overwrite")


def test_the_python_api_rescues_a_deleted_store_file_it_still_holds(tmp_path):
    path = str(tmp_path / "nb.duckdb")

    async def body() -> tuple[str, str]:
        store = DuckDBStore(path)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("s").open()
        turn = (await s.turn("keep this answer").run()).result.turn_id
        os.remove(path)
        with pytest.raises(StorePathError) as e:
            store.query("SELECT count(*) FROM turns")
        await store.backup(str(tmp_path / "rescued.duckdb"))
        await core.close()
        return turn, str(e.value)

    turn, said = asyncio.run(body())
    assert "\n" not in said and "await store.backup('rescued.duckdb')" in said, said
    store = DuckDBStore(str(tmp_path / "rescued.duckdb"))
    try:
        assert [t.turn_id for t in asyncio.run(store.load_turns("s"))] == [turn]
    finally:
        store.close_sync()
