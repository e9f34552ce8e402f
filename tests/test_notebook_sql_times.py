"""Two people read one store's times with ``%lash sql``, one in New York and one in UTC: each
time in the DataFrame says it is UTC (the instant the store holds), on a DuckDB file and on
PostgreSQL alike, so nobody reads a stored UTC time as their own local time. Nothing in the
stored tables changes: a file written before reads the same instants (ADR 173)."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest
from notebook_harness import lash_shell


@pytest.fixture
def new_york_clock():
    """The user's machine is in New York, not UTC."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    if request.param == "postgres":
        return request.getfixturevalue("pg_server").create_database()
    return str(tmp_path / "team.duckdb")


@pytest.fixture
def sh(tmp_path, monkeypatch, new_york_clock):
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell
        shell.run_cell("from lash_nb._notebook.extension import _magics\n"
                       "await _magics().ctx.close()")


def test_lash_sql_labels_the_stored_times_utc(sh, store):
    before = pd.Timestamp.now(tz="UTC")
    sh.run_cell(f"%lash open s1 --store {store}")
    sh.run_cell("r = %lash turn hello")
    after = pd.Timestamp.now(tz="UTC")
    f = sh.run_cell("%lash sql SELECT started_at, committed_at FROM turns")
    assert str(f["started_at"].dtype) == "datetime64[us, UTC]"
    assert str(f["committed_at"].dtype) == "datetime64[us, UTC]"
    # the instant the turn ran, not that wall time read in New York (5 hours off)
    assert before.floor("ms") <= f["started_at"].iloc[0] <= f["committed_at"].iloc[0] <= after
    assert "+00:00" in f.to_string()


def test_lash_sql_gives_a_zoned_time_in_utc_too(sh, store):
    sh.run_cell(f"%lash open s1 --store {store}")
    f = sh.run_cell("%lash sql SELECT TIMESTAMPTZ '2026-01-02 03:04:05+02' AS t, "
                    "epoch_ms(0::BIGINT) AS zero, epoch_ms(0::BIGINT) AS zero, 'x' AS label")
    assert f["t"].tolist() == [pd.Timestamp("2026-01-02 01:04:05", tz="UTC")]
    assert list(f.columns) == ["t", "zero", "zero", "label"]  # SQL allows a name twice
    assert f.iloc[0, 1] == f.iloc[0, 2] == pd.Timestamp("1970-01-01 00:00:00", tz="UTC")
    assert [str(d).endswith(", UTC]") for d in f.dtypes] == [True, True, True, False]
    assert f["label"].tolist() == ["x"]
