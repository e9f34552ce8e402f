"""A typo in ``%lash sql`` is one line that says what the store has: a misspelled table or
column names the one meant, and the hint works where lash_nb was installed from a wheel (it
pointed at docs/store-schema.md, a file only the source tree has)."""

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


def _error(shell, cell: str) -> str:
    with pytest.raises(UsageError) as e:
        shell.run_cell(cell)
    line = str(e.value)
    assert "\n" not in line, line
    assert "docs/store-schema.md" not in line, line
    return line


def test_a_misspelled_table_names_the_table_meant(duck):
    line = _error(duck, "%lash sql SELECT * FROM turn")
    assert line.startswith("no table or view 'turn' in the store"), line
    assert "did you mean turns?" in line, line
    assert "SHOW TABLES" in line, line
    # a notebook user reads the magic's option, not the Python argument
    assert "--allow-files" in line, line


def test_a_misspelled_column_names_the_column_meant(duck):
    line = _error(duck, "%lash sql SELECT outcom FROM turns")
    assert line.startswith("SQL error: Binder Error: "), line
    assert '"outcome"' in line, line  # DuckDB's candidate, which the first line alone lost
    assert "DESCRIBE" in line, line


def test_the_hints_it_gives_run(duck):
    tables = duck.run_cell("%lash sql SHOW TABLES")
    assert "turns" in set(tables["name"])
    columns = duck.run_cell("%lash sql DESCRIBE turns")
    assert "outcome" in set(columns["column_name"])


def test_a_syntax_error_stays_one_line_and_the_store_keeps_its_turn(duck):
    line = _error(duck, "%lash sql SELEC * FROM turns")
    assert line.startswith('SQL error: Parser Error: syntax error at or near "SELEC"'), line
    assert duck.run_cell("%lash sql SELECT count(*) AS n FROM turns")["n"].tolist() == [1]
