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


def test_the_usage_chart_of_a_store_with_no_turns_says_no_data(tmp_path, monkeypatch):
    """``%lash usage --plot`` before any turn: JupyterLab shows the Vega-Lite part first, which
    drew an empty frame with a legend and no word; now the chart is the SVG saying so."""
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%lash open trip --store t.duckdb")
        data, _meta = sh.run_cell("%lash usage --plot")._repr_mimebundle_()
        assert "application/vnd.vegalite.v5+json" not in data
        assert ">no data</text>" in data["image/svg+xml"]
        assert data["text/plain"] == "<tokens per turn: no data>"
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell("%lash turn hello")
        data, _meta = sh.run_cell("%lash usage --plot")._repr_mimebundle_()
        assert "application/vnd.vegalite.v5+json" in data  # one bar now: the chart as before
        assert data["text/plain"] == "<tokens per turn: 1 bars>"
    finally:
        sh.close()


def test_usage_of_a_session_with_no_turns_says_so_above_its_empty_table(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.chdir(tmp_path)
    sh = ReraisingShell()
    try:
        sh.run_cell("%load_ext lash_nb._notebook.extension")
        sh.run_cell("%lash open trip --store t.duckdb")
        capsys.readouterr()
        for cell in ("%lash usage", "%lash usage --by turn", "%lash usage --cost"):
            assert sh.run_cell(cell).empty
            said = capsys.readouterr().out  # the line, then the shell's echo of the table
            assert said.splitlines()[0] == ("no usage in session 'trip' yet: a turn's tokens "
                                            "show here once it has run (%%lash, %lash turn)"), said
        sh.run_cell("df = %lash usage")  # assigned: the frame alone
        assert sh.user_ns["df"].empty and "no usage" not in capsys.readouterr().out
        sh.run_cell("%config LashMagics.offline_delay_s = 0")
        sh.run_cell("r = %lash turn hello")
        capsys.readouterr()
        assert len(sh.run_cell("%lash usage")) == 1
        assert "no usage" not in capsys.readouterr().out
    finally:
        sh.close()
