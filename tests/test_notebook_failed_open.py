"""A ``%lash open`` that failed leaves no session open, and the next cell says so instead of
opening the default store in its place.

The situation: a colleague's store cannot be opened (damaged, newer, a folder that is not
there); the user reads the error, then runs ``%%lash sql`` or a turn. That cell opened the
default session in ``lash.duckdb`` and answered from it (0 turns: "where are my turns?"),
or ran the turn into a file the user never asked for."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell

from lash_nb._errors import LashError


@pytest.fixture
def sh(tmp_path, monkeypatch):  # the default store: lash.duckdb in the notebook's folder
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def test_after_a_failed_open_sql_and_turns_say_so_and_touch_no_other_file(sh, tmp_path):
    (tmp_path / "colleague.duckdb").write_bytes(b"not a duckdb file at all" * 100)
    with pytest.raises((UsageError, LashError)) as opened:
        sh.run_cell("%lash open team --store colleague.duckdb")
    assert "colleague.duckdb" in str(opened.value)
    for cell in ("%%lash sql\nSELECT count(*) AS n FROM turns", "%%lash\nhello",
                 "%lash usage --by turn"):
        with pytest.raises((UsageError, LashError)) as refused:
            sh.run_cell(cell)
        text = str(refused.value)
        assert "\n" not in text
        assert "%lash open team in colleague.duckdb failed" in text
        assert "%lash open default" in text  # the way to the default store, if meant
    assert not (tmp_path / "lash.duckdb").exists()  # nothing written anywhere else
    # the user means the default store: an explicit open, then everything works again
    sh.run_cell("%lash open default")
    sh.run_cell("%%lash\nhello")
    frame = sh.run_cell("%%lash sql\nSELECT count(*) AS n FROM turns")
    assert int(frame["n"].iloc[0]) == 1
    assert (tmp_path / "lash.duckdb").exists()
