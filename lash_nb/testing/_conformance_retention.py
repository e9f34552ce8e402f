"""Store conformance checks for child sessions, retention (tombstones, delete, vacuum) and
attachment blobs; registered in ``conformance.CHECKS``."""

from __future__ import annotations

import hashlib

from .._core.attachments import AttachmentRef
from .._core.graph import SessionNode
from .._core.queue import QueuedWorkDraft
from .._core.records import Message, Part, PartKind, Role
from .._store.base import (
    ReadScope,
    RuntimeCommit,
    SessionStore,
    stores_blobs,
)
from .._store.retention import StoreMaintenance, maintains
from ._conformance_kit import (
    AFTER,
    EXCL,
    OWNER_B,
    StoreOpener,
    _claim_texts,
    _eq,
    _lease,
    _opened,
    _texts,
    _two_sessions,
    draft,
    node,
)


# ---------------------------------------------------------------------------- children + retention
async def parent_session_is_recorded_durably(opener: StoreOpener) -> None:
    """lash ``SessionBuilder::parent``: the relation is part of the session row; a later
    commit without a parent keeps it."""
    async with _opened(opener) as store:
        lease = await _lease(store, "child")
        await store.commit(RuntimeCommit("child", lease, parent_session_id="root",
                                         append_nodes=(node("a", None, "hi"),), leaf_node_id="a"))
        await store.commit(RuntimeCommit("child", lease, append_nodes=(node("b", "a", "more"),),
                                         leaf_node_id="b"))
    async with _opened(opener) as store:
        got = await store.load_session("child")
        assert got is not None
        _eq(got.meta.parent_session_id, "root", "parent after reopen")
        _eq({m.session_id: m.parent_session_id for m in await store.list_sessions()},
            {"child": "root"}, "listed with its parent")


def _keeper(store: SessionStore) -> StoreMaintenance | None:
    return store if maintains(store) else None


async def tombstoned_nodes_leave_reads_until_vacuum(opener: StoreOpener) -> None:
    """lash ``StoreMaintenance``: a tombstoned node is gone from every read at once, its row
    stays until ``vacuum()``, which removes exactly the tombstoned rows of every session."""
    a, b, c = node("a", None, "hi"), node("b", "a", "old branch"), node("c", "b", "old reply")
    d = node("d", "a", "new branch", turn_id="t2")
    async with _opened(opener) as store:
        keeper = _keeper(store)
        if keeper is None:  # an optional capability of third-party stores
            return
        lease, other = await _lease(store, "s1"), await _lease(store, "s2")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(a, b, c), leaf_node_id="c"))
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(d,), leaf_node_id="d"))
        await store.commit(RuntimeCommit("s2", other, append_nodes=(node("x", None, "keep"),),
                                         leaf_node_id="x"))
        _eq(await keeper.tombstone_nodes("s1", ["b", "c", "nope"]), 2, "tombstoned count")
        _eq(await keeper.tombstone_nodes("s1", ["b"]), 0, "a tombstone is marked once")
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        path = await store.load_session("s1", ReadScope.ACTIVE_PATH)
        assert full is not None and path is not None
        _eq([n.node_id for n in full.nodes], ["a", "d"], "full graph without tombstones")
        _eq([n.node_id for n in path.nodes], ["a", "d"], "active path untouched")
    async with _opened(opener) as store:
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        assert full is not None
        _eq([n.node_id for n in full.nodes], ["a", "d"], "tombstones after reopen")
        keeper = _keeper(store)
        assert keeper is not None
        report = await keeper.vacuum()
        _eq(report.removed_node_count, 2, "vacuum removes the tombstoned rows")
        _eq((await keeper.vacuum()).removed_node_count, 0, "a second vacuum finds nothing")
        full = await store.load_session("s1", ReadScope.FULL_GRAPH)
        kept = await store.load_session("s2", ReadScope.FULL_GRAPH)
        assert full is not None and kept is not None
        _eq([n.node_id for n in full.nodes], ["a", "d"], "live nodes after vacuum")
        _eq(full.nodes[1], d, "a live node after vacuum")
        _eq([n.node_id for n in kept.nodes], ["x"], "other session after vacuum")
        _eq(full.meta.head_revision, 2, "vacuum is no commit")
        lease = await _lease(store, "s1")
        await store.commit(RuntimeCommit("s1", lease, append_nodes=(node("e", "d", "go on"),),
                                         leaf_node_id="e", expected_head_revision=2))
        path = await store.load_session("s1", ReadScope.ACTIVE_PATH)
        assert path is not None
        _eq([n.node_id for n in path.nodes], ["a", "d", "e"], "commits go on after vacuum")


