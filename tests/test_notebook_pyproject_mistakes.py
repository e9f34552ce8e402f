"""A mistake in ``[tool.lash_nb]`` does not stop ``%load_ext lash_nb``.

Before, ``commit-wait-s = "soon"`` made the load fail with a traitlets traceback (no magics at
all), an unknown or misspelt key was dropped without a word, and a pyproject.toml that did not
parse dropped every setting without a word. Now the good settings are used and each mistake
is one line on stderr naming the file, the key and what to write.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

MAGICS = "get_ipython().magics_manager.registry['LashMagics']"


def _said(stderr: str) -> list[str]:
    """The load's lines but the one an ipykernel older than 7.4 gets (ADR 23)."""
    return [line for line in stderr.strip().splitlines()
            if not line.startswith("lash_nb: ipykernel ")]


@pytest.mark.slow  # a real kernel
def test_bad_keys_and_values_are_one_line_each_and_the_good_ones_apply(tmp_path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\nname = "mine"\n\n[tool.lash_nb]\n'
                    'commit-wait-s = "soon"\n'
                    'sql-rows = 7\n'
                    'comit-wait-s = 30\n'
                    'offline_delay = 0\n'
                    'colour = "red"\n'
                    'session = ""\n'
                    'store = "notes.duckdb"\n'
                    'live-interval-s = true\n'
                    'max_tool_output = 1000\n'
                    'max-tool-output = 2000\n')
    with KernelHarness(cwd=str(tmp_path)) as k:
        ex = k.execute("%load_ext lash_nb", stop_on_error=False)
        assert ex.status == "ok", ex.error
        lines = _said(ex.stderr)
        assert len(lines) == 7, lines
        by_key = {line.split("[tool.lash_nb] ", 1)[1].split()[0]: line for line in lines}
        assert set(by_key) == {"commit-wait-s", "comit-wait-s", "offline_delay", "colour",
                               "session", "live-interval-s", "sets"}, lines
        for line in lines:
            assert line.startswith(f"lash_nb: {toml} [tool.lash_nb] "), line
        assert '= "soon" is not a number of seconds above 0, so it stays 600.0;' in (
            by_key["commit-wait-s"])
        assert by_key["commit-wait-s"].endswith("write e.g. commit-wait-s = 600.0")
        assert by_key["comit-wait-s"].endswith("did you mean commit-wait-s?")
        assert by_key["offline_delay"].endswith("did you mean offline_delay_s?")
        assert "is ignored; the keys are session, store" in by_key["colour"]
        assert by_key["session"].endswith('session = "" is not a session name in quotes, not '
                                          'empty, so it stays "default"; write e.g. session = '
                                          '"default"')
        # a TOML true is not 1 second
        assert by_key["live-interval-s"].endswith(
            "live-interval-s = true is not a number of seconds above 0, so it stays 0.05; "
            "write e.g. "
            "live-interval-s = 0.05")
        assert by_key["sets"].endswith("sets max_tool_output twice (max_tool_output and "
                                       "max-tool-output); the last one, max-tool-output, is "
                                       "used: remove the other")
        # the good settings are in force and the magics work
        got = k.run(f"m = {MAGICS}\nprint(m.sql_rows, m.commit_wait_s, m.store, m.session, "
                    "m.live_interval_s, m.max_tool_output)")
        assert got.stdout.split() == ["7", "600.0", "notes.duckdb", "default", "0.05", "2000"]
        k.run("%lash turn hello")
        assert (tmp_path / "notes.duckdb").is_file()
    assert "soon" in toml.read_text()  # the user's file is left as written


@pytest.mark.slow  # a real kernel
def test_a_pyproject_that_does_not_parse_says_so_in_one_line(tmp_path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[tool.lash_nb]\nsql-rows = 7\nstore = "unclosed\n')
    with KernelHarness(cwd=str(tmp_path)) as k:
        ex = k.execute("%load_ext lash_nb", stop_on_error=False)
        assert ex.status == "ok", ex.error
        lines = _said(ex.stderr)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"lash_nb: {toml} could not be read ("), lines
        assert lines[0].endswith("its [tool.lash_nb] settings were not read: they are not "
                                 "used; fix the file and run %reload_ext lash_nb"), lines
        assert k.run(f"print({MAGICS}.sql_rows)").stdout.strip() == "50"
