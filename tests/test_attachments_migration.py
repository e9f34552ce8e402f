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
    assert done.stdout.strip() == f"{path}: schema version 3 -> 4"

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
