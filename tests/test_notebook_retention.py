"""``%lash sessions --delete ID --yes`` as a hurried user meets it: the confirmation is
required, the session goes with its queued work, the others stay, a running turn refuses."""

from __future__ import annotations

import asyncio

import pytest
import test_notebook_magics
from IPython.core.error import UsageError

sh = test_notebook_magics.sh  # the IPython shell fixture, shared


def stored(sh):
    return sorted(sh.run_cell("%lash sessions")["session_id"])


def test_delete_needs_yes_and_then_removes_only_that_session(sh, tmp_path):
    """lash ``LashCore::delete_session``: the session, its turns and its queued work go; the
    other session keeps everything. Without --yes nothing is touched (one line)."""
    store = tmp_path / "nb.duckdb"
    sh.run_cell(f"%lash open keep --store {store}")
    sh.run_cell("%lash turn keep this")
    sh.run_cell(f"%lash open doomed --store {store}")
    sh.run_cell("%lash turn throw this away")
    sh.run_cell("%lash enqueue --id later queued for doomed")
    with pytest.raises(UsageError, match=r"^%lash sessions --delete 'doomed' .*add --yes"):
        sh.run_cell("%lash sessions --delete doomed")
    assert stored(sh) == ["doomed", "keep"]
    queued = sh.run_cell("%lash sql SELECT session_id FROM queued_work_batches")
    assert list(queued["session_id"]) == ["doomed"]
    with pytest.raises(UsageError, match="--yes confirms --delete"):
        sh.run_cell("%lash sessions --yes")
    sh.run_cell("%lash sessions --delete doomed --yes")
    assert stored(sh) == ["keep"]
    rows = sh.run_cell("%lash sql SELECT session_id FROM queued_work_batches")
    assert list(rows["session_id"]) == []
    kept = sh.run_cell("%lash sql SELECT count(*) AS n FROM graph_nodes WHERE session_id = 'keep'")
    assert int(kept["n"].iloc[0]) == 2
    r = sh.run_cell("r = %lash turn still here")
    assert sh.user_ns["r"].session_id == "keep" and r is None


def test_delete_refuses_a_session_running_a_turn(sh, tmp_path):
    """A session in use refuses deletion: while a turn of it holds the writer in this
    notebook, --delete --yes refuses in one line and the session stays."""
    from lash_nb._notebook import extension
    from lash_nb._notebook.verbs_retention import delete_session

    sh.run_cell(f"%lash open busy --store {tmp_path / 'busy.duckdb'}")
    sh.run_cell("%lash turn first")
    m = extension._magics()
    session = m.ctx.bindings["busy"].session

    async def while_a_turn_runs():
        async with session.writer.lock():  # what a running turn holds
            with pytest.raises(UsageError, match="running a turn in this notebook; %lash stop"):
                await delete_session(m, "busy", yes=True)

    asyncio.run(while_a_turn_runs())
    assert stored(sh) == ["busy"]
    assert "busy" in m.ctx.bindings


def test_closing_the_notebook_closes_its_stores_even_with_a_clone_alive(sh, tmp_path):
    """ADR 47: a clone the user kept makes ``session.close()`` refuse, but the kernel's own
    shutdown still closes the session's store (the DuckDB file is released, nothing lost)."""
    from lash_nb._notebook import extension
    from lash_nb.stores import DuckDBStore

    path = tmp_path / "clone.duckdb"
    sh.run_cell(f"%lash open cl --store {path}")
    sh.run_cell("%lash turn kept")
    m = extension._magics()
    twin = m.ctx.bindings["cl"].session.clone()
    kernel_store = m.ctx.bindings["cl"].core.store
    asyncio.run(m.ctx.close())
    assert twin.closed is False  # the open was not consumed: its other handle lives
    assert not kernel_store.holding_file  # but the store was closed: the file is released
    store = DuckDBStore(str(path))
    got = asyncio.run(store.load_session("cl"))
    assert got is not None and got.meta.turn_index == 1
    store.close_sync()
