"""A release that could not write its lease rows (the file was taken from under it) carries
them to the next hold, and fencing still decides who owns the session."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lash_nb._errors import SessionExecutionLeaseLost
from lash_nb._store.base import Lease, RuntimeCommit, lease_owner_id
from lash_nb._store.duckdb import DuckDBStore
from lash_nb._store.duckdb.hold import Hold


def _acquire_then_lose_the_release(store: DuckDBStore, monkeypatch: Any) -> Lease:
    lease = asyncio.run(store.try_acquire_lease("s1", lease_owner_id("me")))
    assert isinstance(lease, Lease)  # held in memory only, not yet in the file
    real = Hold.flush

    def refused(self: Hold, con: Any) -> None:
        raise duckdb.TransactionException("Could not set lock on file: Conflicting lock")

    monkeypatch.setattr(Hold, "flush", refused)
    asyncio.run(store.release_file())
    monkeypatch.setattr(Hold, "flush", real)
    return lease


def _file_lease(path: Path) -> Any:
    con = duckdb.connect(str(path))
    try:
        return con.execute("SELECT owner_id, fencing FROM execution_leases "
                           "WHERE session_id = 's1'").fetchall()
    finally:
        con.close()


def test_an_unwritten_lease_is_carried_to_the_next_hold(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "lash.duckdb"
    store = DuckDBStore(path, idle_release_s=None)
    try:
        lease = _acquire_then_lose_the_release(store, monkeypatch)
        assert _file_lease(path) == []  # the release wrote nothing
        got = asyncio.run(store.commit(RuntimeCommit("s1", lease)))  # reopens, adopts
        assert got.head_revision == 1
    finally:
        store.close_sync()
    assert _file_lease(path) == [(lease.owner_id, 1)]


def test_a_carried_lease_someone_else_took_meanwhile_is_dropped(
        tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "lash.duckdb"
    store = DuckDBStore(path, idle_release_s=None)
    try:
        lease = _acquire_then_lose_the_release(store, monkeypatch)
        con = duckdb.connect(str(path))  # another process took the session meanwhile
        con.execute("INSERT INTO execution_leases VALUES ('s1', 'other:1:x', 'tok', 1, "
                    "epoch_ms(now()::TIMESTAMP) + 60000)")
        con.close()
        with pytest.raises(SessionExecutionLeaseLost):
            asyncio.run(store.commit(RuntimeCommit("s1", lease)))
    finally:
        store.close_sync()
    assert _file_lease(path) == [("other:1:x", 1)]
