"""A bad ``LashMagics`` value in IPython's own config does not stop ``%load_ext lash_nb``
(ADR 203).

Before, a profile's ``ipython_config.py`` with ``c.LashMagics.live_interval_s = -1`` (or
``--LashMagics.commit_wait_s=soon`` on the kernel's command line) made the load fail with a
traitlets error and left no magics: traitlets sets the config whole while building the
magics. Now each value is set on its own, as ``[tool.lash_nb]``'s are (ADR 192): the good
ones apply and each bad one is one line naming where it was written, what the setting takes,
the value kept and what to write there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import KernelHarness, load_lines

MAGICS = "get_ipython().magics_manager.registry['LashMagics']"


def _profile(tmp_path: Path, text: str) -> tuple[dict[str, str], Path]:
    """An IPython directory of the test's own whose default profile's config is ``text``."""
    folder = tmp_path / "ipython" / "profile_default"
    folder.mkdir(parents=True)
    config = folder / "ipython_config.py"
    config.write_text(text)
    return {"IPYTHONDIR": str(tmp_path / "ipython")}, config


@pytest.mark.slow  # a real kernel
def test_bad_values_in_a_profiles_config_are_one_line_each_and_the_good_ones_apply(
        tmp_path: Path) -> None:
    env, config = _profile(tmp_path, "c.LashMagics.live_interval_s = -1\n"
                                     "c.LashMagics.commit_wait_s = 'soon'\n"
                                     "c.LashMagics.session = ''\n"
                                     "c.LashMagics.sql_rows = -3\n"
                                     "c.LashMagics.max_tool_output = 0\n"
                                     "c.LashMagics.model = 5\n"
                                     "c.LashMagics.sql_row = 7\n"
                                     "c.LashMagics.store = 'notes.duckdb'\n"
                                     "c.LashMagics.attach_turn_max_bytes = 1000\n"
                                     "c.LashMagics.offline_delay_s = 0\n")
    work = tmp_path / "work"
    work.mkdir()
    with KernelHarness(cwd=str(work), env=env) as k:
        lines = load_lines(k)
        got = k.run(f"m = {MAGICS}\nprint(m.live_interval_s, m.commit_wait_s, m.session, "
                    "m.sql_rows, m.max_tool_output, repr(m.model), m.store, "
                    "m.attach_turn_max_bytes, m.offline_delay_s)").stdout.split()
        answered = k.run("r = %lash turn hello\nprint(r.outcome)").stdout.splitlines()[-1]
    at = f"lash_nb: {config} sets LashMagics."
    assert sorted(lines) == sorted([
        (f"{at}live_interval_s = -1, which is not a number of seconds above 0, so it stays "
         "0.05; write e.g. c.LashMagics.live_interval_s = 0.05"),
        (f"{at}commit_wait_s = 'soon', which is not a number of seconds above 0, so it stays "
         "600; write e.g. c.LashMagics.commit_wait_s = 60"),
        (f"{at}session = '', which is not a session name in quotes, not empty, so it stays "
         "'default'; write e.g. c.LashMagics.session = 'analysis'"),
        (f"{at}sql_rows = -3, which is not a whole number of rows, 0 or more (0 shows every "
         "row), so it stays 50; write e.g. c.LashMagics.sql_rows = 50"),
        (f"{at}max_tool_output = 0, which is not a whole number of characters above 0, so it "
         "stays 65536; write e.g. c.LashMagics.max_tool_output = 65536"),
        (f"{at}model = 5, which is not text in quotes, so it stays ''; write e.g. "
         "c.LashMagics.model = '...'"),
        f"{at}sql_row, which is not a lash_nb setting and is ignored; did you mean sql_rows?",
    ]), lines
    assert got == ["0.05", "600.0", "default", "50", "65536", "''", "notes.duckdb", "1000",
                   "0.0"]
    assert answered == "finished: assistant_message"
    assert (work / "notes.duckdb").is_file()  # the good store setting was used


@pytest.mark.slow  # a real kernel
def test_bad_values_on_the_kernels_command_line_say_so_as_typed(tmp_path: Path) -> None:
    env, _ = _profile(tmp_path, "")
    args = ["--LashMagics.commit_wait_s=soon", "--LashMagics.sql_rows=-1",
            "--LashMagics.store=notes.duckdb", "--LashMagics.live_interval_s=0.2"]
    with KernelHarness(cwd=str(tmp_path), env=env, args=args) as k:
        lines = load_lines(k)
        got = k.run(f"m = {MAGICS}\nprint(m.commit_wait_s, m.sql_rows, m.store, "
                    "m.live_interval_s)").stdout.split()
    assert lines == [
        ("lash_nb: the command line sets --LashMagics.commit_wait_s=soon, which is not a number "
         "of seconds above 0, so it stays 600; write e.g. --LashMagics.commit_wait_s=60"),
        ("lash_nb: the command line sets --LashMagics.sql_rows=-1, which is not a whole number "
        "of rows, 0 or more (0 shows every row), so it stays 50; write e.g. "
         "--LashMagics.sql_rows=50"),
    ], lines
    assert got == ["600.0", "50", "notes.duckdb", "0.2"]


@pytest.mark.slow  # a real kernel
def test_a_refused_config_value_leaves_the_setting_to_pyproject_at_load_and_reload(
        tmp_path: Path) -> None:
    env, config = _profile(tmp_path, "c.LashMagics.sql_rows = -3\n"
                                     "c.LashMagics.commit_wait_s = 30\n")
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.lash_nb]\nsql-rows = 7\ncommit-wait-s = 90\n")
    with KernelHarness(cwd=str(tmp_path), env=env) as k:
        lines = load_lines(k)
        loaded = k.run(f"print({MAGICS}.sql_rows, {MAGICS}.commit_wait_s)").stdout.split()
        refused = k.execute("%config LashMagics.sql_rows = -1", stop_on_error=False)
        toml.write_text("[tool.lash_nb]\nsql-rows = 9\ncommit-wait-s = 90\n")
        reloaded = k.run("%reload_ext lash_nb").stdout.strip()
        after = k.run(f"print({MAGICS}.sql_rows)").stdout.strip()
    assert lines == [(f"lash_nb: {config} sets LashMagics.sql_rows = -3, which is not a whole "
                     "number of rows, 0 or more (0 shows every row), so it stays 7; write e.g. "
                     "c.LashMagics.sql_rows = 50")], lines
    assert loaded == ["7", "30.0"]  # the file's 7; the profile's good 30 wins over its 90
    told = ("LashMagics.sql_rows must be a whole number of rows, 0 or more (0 shows every "
            "row; e.g. 50), not -1; it stays 7")
    assert told in refused.stderr, refused.outputs
    assert reloaded == (f"lash_nb: read [tool.lash_nb] of {toml} again: sql_rows = 9 (was 7); "
                        "%config sets commit_wait_s, which wins over the file; open sessions "
                        "stay open"), reloaded
    assert after == "9"


@pytest.mark.slow  # a real kernel
def test_a_bad_config_run_before_loading_says_to_write_config_again(tmp_path: Path) -> None:
    env, _ = _profile(tmp_path, "c.LashMagics.commit_wait_s = 30\n")
    with KernelHarness(cwd=str(tmp_path), env=env) as k:
        k.run("%config LashMagics.sql_rows = -2")  # no magics to refuse it yet
        lines = load_lines(k)
        got = k.run(f"print({MAGICS}.sql_rows, {MAGICS}.commit_wait_s)").stdout.split()
    assert lines == [("lash_nb: IPython's config sets LashMagics.sql_rows = -2, which is not a "
                     "whole number of rows, 0 or more (0 shows every row), so it stays 50; "
                     "write e.g. %config LashMagics.sql_rows = 50")], lines
    assert got == ["50", "30.0"]


@pytest.mark.slow  # a real kernel
def test_a_refused_config_after_a_good_one_keeps_the_good_one_over_the_file(
        tmp_path: Path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.lash_nb]\nsql-rows = 7\n")
    with KernelHarness(cwd=str(tmp_path)) as k:
        load_lines(k)
        k.run("%config LashMagics.sql_rows = 3")
        k.execute("%config LashMagics.sql_rows = -1", stop_on_error=False)
        toml.write_text("[tool.lash_nb]\nsql-rows = 9\n")
        reloaded = k.run("%reload_ext lash_nb").stdout.strip()
        after = k.run(f"print({MAGICS}.sql_rows)").stdout.strip()
    assert reloaded == (f"lash_nb: read [tool.lash_nb] of {toml} again: %config sets sql_rows, "
                        "which wins over the file; open sessions stay open"), reloaded
    assert after == "3"
