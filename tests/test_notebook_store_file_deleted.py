"""A notebook that deletes its store file and opens it again, in the same kernel.

The situation: ``notebooks/03-usage-analysis.ipynb`` starts from an empty store
(``os.remove("usage.duckdb")``, then ``%lash open analysis --store usage.duckdb``) so that
every number comes from this run. A user runs it, then runs it again (Run All a second time,
same kernel). The kernel still held the deleted file: the open reused it, the first turn was
refused ("not the file this process opened any more ... restart the kernel"), Run All stopped
there, the reports below read the deleted file's old turns as if current, and no file was
left at the path at all. An explicit ``%lash open`` of the path opens the file that is there
now (a new store when there is none), as a restarted kernel does, and says so in one line.
"""

from __future__ import annotations

import os

import pytest
from notebook_harness import lash_shell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def _turn_count(sh) -> int:
    frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")
    return int(frame["n"].iloc[0])


def test_run_all_twice_with_the_store_deleted_between_starts_from_the_new_file(
        sh, tmp_path, capsys):
    cells = [
        'import os\nif os.path.exists("usage.duckdb"):\n    os.remove("usage.duckdb")',
        "session = %lash open analysis --store usage.duckdb --provider offline",
        "await session.turn(\"What does weather say for 'Paris'?\").run()",
        "await session.turn('Please add a=19 b=23.').run()",
    ]
    for cell in cells:
        sh.run_cell(cell)
    assert _turn_count(sh) == 2
    capsys.readouterr()
    for cell in cells:  # Run All again, same kernel: every cell runs
        sh.run_cell(cell)
    said = capsys.readouterr().out
    # this run's turns only, read from the file now at the path
    assert _turn_count(sh) == 2
    assert sh.user_ns["session"].read_view().turn_index == 2
    assert os.path.exists(tmp_path / "usage.duckdb")
    notice = [line for line in said.splitlines() if "usage.duckdb" in line]
    assert len(notice) == 1 and "deleted or replaced" in notice[0], said
    # and a restarted kernel finds those turns in the file
    sh.run_cell("await session.core.close()")
    import duckdb

    with duckdb.connect(str(tmp_path / "usage.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM turns").fetchone() == (2,)
