"""``python -m lash_nb worker`` started by hand from a terminal: the mistakes a person makes
when moving a notebook's tools into a worker get one line that says what to do, and a store
path that does not exist (a typo) is said out loud instead of drained silently forever."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lash_nb.__main__ import main


@pytest.mark.parametrize(("spec", "said"), [
    ("no_such_tools_module:tools",
     "--tools no_such_tools_module:tools: no module named 'no_such_tools_module'"),
    ("json:weather", "--tools json:weather: module 'json' has no attribute 'weather'"),
])
def test_a_tools_spec_that_does_not_import_is_one_line(spec: str, said: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        main(["worker", "--store", "lash.duckdb", "--tools", spec, "--exit-when-idle", "0.1"])
    text = str(err.value)
    assert text.startswith(said)
    assert "PYTHONPATH" in text and "\n" not in text
    assert os.listdir(tmp_path) == []  # refused before anything was opened or created


def test_a_worker_on_a_store_path_that_does_not_exist_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["worker", "--store", "lash.duckb", "--exit-when-idle", "0.1"]) == 0
    err = capsys.readouterr().err
    assert ("lash.duckb did not exist: this worker created an empty store there; work "
            "queued in another store does not reach it (check --store)") in err
    # a second start finds the file and says nothing about it
    assert main(["worker", "--store", "lash.duckb", "--exit-when-idle", "0.1"]) == 0
    assert "did not exist" not in capsys.readouterr().err


@pytest.mark.parametrize(("store", "said"), [
    ("notes.txt", "error: notes.txt is not a DuckDB database"),
    ("sub", "error: sub is a folder; pass a file path such as sub/lash.duckdb"),
    ("missing/lash.duckdb",
     "error: folder {tmp}/missing does not exist; create it or choose another path"),
])
def test_a_store_the_worker_cannot_open_is_one_line_and_exit_status_2(
        store: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes, not a store\n")
    (tmp_path / "sub").mkdir()
    assert main(["worker", "--store", store, "--exit-when-idle", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(said.format(tmp=tmp_path)), err
    assert len(err.strip().splitlines()) == 1, err  # no traceback, no "created an empty store"
    assert (tmp_path / "notes.txt").read_text() == "my notes, not a store\n"


@pytest.mark.parametrize(("option", "said"), [
    (["--concurrency", "0"], "--concurrency must be at least 1"),
    (["--max-attempts", "0"], "--max-attempts must be at least 1"),
    (["--poll", "0"], "--poll must be more than 0 seconds"),
    (["--grace", "-1"], "--grace must be 0 seconds or more"),
])
def test_a_worker_option_out_of_range_is_refused_in_one_line(
        option: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as err:
        main(["worker", "--store", "lash.duckdb", *option, "--exit-when-idle", "0.1"])
    assert err.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(said)
    assert os.listdir(tmp_path) == []  # refused before anything was opened or created


def test_the_demo_on_a_file_that_is_not_a_store_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes, not a store\n")
    assert main(["demo", "--store", "notes.txt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: notes.txt is not a DuckDB database") and err.count("\n") == 1
    assert (tmp_path / "notes.txt").read_text() == "my notes, not a store\n"
