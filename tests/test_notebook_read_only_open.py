"""``%lash open NAME --store PATH --read-only``: a colleague's store in a folder this user
cannot write (a read-only share) reads in a notebook: its history, ``%lash sql``, usage.

Before, ``%lash open`` refused the file and said to "open it with read_only=True", which no
``%lash`` verb could pass: the notebook had no way to read the file at all."""

from __future__ import annotations

import asyncio

import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell
from test_duckdb_bad_files import _mounted

from lash_nb import LashCore
from lash_nb._errors import LashError
from lash_nb.providers import OfflineProvider


async def _colleagues_store(path: str) -> None:
    core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store(path).build()
    session = await core.session("team").open()
    await session.turn("what did the churn model say?").run()
    await session.turn("and for March?").run()
    await core.close()


@pytest.fixture
def sh(tmp_path, monkeypatch):  # the default store: lash.duckdb in the notebook's folder
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def test_a_colleagues_store_in_a_read_only_folder_reads_with_read_only(sh, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    asyncio.run(_colleagues_store(str(shared / "team.duckdb")))
    for extra in shared.glob("team.duckdb.*"):  # the share lock file, as a copy would lack it
        extra.unlink()
    with _mounted("ro", shared):
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell("%lash open team --store shared/team.duckdb")
        assert "--read-only" in str(refused.value)  # the advice is one a notebook can follow
        sh.run_cell("%lash open team --store shared/team.duckdb --read-only")
        frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns WHERE session_id = 'team'")
        assert int(frame["n"].iloc[0]) == 2
        usage = sh.run_cell("%lash usage --by turn")
        assert len(usage) == 2
        with pytest.raises((UsageError, LashError)) as turn:
            sh.run_cell("%%lash\none more question")
        assert "--read-only" in str(turn.value) and "\n" not in str(turn.value)
        # the file is as the colleague left it
        frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")
        assert int(frame["n"].iloc[0]) == 2


def test_read_only_is_refused_with_fresh_and_for_a_non_duckdb_store(sh):
    with pytest.raises(UsageError, match="drop one of them"):
        sh.run_cell("%lash open team --store t.duckdb --read-only --fresh")
    with pytest.raises(UsageError, match="opens a DuckDB file"):
        sh.run_cell("%lash open team --store :memory: --read-only")


def test_a_file_open_for_writing_in_the_kernel_is_not_opened_read_only_beside_it(sh):
    sh.run_cell("%lash open mine --store mine.duckdb")
    with pytest.raises((UsageError, LashError), match="open for writing in this kernel"):
        sh.run_cell("%lash open other --store mine.duckdb --read-only")
    sh.run_cell("%%lash\nstill works")  # the open session is untouched
    frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")
    assert int(frame["n"].iloc[0]) == 1


def test_a_turn_or_an_enqueue_on_a_read_only_session_says_how_to_write_in_notebook_words(
        sh, tmp_path):
    """A turn on a session opened with --read-only was refused by the store's own line, "open
    DuckDBStore without it to write" (advice for the library, which no %lash verb follows),
    after a failed turn record was drawn. It is refused before anything runs, in one line that
    names the flag and the %lash open that writes."""
    asyncio.run(_colleagues_store(str(tmp_path / "team.duckdb")))
    sh.run_cell("%lash open team --store team.duckdb --read-only")
    for cell in ("%%lash\none more question", "%lash enqueue one more question"):
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell(cell)
        said = str(refused.value)
        assert "\n" not in said, said
        assert "--read-only" in said and "%lash open team --store team.duckdb" in said, said
        assert "DuckDBStore" not in said and "read_only=True" not in said, said
    frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")
    assert int(frame["n"].iloc[0]) == 2  # the colleague's two turns, nothing added
