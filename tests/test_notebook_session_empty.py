"""``--session ""`` (an empty notebook variable) on any verb refuses; it does not use the session
in use.

Before, ``%lash usage --session {name}`` read a session literally named ``{name}`` (opened it,
empty, in the store) and ``--session ""`` was the session in use: ``%lash turn --session ""``
ran a turn in the bound session, ``%lash stop --session ""`` stopped it, ``%lash sessions
--delete ""`` said "no session ''". ``%lash open ""`` was already refused (ADR 186); now every
verb that takes a session name reads ``{name}`` as a notebook variable and refuses an empty
one in one line, with nothing opened, run, queued or deleted.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from notebook_harness import KernelHarness

BINDINGS = "list(get_ipython().magics_manager.registry['LashMagics'].ctx.bindings)"
STORED = ("print(sorted((s.session_id, s.turn_index) for s in await get_ipython()"
          ".magics_manager.registry['LashMagics'].ctx.bindings['work'].core.list_sessions()))")

# every verb that takes --session, as a user would write it
CELLS = [
    "%lash usage --session {name}",
    '%lash usage --session ""',
    "%lash tools --session {name}",
    "%lash graph --session {name}",
    "%lash replay --session {name}",
    "%lash prompt --session {name}",
    '%lash prompt --session "" --set "be terse"',
    "%lash mcp list --session {name}",
    "%lash turn --session {name} hello",
    "%%lash --session {name}\nhello",
    "%lash enqueue --session {name} later",
    "%lash queue --session {name} --df",
    "%lash drain --session {name}",
    "%lash stop --session {name}",
    "%lash stop --session=",
]


@pytest.mark.slow  # a real kernel
def test_an_empty_session_name_is_refused_by_every_verb(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0\nname = ''")
        k.run("%lash open work --store s.duckdb")
        k.run("%lash turn hi")
        before = k.run(STORED).stdout.strip()
        assert before == "[('work', 1)]"
        for cell in CELLS:
            ex = k.execute(cell, stop_on_error=False)
            assert ex.status == "error", (cell, ex.stdout)
            line = ex.stderr.strip() or ex.error
            assert "\n" not in line, (cell, line)
            assert line.startswith("UsageError: --session is empty (an empty variable?)"), (
                cell, line)
            assert "e.g. --session analysis" in line and "'work'" in line, line
        for cell in ('%lash sessions --delete "" --yes', "%lash sessions --delete {name} --yes"):
            ex = k.execute(cell, stop_on_error=False)
            assert ex.status == "error", cell
            line = ex.stderr.strip() or ex.error
            assert line.startswith("UsageError: --delete is empty (an empty variable?)"), line
        # from a function (the magic called, not awaited): refused there, not in a task
        ex = k.execute("def f():\n    return get_ipython().run_line_magic('lash', "
                       "'usage --session {name}')\nf()", stop_on_error=False)
        assert ex.status == "error", ex.stdout
        assert "background task" not in ex.stdout, ex.stdout
        assert "--session is empty (an empty variable?)" in ex.stderr + ex.error
        # nothing opened, run, queued or deleted
        assert k.run(f"print({BINDINGS})").stdout.strip() == "['work']"
        assert k.run(STORED).stdout.strip() == before
        queued = k.run("print(len(await get_ipython().magics_manager.registry['LashMagics']"
                       ".ctx.bindings['work'].session.queued_work()))")
        assert queued.stdout.strip() == "0"
        # {name} is the notebook variable, as in %lash open
        k.run("name = 'other'")
        k.run("%lash turn --session {name} hello")
        assert k.run(STORED).stdout.strip() == "[('other', 1), ('work', 1)]"
        assert "{name}" not in k.run(f"print({BINDINGS})").stdout


def test_the_worker_refuses_an_empty_session_or_store(tmp_path) -> None:
    """``python -m lash_nb worker --session "$NAME"`` with NAME unset drained every session."""
    for args, says in [
        (["worker", "--store", "s.duckdb", "--session", ""], "--session is empty"),
        (["worker", "--store", "", "--exit-when-idle", "0"], "--store is empty"),
        (["demo", "--store", ""], "--store is empty"),
        (["prune-blobs", ""], "store is empty"),
        (["migrate-store", " "], "path is empty"),
    ]:
        done = subprocess.run([sys.executable, "-m", "lash_nb", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert says in last and "empty variable?" in last, (args, done.stderr)
        assert list(tmp_path.iterdir()) == [], args
