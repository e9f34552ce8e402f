"""The commit admission rule, written once for every store.

Every store's ``commit`` reads, under its own lock or transaction, what the rule needs (the
session's head revision, the hash already stored for the commit's turn id, the live lease
row, the claim holding each batch the commit completes) and calls :func:`admit` before it
writes anything. The checks run in this order, each with one message for every store:

1. idempotency stamp: the same turn id with the same hash is a duplicate (the store returns
   the stored result); another hash raises ``TurnCommitConflict``. A turn's *start* (a
   progress commit) under a turn id the session already committed raises it too: a re-run
   under a taken id would write its user message, and its final commit would then be
   answered as the duplicate of the earlier turn and write nothing, leaving the runtime's
   graph ahead of the store (a deviation from lash, ADR 0134);
2. held lease: a commit without a lease raises ``SessionExecutionLeaseExpired`` (lash
   ``session_execution_lease_contract``: session-head commits need the lease; an idempotent
   replay, step 1, does not); the commit's lease must still be the stored one (same token and fencing
   number: nobody released it or took the session over; its expiry does not matter to the
   holder, docs/adr/0014), else ``SessionExecutionLeaseLost``;
3. the session is still the one the commit continues (ADR 0148): a commit that expects a
   head revision above 0 of a session the store no longer has raises ``SessionDeleted``
   (deleted since the handle read it; without this the runtime's reload took the empty
   store as its view and recreated the session holding only its new turns); an appending
   commit whose graph hangs from nodes the stored session lacks (its leaf, its first
   node's parent: :func:`anchors`) raises it too (deleted and created anew, or replaced
   whole, by another handle: its history is not this handle's);
4. head revision: ``expected_head_revision`` (when given) must be the stored head, else
   ``HeadRevisionConflict``;
5. claim ownership: every completed batch must still be held by the commit's claim, else
   ``ClaimSuperseded``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import (
    ClaimSuperseded,
    HeadRevisionConflict,
    SessionDeleted,
    SessionExecutionLeaseExpired,
    SessionExecutionLeaseLost,
    TurnCommitConflict,
    TurnIdTaken,
)
from .base import RuntimeCommit, lease_is_held


@dataclass(frozen=True)
class LeaseRow:
    """The stored lease of a session, as the store read it."""

    token: str | None
    fencing: int
    expires_at_ms: int


class Admission(enum.Enum):
    ADMIT = "admit"
    DUPLICATE = "duplicate"  # the same turn committed with the same hash: return it as is


def admit(c: RuntimeCommit, *, revision: int | None, prior_hash: str | None,
          lease: LeaseRow | None, now_ms: int,
          held_claims: Mapping[str, str | None], started_committed: bool = False,
          missing_anchors: bool = False) -> Admission:
    """Check ``c`` against what the store read; raise the first failed check's error.

    ``revision`` is None when the session is not stored; ``prior_hash`` is the commit hash
    stored for ``c.turn``'s turn id (None: not committed yet); ``started_committed``: the
    session already committed ``c.turn_started``'s turn id (a terminal row, not an open one);
    ``held_claims`` maps each batch id the commit completes to the claim id holding it now
    (missing: the batch is gone); ``missing_anchors``: the stored session lacks one of
    :func:`anchors` of ``c``."""
    sid = c.session_id
    if c.turn is not None and revision is not None and prior_hash is not None:
        if prior_hash == c.turn.commit_hash:
            return Admission.DUPLICATE
        raise TurnCommitConflict(
            f"turn {c.turn.turn_id!r} of session {sid!r} was already committed with different "
            "content; use a new turn id")
    if started_committed and c.turn is None and c.turn_started is not None:
        raise TurnIdTaken(
            f"turn id {c.turn_started.turn_id!r} is already taken in session {sid!r} (a turn "
            "was committed under it); nothing was written: run the turn with a new turn id, "
            "or without one")
    if c.lease is None:
        raise SessionExecutionLeaseExpired(
            f"a commit to session {sid!r} needs the session execution lease; acquire it with "
            "store.try_acquire_lease(session_id, owner_id) and pass it in the RuntimeCommit")
    if not (lease is not None and lease_is_held(c.lease, lease.token, lease.fencing)):
        raise lease_lost(sid)
    if revision is None and c.expected_head_revision:
        raise SessionDeleted(sid, elsewhere="deleted")
    if revision is not None and missing_anchors and c.replace_graph is None:
        raise SessionDeleted(sid, elsewhere="recreated")
    current = revision or 0
    if c.expected_head_revision is not None and c.expected_head_revision != current:
        raise HeadRevisionConflict(
            f"session {sid!r} head moved to {current} (expected {c.expected_head_revision}); "
            "reopen the session and retry")
    for claim in c.completed_claims:
        for bid in claim.batch_ids:
            if held_claims.get(bid) != claim.claim_id:
                raise ClaimSuperseded(
                    f"queued batch {bid!r} is no longer held by claim {claim.claim_id!r}")
    return Admission.ADMIT


def anchors(c: RuntimeCommit, stored_leaf: str | None = None) -> list[str]:
    """The node ids an appending commit takes as already stored: its leaf and the parents
    of its nodes, unless the commit brings them itself. A store whose session lacks one
    holds another graph than the one this commit continues (``missing_anchors``).
    ``stored_leaf``, the stored head's own leaf, is not one: the session ends there by the
    store's own word, so a commit hanging from it continues this session even when the host's
    retention removed that node's row (``tombstone_nodes`` then ``vacuum``); node ids are
    fresh, so a session created anew never has the old handle's leaf as its leaf."""
    if c.replace_graph is not None:
        return []
    brought = {n.node_id for n in c.append_nodes}
    if stored_leaf is not None:
        brought.add(stored_leaf)
    wanted = [n.parent_node_id for n in c.append_nodes]
    wanted.append(c.leaf_node_id)
    return list(dict.fromkeys(i for i in wanted if i is not None and i not in brought))


def lease_lost(session_id: str) -> SessionExecutionLeaseLost:
    return SessionExecutionLeaseLost(
        f"the execution lease on session {session_id!r} was taken over or released; the "
        "commit was not written; reopen the session and run again")


def completed_batch_ids(c: RuntimeCommit) -> list[str]:
    return [b for claim in c.completed_claims for b in claim.batch_ids]
