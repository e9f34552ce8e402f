"""A checkpoint that meets a full disk: DuckDB invalidates the connection for good ("database
has been invalidated because of a previous fatal error"), and before this change every later
statement of the session failed with it, read as "the disk is full", even after the user
freed space. The first full suite run of this round hit it at load 40: the store's checkpoint
at rest ran after another process had filled the disk (tests/test_duckdb_store_under_hands.py).

Root only: a small tmpfs is mounted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from test_duckdb_bad_files import _mounted
from test_duckdb_store_under_hands import _fill, _questions_in

import lash_nb._store.duckdb.worker as worker_module
from lash_nb import LashCore
from lash_nb._store.duckdb.lock import wal_bytes
from lash_nb.providers import OfflineProvider
from lash_nb.stores import DuckDBStore


async def _until(what: Callable[[], bool], why: str) -> None:
    for _ in range(6000):  # a bound on polls, not a timing assertion
        if what():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(why)


def test_a_store_resting_while_the_disk_fills_goes_on_once_space_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook rests after a turn; a download in another tab fills the disk; the store's
    checkpoint at rest fails; the user frees space and asks again."""
    # the checkpoint at rest comes after the disk is full, also on a loaded machine
    monkeypatch.setattr(worker_module, "REST_CHECKPOINT_S", 5.0)
    small = tmp_path / "small"
    small.mkdir()
    filler = small / "filler"
    path = str(small / "lash.duckdb")

    async def body() -> str:
        store = DuckDBStore(path)
        core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(store).build()
        s = await core.session("s").open()
        await s.turn("a first question").run()
        worker = store._worker
        await _until(lambda: worker.hold is not None and not worker.hold.pending,
                     "the turn was never folded")
        _fill(filler)
        assert wal_bytes(path) > 0 and worker.rest_checkpoints == 0  # the checkpoint is due
        await _until(lambda: worker.rest_checkpoints > 0, "no checkpoint at rest")
        filler.unlink()  # the user frees space
        out = await s.turn("a question after freeing space").run()
        await core.close()
        return str(out.result.outcome)

    with _mounted("tmpfs", small):
        outcome = asyncio.run(body())
        # a fresh process's view of the file: every question the session showed as saved
        questions = _questions_in(small / "lash.duckdb", "s")
    assert outcome == "finished: assistant_message"
    assert questions == ["a first question", "a question after freeing space"]
