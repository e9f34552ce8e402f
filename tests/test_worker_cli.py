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
