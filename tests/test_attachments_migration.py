"""Yesterday's store, today's lash_nb: a DuckDB file of schema 3 (no ``blobs``) is refused
with the command that migrates it, migrated by that command (3 -> 4) with its sessions
intact, then takes attachments; a PostgreSQL database of schema 2 gains ``blobs`` at open."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lash_nb import LashCore, TurnInput
from lash_nb.errors import StoreSchemaError
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

GIF = b"GIF89a\x02\x00\x03\x00" + b"gif-body"


def _core(store: Any) -> Any:
    return LashCore.builder().provider(FunctionProvider(lambda r: "ok")).store(store).build()


def test_a_schema_3_duckdb_file_is_migrated_to_4_and_keeps_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"

    async def write_old() -> None:
        core = _core(str(path))
        s = await core.session("s").open()
        await s.turn("before the upgrade").run()
        await core.close()
    asyncio.run(write_old())
    con = duckdb.connect(str(path))  # as lash_nb wrote it at schema 3
    con.execute("DROP TABLE blobs")
    con.execute("UPDATE lash_meta SET value = '3' WHERE key = 'schema_version'")
    con.close()

    with pytest.raises(StoreSchemaError) as e:
        DuckDBStore(path)
    assert f"python -m lash_nb migrate-store {path}" in str(e.value)
    done = subprocess.run([sys.executable, "-m", "lash_nb", "migrate-store", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: schema version 3 -> 4; ")

    async def reopen() -> None:
        core = _core(str(path))
        s = await core.session("s").open()
        assert [m.text() for m in s.read_view().messages()] == ["before the upgrade", "ok"]
        await s.turn(TurnInput.text("after").attach(GIF, name="dot.gif")).run()
        rows = core.store.query("SELECT media_type, byte_len FROM blobs")
        assert rows.to_dict("records") == [{"media_type": "image/gif", "byte_len": len(GIF)}]
        await core.close()
    asyncio.run(reopen())


@pytest.mark.postgres
def test_a_schema_2_postgres_database_gains_blobs_at_open(pg_server: Any) -> None:
    import psycopg

    dsn = pg_server.create_database()

    async def write_old() -> None:
        core = _core(dsn)
        s = await core.session("s").open()
        await s.turn("before").run()
        await core.close()
    asyncio.run(write_old())
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("DROP TABLE blobs")
        con.execute("UPDATE lash_meta SET value = '2' WHERE key = 'schema_version'")

    async def reopen() -> None:
        core = _core(dsn)
        s = await core.session("s").open()
        await s.turn(TurnInput.text("after").attach(GIF)).run()
        await core.close()
    asyncio.run(reopen())
    with psycopg.connect(dsn, autocommit=True) as con:
        version = con.execute("SELECT value FROM lash_meta WHERE key = 'schema_version'").fetchone()
        blobs = con.execute("SELECT media_type, byte_len FROM blobs").fetchall()
    assert version == ("3",) and blobs == [("image/gif", len(GIF))]


def test_prune_blobs_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "p.duckdb"

    async def write() -> None:
        core = _core(str(path))
        keep = await core.session("keep").open()
        await keep.turn(TurnInput.text("keep").attach(GIF, name="keep.gif")).run()
        gone = await core.session("gone").open()
        await gone.turn(TurnInput.text("drop").attach(b"\xff\xd8\xffjpeg", name="x.jpg")).run()
        await core.store.delete_session("gone")
        await core.close()
    asyncio.run(write())
    cli = [sys.executable, "-m", "lash_nb", "prune-blobs", str(path)]
    young = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert young.stdout.strip() == f"{path}: 0 unreferenced blob(s) deleted"
    done = subprocess.run([*cli, "--older-than", "-1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{path}: 1 unreferenced blob(s) deleted"
    store = DuckDBStore(path, idle_release_s=None)
    try:
        rows = store.query("SELECT media_type FROM blobs")
        assert rows.media_type.tolist() == ["image/gif"]
    finally:
        store.close_sync()


def test_vacuum_gives_back_the_images_of_a_deleted_session(tmp_path: Path) -> None:
    """Retention: after ``core.delete_session``, ``core.vacuum()`` removes the blobs only that
    session referenced, once they are past the grace period; the kept session's stay."""
    path = tmp_path / "v.duckdb"
    big = b"\xff\xd8\xff" + bytes(200_000)

    async def write() -> None:
        core = _core(str(path))
        keep = await core.session("keep").open()
        await keep.turn(TurnInput.text("keep").attach(GIF, name="keep.gif")).run()
        scratch = await core.session("scratch").open()
        await scratch.turn(TurnInput.text("drop").attach(big, name="big.jpg")).run()
        await scratch.close()
        await core.delete_session("scratch")
        young = await core.vacuum()
        assert young.removed_blob_count == 0  # within the grace period: kept
        await core.close()
    asyncio.run(write())
    con = duckdb.connect(str(path))  # two hours later
    con.execute("UPDATE blobs SET created_at = created_at - INTERVAL 2 HOUR")
    con.close()

    async def later() -> None:
        core = _core(str(path))
        report = await core.vacuum()
        assert report.removed_blob_count == 1
        assert report.file_bytes_after is not None and report.file_bytes_before is not None
        assert report.file_bytes_after < report.file_bytes_before
        rows = core.store.query("SELECT media_type FROM blobs")
        assert rows.media_type.tolist() == ["image/gif"]
        s = await core.session("keep").open()
        out = await s.turn("still there?").run()
        assert out.result.assistant_message() == "ok"
        await core.close()
    asyncio.run(later())
