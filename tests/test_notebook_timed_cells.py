"""``%%time`` / ``%time`` / ``%%capture`` around a ``%lash`` line.

A data scientist times a turn with ``%%time`` above ``%lash turn ...``. These magics run their
body themselves, without awaiting it; the ``%lash`` line had already been rewritten into an
``await`` for the cell, so the user got ``SyntaxError: 'await' outside function`` (``%%time``,
``%time``) or ``RuntimeError: This event loop is already running`` (``%%capture``), about
code they never wrote, and no turn ran. In a kernel a turn needs to be awaited (Stop, the
interrupt), so there the line is now refused in one line that says what to do; in a shell
without an event loop (terminal IPython) the turn runs, timed.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from notebook_harness import KernelHarness, lash_shell

REFUSED = ("UsageError: %lash cannot run inside %%time, %time, %%timeit or %%capture in a "
           "kernel: they run the line without awaiting it; run %lash in a cell of its own "
           "(the turn's record shows how long it took)")


@pytest.mark.slow
def test_a_lash_line_under_time_or_capture_in_a_kernel_is_refused_in_one_line(tmp_path):
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open t --store t.duckdb")
        for cell in ("%%time\n%lash turn timed hello",
                     "%%time\nfor i in range(2):\n    %lash turn timed {i}",
                     "%time r = %lash turn timed line"):
            ex = k.execute(cell, timeout=60, stop_on_error=False)
            assert (ex.status, ex.stderr.strip()) == ("error", REFUSED), cell
        k.execute("%%capture cap\n%lash turn captured", timeout=60, stop_on_error=False)
        shown = k.run("print(cap.stdout + cap.stderr)").stdout
        assert REFUSED.split(": ", 1)[1] in shown
        rows = k.run("%lash sql SELECT count(*) AS n FROM turns").data("text/plain")
        assert rows and rows[-1].split()[-1] == "0"  # nothing ran half-way


def test_a_lash_line_under_time_in_a_terminal_shell_runs_the_turn(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch, "%lash open t --store t.duckdb") as sh:
        sh.run_cell("%%time\n%lash turn timed hello")
        sh.run_cell("%time r = %lash turn timed line")
        assert str(sh.user_ns["r"].outcome) == "finished: assistant_message"
        n = sh.run_cell("%lash sql SELECT count(*) AS n FROM turns")["n"].tolist()
        assert n == [2]


def test_refusal_is_a_usage_error_not_a_syntax_error():
    from lash_nb._notebook.extension import refuse_unawaited

    with pytest.raises(UsageError) as info:
        refuse_unawaited("turn hi")
    assert f"UsageError: {info.value}" == REFUSED


def test_another_cell_magics_body_is_left_as_typed(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch) as sh:
        sh.run_cell("%%writefile notes.md\nask with:\n%lash turn hello\n")
    assert (tmp_path / "notes.md").read_text() == "ask with:\n%lash turn hello\n"
