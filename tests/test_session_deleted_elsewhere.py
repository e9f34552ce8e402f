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


def _rows_of(store, sid: str) -> dict[str, int]:
    """How many rows each of the store's tables holds for ``sid`` (every table with a
    ``session_id`` column, found in the store's own catalogue)."""
    tables = sorted(str(t) for t in store.query(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = "
        "'session_id' AND table_schema NOT IN ('information_schema', 'pg_catalog')")["table_name"])
    assert {"sessions", "graph_nodes", "execution_leases"} <= set(tables)
    counts = {t: int(store.query(f"SELECT count(*) AS n FROM {t} WHERE session_id = "
                                 f"'{sid}'")["n"].iloc[0]) for t in tables}
    return {t: n for t, n in counts.items() if n}


@pytest.mark.parametrize("kind", [k for k in STORE_KINDS if k != "memory"])
def test_a_refused_turn_on_a_deleted_session_leaves_no_row_behind(kind, tmp_path, request):
    """The refused turn took the session's lease again to commit: its lease row must not
    outlive the refusal, a deleted session leaves no row in any table (ADR 0148)."""
    async def body():
        store = store_for(kind, tmp_path, request)
        core = echo_core(store)
        a = await core.session("s").open()
        await a.turn("first").run()
        assert "execution_leases" in _rows_of(store, "s")
        await store.delete_session("s")
        assert _rows_of(store, "s") == {}
        for text in ("second", "third"):
            with pytest.raises(SessionDeleted, match="was deleted"):
                await a.turn(text).run()
            assert _rows_of(store, "s") == {}
        fresh = await core.session("s").open_fresh()  # the id is free to start anew
        await fresh.turn("anew").run()
        assert texts(fresh) == ["anew", "echo: anew"]
        await core.close()
    run(body())


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_forgetting_a_lease_deletes_its_row_only_where_nothing_else_needs_its_fencing(
        kind, tmp_path, request):
    """``forget_lease`` (the refused turn's release) deletes the row of a session that is
    not stored and has no queued work; a stored session, or one with queued work (whose
    claims carry the lease's generation), keeps it released: the next lease's fencing goes
    on from it."""
    from lash_nb._store.base import RuntimeCommit
    from lash_nb.testing.conformance import draft, node

    async def body():
        store = store_for(kind, tmp_path, request)
        gone = await store.try_acquire_lease("gone", "a")
        await store.forget_lease(gone)
        assert (await store.try_acquire_lease("gone", "b")).fencing == 1  # a new row
        kept = await store.try_acquire_lease("kept", "a")
        await store.commit(RuntimeCommit("kept", kept, append_nodes=(node("n", None, "x"),),
                                         leaf_node_id="n"))
        await store.forget_lease(kept)
        assert (await store.try_acquire_lease("kept", "b")).fencing == 2
        await store.enqueue(draft("queued", "work"))
        queued = await store.try_acquire_lease("queued", "a")
        await store.forget_lease(queued)
        assert (await store.try_acquire_lease("queued", "b")).fencing == 2
        await store.close()
    run(body())
