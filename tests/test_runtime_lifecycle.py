"""Session lifecycle: clone / release, close, park / resume, session_execution_owner_id.

Each test names the lash test it mirrors (``crates/lash/src/tests/core_session_builder.rs``).
"""

from __future__ import annotations

import asyncio
import gc

import pytest
from lifecycle_support import STORE_KINDS, echo_core, run, store_for, texts

from lash_nb import LashCore
from lash_nb.errors import SessionDeleted, SessionExecutionBusy, SessionStillInUse
from lash_nb.providers import FunctionProvider
from lash_nb.stores import MemoryStore


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_park_then_resume_preserves_session_transcript(kind, tmp_path, request):
    """lash ``park_then_resume_preserves_session_transcript``: park flushes and closes, resume
    shows the same transcript and takes another turn on top of it."""
    async def body():
        core = echo_core(store_for(kind, tmp_path, request))
        s = await core.session("parked").open()
        await s.turn("hello").run()
        parked = await s.park()
        assert parked.session_id == "parked"
        assert s.closed
        resumed = await core.resume(parked)
        assert texts(resumed) == ["hello", "echo: hello"]
        await resumed.turn("again").run()
        assert texts(resumed) == ["hello", "echo: hello", "again", "echo: again"]
        reopened = await core.session("parked").open()
        assert texts(reopened) == ["hello", "echo: hello", "again", "echo: again"]
        await core.close()
    run(body())


def test_park_flushes_a_session_that_never_committed():
    """lash park: the flush commits when ``head_revision`` is None (nothing stored yet), so a
    parked session exists in the store even without a turn."""
    async def body():
        store = MemoryStore()
        core = echo_core(store)
        s = await core.session("empty").open()
        assert await store.load_session("empty") is None
        parked = await s.park()
        stored = await store.load_session("empty")
        assert stored is not None and stored.meta.head_revision == 1
        assert parked.head_revision == 1
        resumed = await core.resume(parked)
        assert texts(resumed) == []
    run(body())


def test_park_with_a_live_handle_reports_session_still_in_use():
    """lash ``park_with_a_live_handle_reports_session_still_in_use``: a live clone makes park
    (and close) refuse; once the clone is released, the sole handle parks cleanly."""
    async def body():
        core = echo_core(MemoryStore())
        s = await core.session("busy").open()
        await s.turn("one").run()
        clone = s.clone()
        with pytest.raises(SessionStillInUse, match="another handle"):
            await s.park()
        with pytest.raises(SessionStillInUse, match="release"):
            await s.close()
        assert not s.closed and not clone.closed  # the refusal changed nothing
        await clone.turn("two").run()  # the clone is the same open: same transcript
        assert texts(s) == ["one", "echo: one", "two", "echo: two"]
        clone.release()
        parked = await s.park()
        assert clone.closed  # parking consumed the open, every handle of it
        assert texts(await core.resume(parked))[-1] == "echo: two"
    run(body())


def test_a_dropped_clone_no_longer_holds_the_session():
    """lash ``park_with_a_live_handle_reports_session_still_in_use`` (``drop(live_clone)``):
    a clone the program dropped (garbage collected) stops counting."""
    async def body():
        core = echo_core(MemoryStore())
        s = await core.session("dropped").open()
        clone = s.clone()
        del clone
        gc.collect()
        await s.close()
        assert s.closed
    run(body())


def test_close_of_the_only_handle_of_a_clone_pair_works_from_either_side():
    """The original handle may be released and the clone close the open (lash: any clone may
    be the last owner)."""
    async def body():
        core = echo_core(MemoryStore())
        s = await core.session("either").open()
        clone = s.clone()
        s.release()
        await clone.close()
        assert s.closed and clone.closed
    run(body())


def test_park_refuses_while_a_turn_is_running():
    """lash: an in-flight turn holds the runtime like a clone (park comment in
    ``park_with_a_live_handle_reports_session_still_in_use``)."""
    async def body():
        entered, finish = asyncio.Event(), asyncio.Event()

        async def slow(request):
            entered.set()
            await finish.wait()
            return "done"

        core = LashCore.builder().provider(FunctionProvider(slow, kind="function")).model("m") \
            .store(MemoryStore()).build()
        s = await core.session("running").open()
        task = asyncio.ensure_future(s.turn("go").run())
        await asyncio.wait_for(entered.wait(), 30)
        with pytest.raises(SessionStillInUse, match="running turn"):
            await s.park()
        finish.set()
        await asyncio.wait_for(task, 30)
        parked = await s.park()
        assert texts(await core.resume(parked)) == ["go", "done"]
    run(body())


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_resume_refuses_a_session_deleted_while_parked(kind, tmp_path, request):
    """lash HEAD (``core_session_builder.rs``, the "deleted-while-parked" case): resume of a
    session deleted while parked fails ``SessionDeleted`` instead of handing back an empty
    session under the old id."""
    async def body():
        store = store_for(kind, tmp_path, request)
        core = echo_core(store)
        s = await core.session("gone").open()
        await s.turn("hi").run()
        parked = await s.park()
        await store.delete_session("gone")
        with pytest.raises(SessionDeleted, match="open_fresh"):
            await core.resume(parked)
        await core.close()
    run(body())


def test_resume_takes_only_what_park_returned():
    async def body():
        core = echo_core(MemoryStore())
        with pytest.raises(TypeError, match=r"session\.park"):
            await core.resume("s")
    run(body())


def test_session_execution_owner_id_makes_two_opens_one_lease_owner():
    """lash ``SessionBuilder::session_execution_owner_id``: handles opened with one owner id
    are the same lease owner (a retried workflow step re-enters its own lane); without it,
    each open is its own owner and a held lease keeps the other out."""
    async def body():
        store = MemoryStore()
        core = echo_core(store)
        a = await core.session("lane").session_execution_owner_id("workflow-7/run").open()
        b = await core.session("lane").session_execution_owner_id("workflow-7/run").open()
        other = await core.session("lane").open()
        assert a.owner_id == b.owner_id == "workflow-7/run"
        held = await a.writer.acquire_lease()
        again = await b.writer.acquire_lease()  # same owner: re-acquires, no busy
        assert (again.token, again.fencing) == (held.token, held.fencing)
        with pytest.raises(SessionExecutionBusy):
            await other.writer.acquire_lease()
        await store.release_lease(again)
        await other.turn("after").run()
        assert texts(other) == ["after", "echo: after"]
    run(body())


def test_session_execution_owner_id_refuses_an_empty_id():
    core = echo_core(MemoryStore())
    with pytest.raises(ValueError, match=r"non-empty"):
        core.session("s").session_execution_owner_id("  ")
