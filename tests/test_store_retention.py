"""Retention as a user meets it: tombstone a branch, delete a session, vacuum, and a DuckDB
file that gets its space back without breaking a process waiting for it.

lash pins: ``StoreMaintenance`` (tombstone_nodes, vacuum: spec §4.8), ``LashCore::delete_session``
(``delete_session via the core wipes factory-backed state; a reopen is empty``, invariant 15).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest
from lifecycle_support import STORE_KINDS, echo_core, run, store_for, texts

from lash_nb._store.base import ReadScope
from lash_nb.errors import ConfigurationError, SessionExecutionBusy, SessionStillInUse
from lash_nb.stores import DuckDBStore, MemoryStore


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_tombstoned_branch_is_gone_from_reads_and_vacuum_removes_it(kind, tmp_path, request):
    """lash ``StoreMaintenance::tombstone_nodes`` then ``vacuum``: the abandoned branch leaves
    the graph at once (this handle and a reopen), vacuum deletes exactly its rows, and the
    conversation goes on."""
    async def body():
        core = echo_core(store_for(kind, tmp_path, request))
        s = await core.session("s").open()
        await s.turn("first").run()
        first_reply = s.state.graph.leaf_node_id
        await s.turn("abandoned").run()
        abandoned = [n.node_id for n in s.read_view().nodes()][2]
        s.branch_to(first_reply)
        await s.turn("second").run()
        assert len(s.state.graph.nodes()) == 6
        assert await s.tombstone_branch(abandoned) == 2  # the prompt and its reply
        assert len(s.state.graph.nodes()) == 4
        again = await core.session("s").open()
        assert [n.node_id for n in again.state.graph.nodes()] == \
            [n.node_id for n in s.state.graph.nodes()]
        assert texts(again) == ["first", "echo: first", "second", "echo: second"]
        report = await core.vacuum()
        assert report.removed_node_count == 2
        await s.turn("third").run()
        assert texts(await core.session("s").open())[-1] == "echo: third"
        await core.close()
    run(body())


def test_tombstone_refuses_the_active_path_and_unknown_nodes():
    """The active path is never tombstoned (the next turn continues it); one line each."""
    async def body():
        core = echo_core(MemoryStore())
        s = await core.session("s").open()
        await s.turn("only").run()
        root = s.read_view().nodes()[0].node_id
        with pytest.raises(ConfigurationError, match=r"active path.*branch_to"):
            await s.tombstone_branch(root)
        with pytest.raises(ConfigurationError, match="no node 'nope'"):
            await s.tombstone_branch("nope")
        assert texts(await core.session("s").open()) == ["only", "echo: only"]
    run(body())


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_delete_session_wipes_it_with_its_queued_work_and_leaves_others(kind, tmp_path, request):
    """lash invariant 15 (``delete_session via the core ... a reopen is empty``): the deleted
    session's turns and queued work go, another session keeps everything."""
    async def body():
        core = echo_core(store_for(kind, tmp_path, request))
        keep = await core.session("keep").open()
        await keep.turn("mine").run()
        doomed = await core.session("doomed").open()
        await doomed.turn("bye").run()
        doomed.drainer.pause()
        await doomed.enqueue("later").send()
        await keep.close()
        await doomed.close()
        await core.delete_session("doomed")
        assert await core.store.list_queued_work("doomed", include_claimed=True) == []
        assert [m.session_id for m in await core.list_sessions()] == ["keep"]
        assert texts(await core.session("doomed").open()) == []
        assert texts(await core.session("keep").open()) == ["mine", "echo: mine"]
        await core.close()
    run(body())


def test_delete_refuses_an_open_session_and_a_running_turn():
    """A session in use is not deleted: an open handle in this process refuses with
    ``SessionStillInUse``; a lease held elsewhere (a turn running in another runtime)
    refuses with ``SessionExecutionBusy``. Nothing is removed either way."""
    async def body():
        store = MemoryStore()
        core = echo_core(store)
        s = await core.session("busy").open()
        await s.turn("hello").run()
        with pytest.raises(SessionStillInUse, match="close"):
            await core.delete_session("busy")
        await s.close()
        other = await store.try_acquire_lease("busy", "elsewhere:1:x")
        with pytest.raises(SessionExecutionBusy):
            await core.delete_session("busy")
        await store.release_lease(other)
        assert texts(await core.session("busy").open()) == ["hello", "echo: hello"]
    run(body())


def _big_session(store_path, n_turns):
    async def body():
        core = echo_core(DuckDBStore(store_path))
        big = await core.session("big").open()
        for i in range(n_turns):  # incompressible text: the file really grows
            await big.turn(f"{i} " + os.urandom(3000).hex()).run()
        small = await core.session("small").open()
        await small.turn("keep me").run()
        await small.enqueue("queued for later").send()
        await core.close()
    run(body())


async def _without_big(path):
    store = DuckDBStore(path)
    core = echo_core(store)
    await core.delete_session("big")
    return store, core


