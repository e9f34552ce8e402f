"""Notebook A has session ``s`` open on a DuckDB file; another process deletes ``s`` (or
deletes it and starts a new ``s``). A's next turn is refused in one line naming what
happened and what to do; nothing is written and nothing stored is lost (ADR 0148)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import test_notebook_magics
from IPython.core.error import UsageError

sh = test_notebook_magics.sh  # the IPython shell fixture, shared

pytestmark = pytest.mark.slow

OTHER = textwrap.dedent("""
    import asyncio, sys
    from lash_nb import LashCore
    from lash_nb.providers import FunctionProvider
    from lash_nb.stores import DuckDBStore

    async def main(path, mode):
        store = DuckDBStore(path, lock_timeout_s=120)
        await store.delete_session("s")
        if mode == "recreate":
            provider = FunctionProvider(lambda r: "theirs: " + r.messages[-1].text(), kind="function")
            core = LashCore.builder().provider(provider).model("m").store(store).build()
            b = await core.session("s").open()
            await b.turn("their question").run()
            await core.close()
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


def other_process(path, mode: str) -> None:
    subprocess.run([sys.executable, "-c", OTHER, str(path), mode], check=True, timeout=120)


def rows(sh, sql: str) -> list:
    return sh.run_cell(f"%lash sql {sql}").values.tolist()


def test_a_turn_after_another_process_deleted_the_session_is_refused(sh, tmp_path):
    path = tmp_path / "shared.duckdb"
    sh.run_cell(f"%config LashMagics.store = '{path}'")
    sh.run_cell("%lash open s")
    sh.run_cell("%lash turn first")
    sh.run_cell("%lash open keep")
    sh.run_cell("%lash turn kept")
    sh.run_cell("%lash open s")
    other_process(path, "delete")
    with pytest.raises(UsageError) as e:
        sh.run_cell("%lash turn second")
    line = str(e.value)
    assert "\n" not in line
    assert "session 's' was deleted from the store" in line
    assert "nothing was written" in line
    assert "%lash open s --fresh" in line
    assert rows(sh, "SELECT count(*) FROM sessions WHERE session_id = 's'") == [[0]]
    assert rows(sh, "SELECT count(*) FROM graph_nodes WHERE session_id = 's'") == [[0]]
    assert rows(sh, "SELECT count(*) FROM graph_nodes WHERE session_id = 'keep'") == [[2]]
    sh.run_cell("%lash open s --fresh")  # what the line says to do
    sh.run_cell("%lash turn anew")
    assert rows(sh, "SELECT count(*) FROM graph_nodes WHERE session_id = 's'") == [[2]]


def test_a_turn_after_another_process_recreated_the_session_does_not_append_to_it(sh, tmp_path):
    path = tmp_path / "shared.duckdb"
    sh.run_cell(f"%lash open s --store {path}")
    sh.run_cell("%lash turn mine")
    other_process(path, "recreate")
    with pytest.raises(UsageError, match=r"deleted from the store and created anew.*%lash open s"):
        sh.run_cell("%lash turn mine again")
    contents = rows(sh, "SELECT content FROM graph_nodes WHERE session_id = 's' ORDER BY created_at")
    assert len(contents) == 2 and "their question" in contents[0][0]
    assert not any("mine" in c[0] for c in contents)
