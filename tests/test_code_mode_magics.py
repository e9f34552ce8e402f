"""%lash open --mode code / --share through an IPython shell that re-raises: bad input is one
line that says what to do, and nothing starts."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from notebook_harness import ReraisingShell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.store = ':memory:'")
    yield shell
    shell.close()


def test_share_without_code_mode_says_to_add_it(sh):
    sh.run_cell("import pandas as pd\ndf = pd.DataFrame({'a': [1]})")
    with pytest.raises(UsageError, match="add --mode code"):
        sh.run_cell("%lash open s1 --share df")


def test_share_of_a_name_that_is_neither_variable_nor_file_says_so(sh):
    with pytest.raises(UsageError, match="'nosuch', which is neither a notebook variable nor a file"):
        sh.run_cell("%lash open s1 --mode code --share nosuch")


def test_share_of_a_variable_that_is_not_a_dataframe_is_refused(sh):
    sh.run_cell("numbers = [1, 2, 3]")
    with pytest.raises(UsageError, match="share a pandas DataFrame or the path of an existing file"):
        sh.run_cell("%lash open s1 --mode code --share numbers")


def test_code_mode_open_shows_the_mode_and_the_shared_names_without_starting_a_kernel(
        sh, tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    sh.run_cell("import pandas as pd\nsales = pd.DataFrame({'a': [1]})")
    session = sh.run_cell("s = %lash open s1 --mode code --share sales,notes.csv")
    s = sh.user_ns["s"] if session is None else session
    code = s.parts.code_mode
    assert [name for name, _ in code.shared()] == ["sales", "notes.csv"]
    assert not code.sandbox.started  # the kernel starts with the first turn
