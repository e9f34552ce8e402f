"""``%lash sessions`` of a store with no stored session and ``%lash tools`` of a session with
no tool say so above their empty table, naming the store or the session and what fills it, as
``%lash usage``, ``queue --df`` and ``graph --df`` do (ADR 199, 203). Before, each showed a
bare header: read as a failure, or as a store lost (a session opened but not yet turned is not
stored, so even the session in use is not listed). Assigned (``s = %lash sessions``), the
value is for code and nothing is printed.
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


@pytest.mark.slow  # a real kernel
def test_tools_of_a_session_with_no_tool_say_how_one_joins(tmp_path: Path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb")
        k.run("%lash open bare --store :memory:")
        shown = k.run("%lash tools")
        assigned = k.run("w = %lash tools")
        k.run("from lash_nb import tool\n\n@tool\ndef add(a: int, b: int) -> int:\n"
              "    '''Add two numbers.'''\n    return a + b")
        joined = k.run("%lash tools")
    assert shown.stdout == ("session 'bare' has no tools yet: a @tool function defined in the "
                            "notebook joins when %lash tools runs again, an MCP server's tools "
                            "with %lash mcp add\n")
    assert len(shown.widget_ids()) == 1  # the panel is still shown, below the line
    assert assigned.stdout == ""
    assert joined.stdout == "" and "<code>add</code>" in joined.data("text/html")[0]
