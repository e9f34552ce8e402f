"""A number setting that cannot mean anything is refused in one line saying what to write,
from ``%config`` and ``[tool.lash_nb]`` alike (ADR 203); ``sql_rows = 0`` keeps its documented
meaning, every row.

Before, traitlets took any int: ``sql_rows = -1`` showed every row without a word (the verb
read it as 0), ``max_tool_output = 0`` was taken and then refused by every ``%lash open``
(so the next turn failed, far from the setting), an attachment limit of 0 refused every
attachment saying to raise it, and ``offline_delay_s`` took a negative number, NaN and
infinity (an infinite pause hung every offline turn).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import KernelHarness, load_lines

MAGICS = "get_ipython().magics_manager.registry['LashMagics']"

REFUSED = [  # (%config line, the one line it gets after 'LashMagics.'), each hand-written
    ("sql_rows = -1",
     "sql_rows must be a whole number of rows, 0 or more (0 shows every row; e.g. 50), not -1; it stays 50"),
    ("sql_rows = 2.5",
     "sql_rows must be a whole number of rows, 0 or more (0 shows every row; e.g. 50), not 2.5; it stays 50"),
    ("sql_rows = True",
     "sql_rows must be a whole number of rows, 0 or more (0 shows every row; e.g. 50), not True; it stays 50"),
    ("attach_max_bytes = 0",
     "attach_max_bytes must be a whole number of bytes above 0 (e.g. 5000000), not 0; it stays 5000000"),
    ("attach_turn_max_bytes = -5",
     "attach_turn_max_bytes must be a whole number of bytes above 0 (e.g. 20000000), not -5; it stays 20000000"),
    ("max_tool_output = 0",
     "max_tool_output must be a whole number of characters above 0 (e.g. 65536), not 0; it stays 65536"),
    ("offline_delay_s = -0.5",
     "offline_delay_s must be a number of seconds, 0 or more (e.g. 0.03), not -0.5; it stays 0.03"),
    ("offline_delay_s = float('inf')",
     "offline_delay_s must be a number of seconds, 0 or more (e.g. 0.03), not inf; it stays 0.03"),
    ("offline_delay_s = float('nan')",
     "offline_delay_s must be a number of seconds, 0 or more (e.g. 0.03), not nan; it stays 0.03"),
]


@pytest.mark.slow  # a real kernel
def test_a_number_setting_that_means_nothing_is_refused_by_config_in_one_line(
        tmp_path: Path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb")
        said = {}
        for assignment, _ in REFUSED:
            ex = k.execute(f"%config LashMagics.{assignment}", stop_on_error=False)
            said[assignment] = [line.removeprefix("ERROR:root:")
                                for line in ex.stderr.strip().splitlines()]
        kept = k.run(f"m = {MAGICS}\nprint(m.sql_rows, m.attach_max_bytes, "
                     "m.attach_turn_max_bytes, m.max_tool_output, m.offline_delay_s)")
        answered = k.run("r = %lash turn hello\nprint(r.outcome)").stdout.splitlines()[-1]
        k.run("%config LashMagics.offline_delay_s = 0\n%config LashMagics.sql_rows = 0")
        zero = k.run(f"print({MAGICS}.offline_delay_s, {MAGICS}.sql_rows)").stdout.split()
    for assignment, line in REFUSED:
        assert said[assignment] == [f"LashMagics.{line}"], (assignment, said[assignment])
    assert kept.stdout.split() == ["50", "5000000", "20000000", "65536", "0.03"]
    assert answered == "finished: assistant_message"  # max_tool_output = 0 did not stick
    assert zero == ["0.0", "0"]  # no pause; every row


@pytest.mark.slow  # a real kernel
def test_a_number_setting_that_means_nothing_in_pyproject_is_one_line_each(
        tmp_path: Path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.lash_nb]\nsql-rows = -1\nattach-max-bytes = 0\nmax-tool-output = 0\n"
                    "offline-delay-s = -1\nattach-turn-max-bytes = 1.5\nsql_rows = 7\n"
                    "offline_delay_s = 0\n")
    with KernelHarness(cwd=str(tmp_path)) as k:
        lines = load_lines(k)
        got = k.run(f"m = {MAGICS}\nprint(m.sql_rows, m.attach_max_bytes, "
                    "m.attach_turn_max_bytes, m.max_tool_output, m.offline_delay_s)")
    at = f"lash_nb: {toml} [tool.lash_nb] "
    assert sorted(lines) == sorted([
        (f"{at}sets sql_rows twice (sql-rows and sql_rows); the last one, sql_rows, is used: "
         "remove the other"),
        (f"{at}sets offline_delay_s twice (offline-delay-s and offline_delay_s); the last one, "
         "offline_delay_s, is used: remove the other"),
        (f"{at}attach-max-bytes = 0 is not a whole number of bytes above 0, so it stays "
         "5000000; write e.g. attach-max-bytes = 5000000"),
        (f"{at}max-tool-output = 0 is not a whole number of characters above 0, so it stays "
         "65536; write e.g. max-tool-output = 65536"),
        (f"{at}attach-turn-max-bytes = 1.5 is not a whole number of bytes above 0, so it stays "
         "20000000; write e.g. attach-turn-max-bytes = 20000000"),
    ]), lines
    assert got.stdout.split() == ["7", "5000000", "20000000", "65536", "0.0"]


@pytest.mark.slow  # a real kernel
def test_a_bad_sql_rows_or_offline_delay_alone_in_pyproject_says_what_to_write(
        tmp_path: Path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text("[tool.lash_nb]\nsql-rows = -1\noffline-delay-s = -1\n")
    with KernelHarness(cwd=str(tmp_path)) as k:
        lines = load_lines(k)
    at = f"lash_nb: {toml} [tool.lash_nb] "
    assert lines == [
        (f"{at}sql-rows = -1 is not a whole number of rows, 0 or more (0 shows every row), so "
         "it stays 50; write e.g. sql-rows = 50"),
        (f"{at}offline-delay-s = -1 is not a number of seconds, 0 or more, so it stays 0.03; "
         "write e.g. offline-delay-s = 0.03"),
    ], lines


@pytest.mark.slow  # a real kernel
def test_sql_rows_zero_shows_every_row_as_documented(tmp_path: Path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.sql_rows = 0\n%lash open data")
        shown = k.run("%lash sql SELECT range AS n FROM range(57)")
        count = k.run("print(len(_), _['n'].max())").stdout.split()
    assert "showing the first" not in shown.stdout
    assert count == ["57", "56"]
