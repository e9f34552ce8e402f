"""``%lash sql`` with more than one statement: it is refused in one line that says how many
statements it saw and what to do, instead of showing only the last one's rows (ADR 0149)."""

from __future__ import annotations

import pytest
import test_notebook_magics
from IPython.core.error import UsageError

sh = test_notebook_magics.sh  # the IPython shell fixture, shared


@pytest.fixture
def duck(sh, tmp_path):
    sh.run_cell(f"%config LashMagics.store = '{tmp_path / 'sql.duckdb'}'")
    sh.run_cell("%lash open s")
    sh.run_cell("%lash turn hello")
    return sh


def test_two_statements_on_one_line_are_refused_not_half_shown(duck):
    with pytest.raises(UsageError) as e:
        duck.run_cell("%lash sql SELECT 1 AS a; SELECT 2 AS b")
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith("%lash sql runs one statement and this query has 2"), line
    assert "one %lash sql per statement" in line


def test_a_cell_of_three_statements_is_refused_too(duck):
    with pytest.raises(UsageError, match="this query has 3"):
        duck.run_cell("%%lash sql\nSELECT 1;\nSELECT session_id FROM sessions;\nSELECT 3\n")


def test_one_statement_with_a_trailing_semicolon_or_a_quoted_one_still_runs(duck):
    assert duck.run_cell("%lash sql SELECT 1 AS a;")["a"].tolist() == [1]
    got = duck.run_cell("%lash sql SELECT 'x; SELECT 2' AS t -- and; a comment")
    assert got["t"].tolist() == ["x; SELECT 2"]
    rows = duck.run_cell("%%lash sql\nSELECT session_id\nFROM sessions;\n")
    assert rows["session_id"].tolist() == ["s"]
