"""A user reads ``%lash graph`` after a turn that called a tool: the call's node names the tool
it called and the result's node the tool it came from, not bare arguments and output that
read as if the user had typed them."""

from __future__ import annotations

import pytest
from notebook_harness import lash_shell


@pytest.fixture
def sh(tmp_path, monkeypatch):
    with lash_shell(tmp_path, monkeypatch) as shell:
        yield shell


def test_the_graph_names_the_tool_a_turn_called(sh):
    sh.run_cell("from lash_nb import tool\n"
                "@tool\n"
                "def add(a: int, b: int) -> int:\n"
                "    '''Add two numbers.'''\n"
                "    return a + b\n")
    sh.run_cell("%lash open s1 --store t.duckdb")
    sh.run_cell("r = %lash turn --turn-id t1 please add a=2 b=3")
    tree = sh.run_cell("%lash graph")
    assert str(tree).splitlines() == [
        "session graph 's1': 4 node(s), no branches (● active path, ○ other branch)",
        "● user [t1] please add a=2 b=3",
        '● assistant [t1] call add {"a": 2, "b": 3}',
        "● user [t1] add returned: 5",
        "● assistant [t1] add returned 5.",
    ]
    sh.run_cell("from lash_nb._notebook.extension import _magics\nawait _magics().ctx.close()")
