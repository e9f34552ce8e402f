"""``commit_wait_s`` (how long a finished turn's commit waits for a full disk or a read-only,
moved or busy store file before the turn is left NOT saved, ADR 181) is a notebook setting
like the others: ``%config LashMagics.commit_wait_s``, ``[tool.lash_nb]`` in pyproject.toml;
a bad value is refused in one line and the setting stays as it was (docs/adr/0185)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell
from test_unsaved_final_commit import MOVE_TOOL


def test_commit_wait_s_set_in_the_notebook_bounds_the_wait_of_a_turn_already_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, moved = tmp_path / "nb.duckdb", tmp_path / "moved.duckdb"
    back = threading.Event()

    def put_back_later() -> None:  # ends the wait on a notebook that ignored the setting
        if not back.wait(60) and moved.exists():
            moved.rename(path)

    with lash_shell(tmp_path, monkeypatch, MOVE_TOOL.format(path=str(path), moved=str(moved)),
                    "%lash open nb --store nb.duckdb --tools tidy_the_folder",
                    "%%lash\na first question") as sh:
        sh.run_cell("%config LashMagics.commit_wait_s = 1")  # after the store was opened
        helper = threading.Thread(target=put_back_later, daemon=True)
        helper.start()
        try:
            with pytest.raises(UsageError) as got:
                sh.run_cell("%%lash\nplease call tidy_the_folder")
        finally:
            if moved.exists():
                moved.rename(path)
            back.set()
            helper.join()
        sh.run_cell("%%lash\na question after putting it back")
    line = str(got.value)
    assert "\n" not in line and "NOT saved" in line, line
    assert "waited 1 s" in line and "put the file back" in line, line


@pytest.mark.parametrize("bad", ["-1", "0", "float('inf')", "'soon'"])
def test_a_bad_commit_wait_s_is_refused_in_one_line_and_the_setting_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        bad: str) -> None:
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.commit_wait_s = 30") as sh:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            sh.run_cell(f"%config LashMagics.commit_wait_s = {bad}")
        kept = sh.ip.magics_manager.registry["LashMagics"].commit_wait_s
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert kept == 30
    assert len(said) == 1 and "\n" not in said[0], said
    assert "commit_wait_s" in said[0], said


def test_commit_wait_s_comes_from_pyproject_like_the_other_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.lash_nb]\ncommit-wait-s = 45\n")
    with lash_shell(tmp_path, monkeypatch, "%lash open nb --store nb.duckdb") as sh:
        magics = sh.ip.magics_manager.registry["LashMagics"]
        stores = [c.store for c in magics.ctx.cores.values()]
    assert magics.commit_wait_s == 45
    assert [s.commit_wait_s for s in stores] == [45]
