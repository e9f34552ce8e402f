"""A session deleted (or deleted and created anew) by another handle or process while this
handle has it open: the next turn of this handle is refused in one line, nothing is written,
and nothing already stored is lost (ADR 0148). Before, the next turn reloaded an empty graph
and silently recreated the session with only its own new turns."""

from __future__ import annotations

import pytest
from lifecycle_support import STORE_KINDS, echo_core, run, store_for, texts

from lash_nb.errors import SessionDeleted


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_turn_on_a_session_deleted_elsewhere_is_refused_and_writes_nothing(kind, tmp_path, request):
    async def body():
        store = store_for(kind, tmp_path, request)
        core = echo_core(store)
        a = await core.session("s").open()
        await a.turn("first").run()
        await a.turn("second").run()
        await store.delete_session("s")  # another notebook's %lash sessions --delete s --yes
        with pytest.raises(SessionDeleted, match=r"session 's' was deleted from the store"):
            await a.turn("third").run()
        assert await store.load_session("s") is None  # nothing written, no resurrection
        with pytest.raises(SessionDeleted, match="was deleted"):  # and it stays refused
            await a.turn("fourth").run()
        assert await store.load_session("s") is None
        fresh = await core.session("s").open_fresh()  # what the message says to do
        await fresh.turn("anew").run()
        assert texts(fresh) == ["anew", "echo: anew"]
        await core.close()
    run(body())


@pytest.mark.parametrize("kind", STORE_KINDS)
@pytest.mark.parametrize("theirs", [["theirs"], ["theirs", "theirs too"]], ids=["same-revision", "more"])
def test_a_turn_on_a_session_deleted_and_created_anew_elsewhere_is_refused(kind, theirs, tmp_path,
                                                                          request):
    """The other process created a new ``s`` with as many commits as this handle saw (the
    head revision alone matches), or with more (the usual sign of another writer's turns,
    after which the runtime reloads): this handle must not append onto, or adopt, that history."""
    async def body():
        store = store_for(kind, tmp_path, request)
        core = echo_core(store)
        a = await core.session("s").open()
        await a.turn("mine").run()
        await store.delete_session("s")
        other = echo_core(store)
        b = await other.session("s").open()
        for text in theirs:
            await b.turn(text).run()
        stored = await store.load_session("s")
        assert stored is not None
        assert (stored.meta.head_revision == a.state.head_revision) == (len(theirs) == 1)
        with pytest.raises(SessionDeleted, match=r"deleted from the store and created anew"):
            await a.turn("mine again").run()
        reopened = await other.session("s").open()
        assert texts(reopened) == [t for text in theirs for t in (text, f"echo: {text}")]
        await core.close()
        await other.close()
    run(body())
