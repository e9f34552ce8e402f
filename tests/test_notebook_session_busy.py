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


def test_a_turn_refused_for_a_turn_running_elsewhere_names_the_process_and_the_magic(
        tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch, "%lash open alpha --store same.duckdb") as sh:
        sh.run_cell("from lash_nb._notebook.extension import _magics\n"
                    "b = _magics().ctx.bindings['alpha']\n"
                    "await b.session.store.try_acquire_lease('alpha', 'otherhost:20932:ab12', "
                    "600_000)")
        with pytest.raises(UsageError) as err:
            sh.run_cell("%lash turn three from A")
    line = str(err.value)
    assert "\n" not in line
    assert "pid 20932 on host otherhost" in line and "another notebook or a worker" in line
    assert "%lash enqueue" in line and "session.enqueue" not in line
    assert "another runtime" not in line
