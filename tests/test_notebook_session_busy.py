"""A turn refused because another notebook (or a worker) runs the session's turn says so in
a notebook's words.

Two notebooks on one store file and one session: a turn typed in the second while the first
streams is refused (the session execution lease). The line read "already running a turn in
another runtime (held by vm:20932:db0029bb2); wait for it to finish, or
session.enqueue(...) the input": an owner id and a Python API call, in a notebook whose verb
for that is ``%lash enqueue``.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from notebook_harness import lash_shell


def _another_process_runs_alpha(sh):
    """Session alpha's execution lease, taken by a process on another host (a worker's turn)."""
    sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                "b = _magics().ctx.bindings['alpha']\n"
                "await b.session.store.try_acquire_lease('alpha', 'otherhost:20932:ab12', "
                "600_000)")


def test_a_turn_refused_for_a_turn_running_elsewhere_names_the_process_and_the_magic(
        tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch, "%lash open alpha --store same.duckdb") as sh:
        _another_process_runs_alpha(sh)
        with pytest.raises(UsageError) as err:
            sh.run_cell("%lash turn three from A")
    line = str(err.value)
    assert "\n" not in line
    assert "pid 20932 on host otherhost" in line and "another notebook or a worker" in line
    assert "%lash enqueue" in line and "session.enqueue" not in line
    assert "another runtime" not in line


def test_a_lash_cell_refused_beside_a_workers_turn_offers_the_spelling_that_queues_it(
        tmp_path, monkeypatch):
    """Beside a worker running session ``alpha``'s turn, a ``%%lash`` cell is refused (lash
    refuses a foreground turn on a busy session: ``SessionExecutionBusy``, it never waits for
    the session). The line names the exact first line that queues the same cell instead, with
    the session; the user changes the first line as told and the prompt is queued for the
    worker, whole. Before, the line said ``%lash enqueue PROMPT``: a line magic, which cannot
    hold a cell's lines."""
    prompt = "summarise the table\nthen list the three largest rows"
    with lash_shell(tmp_path, monkeypatch, "%lash open alpha --store same.duckdb") as sh:
        _another_process_runs_alpha(sh)
        with pytest.raises(UsageError) as err:
            sh.run_cell(f"%%lash\n{prompt}")
        line = str(err.value)
        told = line.split("`")[1]  # the first line it offers, between backquotes
        sh.run_cell(f"{told}\n{prompt}")
        sh.run_cell("queued = await b.session.store.list_queued_work('alpha')")
        queued = sh.user_ns["queued"]
    assert "\n" not in line
    assert told == "%%lash enqueue --session alpha"
    assert len(queued) == 1, queued
    assert queued[0].items[0].payload == {"items": [{"type": "text", "text": prompt}]}
