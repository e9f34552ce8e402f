"""Reads of a store whose file was deleted or replaced while the kernel holds it.

The situation: a user starts over with ``!rm lash.duckdb`` (or a cell deletes it, or a
colleague copies a new file over it) while the kernel still holds the old file. Turns were
refused (ADR 175), but ``%lash sql``, ``%lash usage`` and the report frames went on answering
from the old file's data, silently: numbers that no file on disk holds any more. Now every
read is refused in one line that names the path and gives the ``%lash open`` line that opens
the file there now; that line works, and the reads then answer from the file at the path.
"""

from __future__ import annotations

import os
import shutil

import duckdb
import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell

from lash_nb.errors import StorePathError


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch,
                    "session = %lash open analysis --store usage.duckdb --provider offline",
                    "await session.turn('Please add a=19 b=23.').run()",
                    "await session.turn('Please add a=1 b=2.').run()") as shell:
        yield shell


def _turns(sh) -> int:
    return int(sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")["n"].iloc[0])


OPEN_LINE = "%lash open analysis --store usage.duckdb"


def _refused(sh, cell: str) -> str:
    with pytest.raises(UsageError) as e:
        sh.run_cell(cell)
    said = str(e.value)
    assert "\n" not in said, said
    assert "usage.duckdb" in said and "deleted, moved away or replaced" in said, said
    assert OPEN_LINE in said, said
    return said


MAGIC_READS = ["%%lash sql\nSELECT count(*) AS n FROM turns", "%lash usage",
               "%lash usage --by turn", "%lash sessions", "%lash queue --df",
               "%lash replay", "%lash graph --df"]


def test_reads_of_a_deleted_store_file_are_refused_and_the_open_line_reads_the_new_one(
        sh, tmp_path):
    assert _turns(sh) == 2
    os.remove(tmp_path / "usage.duckdb")  # !rm usage.duckdb: starting over
    for cell in MAGIC_READS:
        _refused(sh, cell)
    with pytest.raises(UsageError) as e:  # another session of that store: not opened there
        sh.run_cell("%%lash --session other\nhello")
    assert "%lash open other --store usage.duckdb opens the file there now" in str(e.value)
    assert not os.path.exists(tmp_path / "usage.duckdb")  # nothing made at the path
    sh.run_cell(OPEN_LINE)  # the line the refusal gave
    assert _turns(sh) == 0
    usage = sh.run_cell("%lash usage")
    assert usage.empty


def test_the_python_reports_and_store_query_of_a_deleted_file_are_refused(sh, tmp_path):
    from lash_nb import reports

    session = sh.user_ns["session"]
    assert len(reports.turns_frame(session)) == 2
    os.remove(tmp_path / "usage.duckdb")
    for read in (lambda: reports.usage_frame(session), lambda: reports.turns_frame(session),
                 lambda: reports.queue_frame(session),
                 lambda: session.store.query("SELECT count(*) FROM turns")):
        with pytest.raises(StorePathError) as e:
            read()
        said = str(e.value)
        assert "\n" not in said and "usage.duckdb" in said and "deleted, moved away or replaced" in said
        assert "%lash open" in said and "core.close()" in said, said


COLLEAGUE = """
from lash_nb import LashCore
from lash_nb.providers import OfflineProvider
_core = LashCore.builder().provider(OfflineProvider(delay_s=0)).store("colleague.duckdb").build()
await (await _core.session("theirs").open()).turn("Please add a=4 b=5.").run()
await _core.close()
"""


def test_a_file_a_colleague_copied_over_the_store_is_read_after_the_open_line(
        sh, tmp_path):
    sh.run_cell(COLLEAGUE)  # their store: one turn of their session 'theirs'
    theirs = tmp_path / "colleague.duckdb"
    with duckdb.connect(str(theirs), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM turns").fetchone() == (1,)
    tmp = tmp_path / "incoming.duckdb"
    shutil.copy(theirs, tmp)
    os.replace(tmp, tmp_path / "usage.duckdb")  # their file copied over ours, atomically
    _refused(sh, "%%lash sql\nSELECT count(*) AS n FROM turns")
    _refused(sh, "%lash usage")
    sh.run_cell(OPEN_LINE)
    assert _turns(sh) == 1  # their turn, none of ours
    assert int(sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM sessions "
                           "WHERE session_id = 'theirs'")["n"].iloc[0]) == 1
