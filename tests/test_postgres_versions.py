"""A PostgreSQL store shared by machines with other lash_nb versions (ADR 221).

A team's database: one machine's newer lash_nb opens it and moves an older schema forward
(the PostgreSQL store migrates at open); the machines still on the older lash_nb are refused
from then on. The one who upgraded is told so in one warning line on ``lash_nb.store``; and a
lash_nb meeting a database of a newer schema says to upgrade, not to use another database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from lash_nb import LashCore
from lash_nb._errors import StoreSchemaError
from lash_nb.providers import FunctionProvider

pytestmark = pytest.mark.postgres


def _core(dsn: str) -> Any:
    return LashCore.builder().provider(FunctionProvider(lambda r: "ok")).store(dsn).build()


def _turn(dsn: str, text: str) -> list[str]:
    async def body() -> list[str]:
        core = _core(dsn)
        s = await core.session("s").open()
        await s.turn(text).run()
        texts = [m.text() for m in s.read_view().messages()]
        await core.close()
        return texts
    return asyncio.run(body())


def test_moving_a_shared_database_forward_is_one_warning_naming_the_older_installs(
        pg_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    psycopg = pytest.importorskip("psycopg")
    dsn = pg_server.create_database()
    _turn(dsn, "before")
    with psycopg.connect(dsn, autocommit=True) as con:  # as the older lash_nb left it
        con.execute("DROP TABLE blobs")
        con.execute("UPDATE lash_meta SET value = '2' WHERE key = 'schema_version'")
    with caplog.at_level(logging.WARNING, logger="lash_nb.store"):
        assert _turn(dsn, "after") == ["before", "ok", "after", "ok"]
    moved = [r.getMessage() for r in caplog.records if "schema" in r.getMessage()]
    assert len(moved) == 1 and "\n" not in moved[0]
    assert "from lash_nb schema 2 to 3" in moved[0]
    assert "a lash_nb still at schema 2" in moved[0] and "upgrade lash_nb there" in moved[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lash_nb.store"):
        _turn(dsn, "again")  # already moved: nothing more to say
    assert not [r for r in caplog.records if "schema" in r.getMessage()]


def test_a_database_of_a_newer_lash_nb_says_upgrade_here_and_is_unchanged(pg_server: Any) -> None:
    psycopg = pytest.importorskip("psycopg")
    dsn = pg_server.create_database()
    _turn(dsn, "written by the newer one")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("UPDATE lash_meta SET value = '9' WHERE key = 'schema_version'")
    with pytest.raises(StoreSchemaError) as e:
        _turn(dsn, "refused")
    msg = str(e.value)
    assert "\n" not in msg and "schema version 9" in msg
    assert "newer lash_nb" in msg and "pip install -U lash-nb-core" in msg
    assert "use a new database" not in msg  # what the line said before: the data is here
    with psycopg.connect(dsn, autocommit=True) as con:
        turns = con.execute("SELECT count(*) FROM turns").fetchone()
        version = con.execute("SELECT value FROM lash_meta").fetchone()
    assert turns == (1,) and version == ("9",)
