"""``%lash sessions`` of a store with no stored session says so above its empty table, naming
the store and what fills it, as ``%lash usage``, ``queue --df`` and ``graph --df`` do
(ADR 199, 203). Before, it showed a bare header: read as a failure, or as a store lost (a
session opened but not yet turned is not stored, so the session in use is not listed either).
Assigned (``s = %lash sessions``), the empty frame is for code and nothing is printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from notebook_harness import KernelHarness

COLUMNS = ("['session_id', 'provider_id', 'model', 'turn_index', 'head_revision', "
           "'parent_session_id', 'updated_at']")


@pytest.mark.slow  # a real kernel
def test_sessions_of_an_empty_store_say_which_store_and_what_fills_it(tmp_path: Path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open notes")
        shown = k.run("%lash sessions")
        assigned = k.run("s = %lash sessions")
        frame = k.run("print(list(s.columns), len(s))").stdout
        k.run("%lash turn hello")
        after = k.run("%lash sessions")
        listed = k.run("print(list(_['session_id']))").stdout.strip()
        k.run("%lash open scratch --store :memory:")
        memory = k.run("%lash sessions")
    assert shown.stdout == ("no session is stored in 'lash.duckdb' yet: a session is stored "
                            "with its first turn (%%lash, %lash turn); the session in use is "
                            "'notes'\n")
    assert len(shown.data("text/html")) == 1  # the empty table is still shown, below the line
    assert assigned.stdout == "" and frame == f"{COLUMNS} 0\n"
    assert after.stdout == "" and listed == "['notes']"
    assert memory.stdout == ("no session is stored in memory yet: a session is stored with its "
                             "first turn (%%lash, %lash turn); the session in use is 'scratch'\n")