async def deleting_a_session_takes_its_queued_work_and_nothing_else(opener: StoreOpener) -> None:
    """Deleting a session removes its pending and claimed batches and its lease; another
    session keeps its graph and queue; the id can start over from revision 0."""
    async with _opened(opener) as store:
        la, _ = await _two_sessions(store)
        await store.enqueue(draft("s1", "claimed"))
        await store.enqueue(draft("s2", "kept"))
        _eq(await _claim_texts(store, la), ["claimed"], "s1 claims")
        await store.enqueue(draft("s1", "pending"))
        await store.delete_session("s1")
        _eq(await store.list_queued_work("s1", include_claimed=True), [], "s1 queue gone")
        _eq(await store.sessions_with_ready_work(), ["s2"], "only s2 has work")
        _eq(await _texts(store, "s2"), ["kept"], "s2 queue intact")
        got = await store.load_session("s2")
        assert got is not None
        _eq([n.node_id for n in got.nodes], ["b"], "s2 graph intact")
        fresh = await _lease(store, "s1", OWNER_B)  # no lease row survives the delete
        res = await store.commit(RuntimeCommit("s1", fresh, expected_head_revision=0,
                                               append_nodes=(node("n", None, "again"),),
                                               leaf_node_id="n"))
        _eq(res.head_revision, 1, "a deleted id starts over")


def _blob(data: bytes, media_type: str) -> tuple[AttachmentRef, bytes]:
    return AttachmentRef(hashlib.sha256(data).hexdigest(), media_type, len(data)), data


async def blobs_are_stored_once_and_pruned_when_unreferenced(opener: StoreOpener) -> None:
    """For a store that keeps attachment bytes (``BlobStore``); others pass trivially."""
    (a, da), (b, db), (c, dc) = (_blob(b"GIF89a-one", "image/gif"),
                                 _blob(b"%PDF-two", "application/pdf"),
                                 _blob(b"three", "text/plain"))
    async with _opened(opener) as store:
        blobs = store if stores_blobs(store) else None
        if blobs is None:
            return
        await blobs.put_blobs([(a, da), (b, db)])
        await blobs.put_blobs([(a, da), (c, dc)])  # a again: no second row, no error
        _eq(await blobs.get_blobs([a.id, b.id, c.id, "0" * 64]),
            {a.id: da, b.id: db, c.id: dc}, "stored blobs by id, the unknown one left out")
        lease = await _lease(store, "s1")
        msg = Message("n1", Role.USER, (Part("n1.p0", PartKind.ATTACHMENT, "[gif]", attachment=a),))
        await store.commit(RuntimeCommit("s1", lease, leaf_node_id="n1", append_nodes=(
            SessionNode("n1", None, "message", msg, None, 1_700_000_000_000, "t1"),)))
        queued = {"items": [{"type": "attachment", "source": {
            "source": "stored", "attachment_ref": b.to_json()}}]}
        await store.enqueue(QueuedWorkDraft("s1", None, AFTER, EXCL, None, 0,
                                            (("turn_input", queued),)))
        _eq(await blobs.prune_blobs(), 0, "young blobs are kept (a turn may be about to commit)")
        _eq(await blobs.prune_blobs(older_than_s=-1), 1, "only the unreferenced blob goes")
        _eq(sorted(await blobs.get_blobs([a.id, b.id, c.id])), sorted([a.id, b.id]),
            "blobs a graph node or a queued batch names are kept")
    async with _opened(opener) as store:
        reopened = store if stores_blobs(store) else None
        assert reopened is not None
        _eq(await reopened.get_blobs([a.id]), {a.id: da}, "a reopened store has the bytes")
