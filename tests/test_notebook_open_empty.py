"""``%lash open`` with an empty session name or store path opens nothing.

Before, ``%lash open ""`` opened the default session and ``--store ""`` the default file,
silently: an empty value is almost surely a mistake (a variable that came out empty), and
the turns that followed went to a file the user did not name. ``{name}`` in the session
name and the store path is a notebook variable, as in a query or a turn id (it named a file
``{path}``). Now an empty one is refused in one line that says what to write.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

BOUND = "len(get_ipython().magics_manager.registry['LashMagics'].ctx.bindings)"


@pytest.mark.slow  # a real kernel
def test_an_empty_session_name_or_store_path_opens_nothing(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0\npath = ''\nname = ''")
        for cell, says in [
            ('%lash open ""', "%lash open got an empty session name"),
            ("%lash open {name}", "%lash open got an empty session name"),
            ("%lash open s --store ''", "--store is empty"),
            ("%lash open s --store {path}", "--store is empty"),
            ('%lash open s --store="  "', "--store is empty"),
        ]:
            ex = k.execute(cell, stop_on_error=False)
            assert ex.status == "error", cell
            line = ex.stderr.strip()
            assert "\n" not in line, line
            assert line.startswith(f"UsageError: {says}"), (cell, line)
            assert "an empty variable?" in line and "e.g. " in line, line
        # nothing was opened or created
        assert k.run(f"print({BOUND})").stdout.strip() == "0"
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        # a variable that holds a path is used
        k.run("path = 'mine.duckdb'\nname = 'notes'")
        k.run("%lash open {name} --store {path}")
        assert (tmp_path / "mine.duckdb").is_file()
        assert k.run("print(list(get_ipython().magics_manager.registry['LashMagics']"
                     ".ctx.bindings))").stdout.strip() == "['notes']"
