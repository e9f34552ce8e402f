"""``%reload_ext lash_nb`` after editing ``[tool.lash_nb]`` reads the table again (ADR 199).

Before, the reload did nothing at all: the extension returned at once when its magics were
registered, so an edited pyproject.toml took a kernel restart (and every open session with
it), and nothing said so. Now a key the file sets is taken, a key it no longer sets goes back
to the built-in default, a key ``%config`` set keeps its value and the line says which; the
sessions the notebook has open stay open and the next cell uses the new settings.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

MAGICS = "get_ipython().magics_manager.registry['LashMagics']"
SETTINGS = f"m = {MAGICS}\nprint(m.sql_rows, m.store, m.live_interval_s, m.offline_delay_s)"


def _lash_lines(text: str) -> list[str]:
    """lash_nb's lines but the one an ipykernel older than 7.4 gets (ADR 23)."""
    return [line for line in text.strip().splitlines()
            if line.startswith("lash_nb: ") and not line.startswith("lash_nb: ipykernel ")]


@pytest.mark.slow  # a real kernel
def test_reload_ext_reads_the_edited_table_and_keeps_the_open_session(tmp_path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\nname = "mine"\n\n[tool.lash_nb]\nsql-rows = 7\n'
                    'live-interval-s = 0.2\n')
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open work --store work.duckdb")
        k.run("%lash turn a first question")
        assert k.run(SETTINGS).stdout.split() == ["7", "lash.duckdb", "0.2", "0.0"]

        # the user edits the table: sql-rows changes, store is new, live-interval-s is gone,
        # and offline-delay-s is a key %config already set in this notebook
        toml.write_text('[project]\nname = "mine"\n\n[tool.lash_nb]\nsql-rows = 3\n'
                        'store = "other.duckdb"\noffline-delay-s = 0.5\n')
        ex = k.run("%reload_ext lash_nb")
        assert _lash_lines(ex.stdout) == [
            (f"lash_nb: read [tool.lash_nb] of {toml} again: sql_rows = 3 (was 7); "
            'store = "other.duckdb" (was "lash.duckdb"); live_interval_s = 0.05 (was 0.2); '
            "%config sets offline_delay_s, which wins over the file; open sessions stay open")]
        assert _lash_lines(ex.stderr) == []
        assert k.run(SETTINGS).stdout.split() == ["3", "other.duckdb", "0.05", "0.0"]

        # the session opened before the reload is still the one in use, and the next cells
        # (their %lash lines still awaited) read the new sql_rows
        k.run("%lash turn a second question")
        shown = k.run("%lash sql SELECT turn_id, session_id FROM turns ORDER BY turn_id")
        assert "lash: showing the first" not in shown.stdout  # two rows: under 3
        assert k.run("print(len(_), set(_['session_id']))").stdout.split() == ["2", "{'work'}"]
        ex = k.run("%lash sql SELECT * FROM range(10) t(i)")
        assert "lash: showing the first 3 of 10 rows" in ex.stdout
        assert not (tmp_path / "other.duckdb").exists()  # the open session kept its store


@pytest.mark.slow  # a real kernel
def test_reload_ext_with_a_half_edited_file_keeps_the_settings_read_before(tmp_path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.lash_nb]\nsql-rows = 7\n")
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb")
        toml.write_text('[tool.lash_nb]\nsql-rows = 7\nstore = "unclosed\n')
        ex = k.run("%reload_ext lash_nb")
        said = _lash_lines(ex.stderr)
        assert len(said) == 1 and said[0].startswith(f"lash_nb: {toml} could not be read ("), said
        assert said[0].endswith("its [tool.lash_nb] settings were not read: the ones read from "
                                "it before stay; fix the file and run %reload_ext lash_nb"), said
        assert _lash_lines(ex.stdout) == [
            (f"lash_nb: read [tool.lash_nb] of {toml} again: no setting changed; open sessions "
            "stay open")]
        assert k.run(f"print({MAGICS}.sql_rows)").stdout.strip() == "7"
        toml.write_text("[tool.lash_nb]\n")  # fixed: the key is gone, the default is back
        ex = k.run("%reload_ext lash_nb")
        assert _lash_lines(ex.stdout) == [
            (f"lash_nb: read [tool.lash_nb] of {toml} again: sql_rows = 50 (was 7); open "
            "sessions stay open")]
        assert k.run(f"print({MAGICS}.sql_rows)").stdout.strip() == "50"
