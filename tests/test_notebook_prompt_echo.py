"""Changing the session prompt says what changed, once; ``%lash prompt`` shows the prompt.

Notebook 06 sets the intro and adds a guidance slot in one cell, as a user would: each
``%lash prompt --set`` / ``--add`` printed the whole rendered prompt, so the cell showed
the intro twice (after the set, and again inside the prompt printed after the add), and
a longer prompt once per change. Now each change is one line, and the whole prompt is
printed where it is asked for.
"""

from __future__ import annotations

import pytest
from notebook_harness import KernelHarness

INTRO = "You are a careful analyst."
RULE = "Round every number to two decimals."


@pytest.mark.slow  # a real kernel
def test_a_cell_that_sets_and_adds_prints_a_line_per_change_and_no_prompt_twice(tmp_path) -> None:
    with KernelHarness(cwd=str(tmp_path)) as k:
        k.run("%load_ext lash_nb\n%config LashMagics.offline_delay_s = 0")
        k.run("%lash open s --store p.duckdb")
        ex = k.run(f'%lash prompt --set "{INTRO}"\n'
                   f'%lash prompt --add "{RULE}" --slot guidance --title Numbers')
        lines = ex.stdout.splitlines()
        assert len(lines) == 2, ex.stdout  # one line per change
        assert ex.stdout.count(INTRO) <= 1 and ex.stdout.count(RULE) <= 1, ex.stdout
        assert "%lash prompt" in lines[0] and "%lash prompt" in lines[1]  # where to see it
        shown = k.run("%lash prompt").stdout
        assert shown == f"{INTRO}\n\n## Guidance\n\n### Numbers\n\n{RULE}\n", shown
        # assigned, a change still returns the prompt it made (and prints nothing)
        ex = k.run('p = %lash prompt --add "Name the test." --slot guidance --title Tests')
        assert ex.stdout == ""
        assert k.run("print(p.count('Name the test.'), p.startswith('You are'))"
                     ).stdout.strip() == "1 True"
        ex = k.run("%lash prompt --clear")
        assert len(ex.stdout.splitlines()) == 1 and INTRO not in ex.stdout, ex.stdout
