"""``%lash graph`` on a session with no turns yet names the session it drew."""

from __future__ import annotations

from notebook_harness import ReraisingShell


def test_the_graph_of_a_new_session_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%lash open trip --store t.duckdb")
        sh.run_cell("g = %lash graph")
        assert repr(sh.user_ns["g"]).startswith("session graph 'trip': 0 node(s)")
    finally:
        sh.close()
