"""A hurried user's odd text in a notebook prompt: the turn runs, is stored and is shown.

A lone surrogate reaches a prompt through ``{var}`` (text decoded with ``surrogateescape``, a
bad slice of UTF-16 data); the session cleans it where it enters (ADR 12), and the widget that
shows the prompt must not be the one thing that cannot encode it.
"""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output

from notebook_harness import ReraisingShell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell = ReraisingShell()
    shell.run_cell("%load_ext lash_nb._notebook.extension")
    shell.run_cell("%config LashMagics.offline_delay_s = 0")
    shell.run_cell("%lash open odd --store odd.duckdb --fresh")
    yield shell
    shell.close()


def _turn_inputs(sh) -> list[str]:
    sh.run_cell("_rows = %lash sql SELECT input->>'$.text' AS t FROM turns ORDER BY seq")
    return [str(t) for t in sh.user_ns["_rows"]["t"]]


@pytest.mark.parametrize("form", ["cell", "line"])
def test_a_lone_surrogate_in_a_prompt_variable_runs_the_turn_and_shows_it(sh, form):
    sh.user_ns["bad"] = b"caf\xff".decode("utf-8", "surrogateescape")  # 'caf\udcff'
    code = "%%lash\nrepeat this: {bad}" if form == "cell" else "r = %lash turn repeat this: {bad}"
    with capture_output() as cap:
        sh.run_cell(code)
    shown = "\n".join(o.data.get("text/plain", "") for o in cap.outputs)
    assert "repeat this: caf\ufffd" in shown
    assert not any("\udcff" in o.data.get("text/plain", "") for o in cap.outputs)
    sh.run_cell("_n = %lash sql SELECT count(*) AS n FROM turns WHERE outcome = 'finished'")
    assert int(sh.user_ns["_n"]["n"][0]) == 1
