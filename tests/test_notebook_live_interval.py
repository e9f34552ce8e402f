"""``live_interval_s`` (the least time between two updates a running turn's widget sends) is
refused in one line when it is not a number of seconds above 0, wherever it is set: ``%config
LashMagics.live_interval_s`` and ``[tool.lash_nb]`` in pyproject.toml (ADR 199).

Before, ``-1``, ``0`` and ``nan`` were taken without a word: the widget's next flush was then
due at once (``call_later(max(0, due - now))``), so a turn sent its deltas to the front end
as they came, not at most every ``live_interval_s``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from notebook_harness import lash_shell


@pytest.mark.parametrize("bad", ["-1", "0", "-0.05", "float('nan')", "float('inf')", "'soon'"])
def test_a_bad_live_interval_is_refused_in_one_line_and_the_setting_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        bad: str) -> None:
    with lash_shell(tmp_path, monkeypatch, "%config LashMagics.live_interval_s = 0.2",
                    "%config LashMagics.store = ':memory:'") as sh:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            sh.run_cell(f"%config LashMagics.live_interval_s = {bad}")
        magics = sh.ip.magics_manager.registry["LashMagics"]
        kept = magics.live_interval_s
        sh.run_cell("%%lash\nstill works?")  # the notebook goes on with the kept setting
        answered = str(magics.ctx.last_result.outcome)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert kept == 0.2
    assert len(said) == 1 and "\n" not in said[0], said
    assert said[0].endswith("LashMagics.live_interval_s must be a number of seconds above 0 "
                            f"(e.g. 0.05), not {eval(bad)!r}; it stays 0.2"), said
    assert answered == "finished: assistant_message"


@pytest.mark.parametrize("written", ["-1", "0", "-0.5", "nan", "-inf"])
def test_a_bad_live_interval_in_pyproject_is_one_line_and_the_built_in_one_stays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        written: str) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text(f"[tool.lash_nb]\nlive-interval-s = {written}\nsql-rows = 7\n")
    with lash_shell(tmp_path, monkeypatch) as sh:
        magics = sh.ip.magics_manager.registry["LashMagics"]
        kept, rows = magics.live_interval_s, magics.sql_rows
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("lash_nb: ") and "ipykernel" not in line]
    assert (kept, rows) == (0.05, 7)  # the good setting beside it applies
    said = (f"lash_nb: {toml} [tool.lash_nb] live-interval-s = {written} is not a number of "
            "seconds above 0, so it stays 0.05; write e.g. live-interval-s = 0.05")
    assert lines == [said], lines
