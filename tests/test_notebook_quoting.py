"""Quoted option values mean what a shell user means by them.

A data scientist writes ``--store "data/my notes.duckdb"`` or ``--store 'trip.duckdb'``; the
quotes delimit the value, they are not part of it. IPython's magic argument splitter keeps
them, so the store file was created with quote characters in its name (``'trip.duckdb'``),
session and turn ids carried quotes, and ``--id "k 1"`` failed with "No closing quotation".
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    yield shell
    shell.close()


def test_a_quoted_store_path_with_a_space_names_that_file(sh, tmp_path):
    (tmp_path / "data").mkdir()
    sh.run_cell('s = %lash open trip --store "data/my notes.duckdb"')
    sh.run_cell("%lash turn hello")
    assert sorted(p.name for p in (tmp_path / "data").glob("*.duckdb")) == ["my notes.duckdb"]
    assert not list(tmp_path.glob("*'*")) and not list(tmp_path.glob('*"*'))


def test_single_quoted_session_store_and_turn_id_lose_their_quotes(sh, tmp_path):
    sh.run_cell("s = %lash open 'trip' --store 'trip.duckdb'")
    sh.run_cell("r = %lash turn --turn-id 't-1' hello 'there'")
    assert sh.user_ns["s"].session_id == "trip"
    assert sh.user_ns["r"].turn_id == "t-1"
    assert (tmp_path / "trip.duckdb").exists()
    first = sh.user_ns["s"].read_view().messages()[0]
    assert first.text() == "hello 'there'"  # the prompt keeps its quotes


def test_a_quoted_enqueue_id_with_a_space_is_one_value(sh):
    sh.run_cell("%lash open q --store q.duckdb")
    sh.run_cell('b = %lash enqueue --id "k 1" say hi')
    sh.run_cell('again = %lash enqueue --id "k 1" say hi')
    assert sh.user_ns["b"].batch_id == sh.user_ns["again"].batch_id
    sh.run_cell("_q = %lash queue --df")
    assert list(sh.user_ns["_q"]["text"]) == ["say hi"]
    assert list(sh.user_ns["_q"]["source_key"]) == ["host:k 1"]


@pytest.mark.parametrize("line", ['%lash open trip --store "trip.duckdb',
                                  '%lash enqueue --id "k 1 say hi'])
def test_an_unclosed_quote_is_one_line_saying_what_to_do(sh, line):
    with pytest.raises(UsageError) as err:
        sh.run_cell(line)
    msg = str(err.value)
    assert "\n" not in msg and "quote" in msg and "close" in msg


def test_a_store_path_under_the_home_folder_is_found(sh, tmp_path, monkeypatch):
    """``--store ~/lash/trip.duckdb`` means the home folder, as in a shell."""
    home = tmp_path / "home"
    (home / "lash").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    sh.run_cell("s = %lash open trip --store ~/lash/trip.duckdb")
    sh.run_cell("%lash turn hello")
    assert (home / "lash" / "trip.duckdb").exists()
    assert not (tmp_path / "~").exists()