def test_vacuum_gives_a_duckdb_file_its_space_back(tmp_path):
    """DuckDB never shrinks a file; after deleting a big session, ``core.vacuum()`` swaps in a
    compact copy: the file is much smaller, what was kept reads the same (queued work and the
    enqueue sequence included) and a fresh process opens it."""
    path = str(tmp_path / "grow.duckdb")
    _big_session(path, 40)

    async def body():
        _, core = await _without_big(path)
        report = await core.vacuum()
        assert report.file_bytes_before is not None and report.file_bytes_after is not None
        assert report.file_bytes_after * 3 < report.file_bytes_before
        assert os.path.getsize(path) == report.file_bytes_after
        small = await core.session("small").open()
        assert texts(small) == ["keep me", "echo: keep me"]
        assert [b.text for b in await small.queued_work()] == ["queued for later"]
        small.drainer.pause()
        await small.enqueue("after vacuum").send()  # the enqueue sequence went on
        assert [b.text for b in await small.queued_work()] == ["queued for later", "after vacuum"]
        await small.turn("more").run()
        await core.close()
    run(body())
    assert not os.path.exists(path + ".lash-compact")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import asyncio
        from lash_nb.stores import DuckDBStore
        async def main():
            s = DuckDBStore({path!r})
            got = await s.load_session("small")
            print(len(got.nodes), [m.session_id for m in await s.list_sessions()])
            await s.close()
        asyncio.run(main())
    """)], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split("\n")[0] == "4 ['small']"


WAITER = """
import asyncio, sys
from lash_nb import LashCore
from lash_nb.providers import FunctionProvider
from lash_nb.stores import DuckDBStore

async def main():
    store = DuckDBStore(sys.argv[1], lock_timeout_s=240)
    core = (LashCore.builder().provider(FunctionProvider(lambda r: "ok", kind="function"))
            .model("m").store(store).build())
    s = await core.session("from-waiter").open()
    await s.turn("written while the file was compacted").run()
    await core.close()
    print("done")

asyncio.run(main())
"""


def test_vacuum_while_another_process_waits_for_the_file(tmp_path):
    """ADR 10/11: a process waiting in the file's line while the holder vacuums gets the
    file afterwards (the compact copy) and its turn is kept; nothing of either is lost."""
    path = str(tmp_path / "shared.duckdb")
    _big_session(path, 20)

    async def body():
        store, core = await _without_big(path)
        line = store._worker.line
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, path],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def vacuum_once_the_other_waits(con):
                # one job on the worker: the file stays ours until the copy is swapped in
                deadline = time.monotonic() + 240
                while not line.waiters() and waiter.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert line.waiters(), f"the other process never stood in line (exit {waiter.poll()})"
                return store._vacuum_job(con)

            report = await asyncio.wrap_future(store._worker.submit(vacuum_once_the_other_waits))
            out, err = await asyncio.to_thread(waiter.communicate, timeout=240)
        finally:
            if waiter.poll() is None:
                waiter.kill()
        assert waiter.returncode == 0, err
        assert out.strip() == "done"
        assert report.removed_node_count == 0
        got = await store.load_session("from-waiter")
        assert got is not None and len(got.nodes) == 2
        small = await core.session("small").open()
        assert texts(small) == ["keep me", "echo: keep me"]
        await core.close()
    run(body())


def test_vacuum_leaves_a_small_duckdb_store_as_it_is(tmp_path):
    """A compact copy of a small store is no smaller (DuckDB preallocates blocks): vacuum keeps
    the file, and the store goes on working on the same connection."""
    path = str(tmp_path / "small.duckdb")

    async def body():
        store = DuckDBStore(path)
        core = echo_core(store)
        s = await core.session("s").open()
        await s.turn("hello").run()
        opens = store.opens
        report = await core.vacuum()
        assert report.removed_node_count == 0
        assert report.file_bytes_after == report.file_bytes_before == os.path.getsize(path)
        assert store.opens == opens  # not swapped: the file was never closed
        await s.turn("again").run()
        assert texts(await core.session("s").open())[-1] == "echo: again"
        await core.close()
    run(body())


@pytest.mark.parametrize("vacuumed", [False, True], ids=["tombstoned", "vacuumed"])
@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_turn_goes_on_after_the_store_api_tombstoned_the_sessions_leaf(kind, vacuumed,
                                                                       tmp_path, request):
    """The user tombstoned the session's leaf with the store's own API
    (``store.tombstone_nodes``; ``tombstone_branch`` refuses the active path) and vacuumed.
    The session was neither deleted nor created anew: the next turn is not refused as such
    (ADR 0148). As in lash (appends parent on the runtime's leaf; the store keeps what the
    host's retention left), this handle's turn and a reopened handle's turn are stored."""
    async def body():
        store = store_for(kind, tmp_path, request)
        core = echo_core(store)
        s = await core.session("s").open()
        await s.turn("first").run()
        await s.turn("second").run()
        leaf = s.state.graph.leaf_node_id
        assert await store.tombstone_nodes("s", [leaf]) == 1
        if vacuumed:
            assert (await core.vacuum()).removed_node_count == 1
        await s.turn("third").run()
        stored = await store.load_session("s", ReadScope.FULL_GRAPH)
        assert stored is not None
        assert [n.message.text() for n in stored.nodes][-2:] == ["third", "echo: third"]
        assert leaf not in [n.node_id for n in stored.nodes]
        again = await core.session("s").open()
        assert texts(again)[-2:] == ["third", "echo: third"]
        await again.turn("fourth").run()
        assert texts(await core.session("s").open())[-2:] == ["fourth", "echo: fourth"]
        await core.close()
    run(body())
