"""A notebook that opened its session with the Python API, then asks a magic about it.

An agent engineer builds the agent in code (``LashCore.builder()...store("agent.duckdb")``,
``core.session("s1").open()``), runs turns, then types ``%lash sql SELECT ... FROM turns``. The
magics know only sessions opened with ``%lash open``, so the query ran on a ``default``
session in another file and came back empty; the line said so but not where the user's
turns were. Now it names the session opened in Python and the ``%lash open`` that binds it
(docs/adr/0201).
"""

from __future__ import annotations

import test_notebook_magics

sh = test_notebook_magics.sh  # the IPython shell fixture, shared


def test_a_magic_with_no_session_bound_names_the_session_opened_in_python(sh, tmp_path, capsys):
    path = tmp_path / "agent.duckdb"
    sh.run_cell("%config LashMagics.store = 'lash.duckdb'")  # the default, in the notebook's folder
    sh.run_cell(
        "from lash_nb import LashCore, run_sync\n"
        f"core = LashCore.builder().model('lash-offline').store({str(path)!r}).build()\n"
        "session = run_sync(core.session('s1').open())\n"
        "out = run_sync(session.turn('hello').run())\n")
    capsys.readouterr()
    sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")
    said = capsys.readouterr().out
    # named first: other tests of this process may have left sessions of their own open
    # (the line names three at most), and the one opened in the cell above is the one meant
    assert f"not bound: %lash open s1 --store {path}" in said, said
