"""The conformance suite run against deliberately broken stores: a third-party store author
relies on it failing where the store is wrong, naming what differed, and on it leaving no
store open behind a failed check (a DuckDB file lock, a PostgreSQL pool)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lash_nb._core.events import TurnActivity
from lash_nb._core.queue import QueueClaim
from lash_nb._store.base import Lease, LeaseBusy
from lash_nb._store.memory import MemoryStore
from lash_nb.testing.conformance import CHECKS


class CountingStore(MemoryStore):
    """A memory store that counts its closes (the opener counts the opens)."""

    closes = 0

    async def close(self) -> None:
        type(self).closes += 1
        await super().close()


class ForgetsClaims(CountingStore):
    """Hands a claimed batch out again: the claim is not remembered."""

    async def claim_queued_work(self, lease: Lease, **kw: Any) -> QueueClaim | None:
        claim = await super().claim_queued_work(lease, **kw)
        for row in self._batches.values():
            row.claim_id = None
        return claim


class ReversesEvents(CountingStore):
    async def load_events(self, session_id: str, turn_id: str | None = None) -> list[TurnActivity]:
        return list(reversed(await super().load_events(session_id, turn_id)))


class RefusesLeases(CountingStore):
    async def try_acquire_lease(self, session_id: str, owner_id: str,
                                ttl_ms: int = 30_000) -> Lease | LeaseBusy:
        return LeaseBusy(session_id, "someone-else", 2**62)


def _run(check: str, store_type: type[CountingStore], *, forgets_on_reopen: bool = False,
         ) -> tuple[pytest.ExceptionInfo[AssertionError], int]:
    """Run one check; (what it raised, stores opened). Closes are on ``store_type``."""
    opened = 0
    shared = store_type()

    def opener() -> MemoryStore:
        nonlocal opened
        opened += 1
        return store_type() if forgets_on_reopen else shared

    store_type.closes = 0
    with pytest.raises(AssertionError) as info:
        asyncio.run(CHECKS[check](opener))
    return info, opened


def _failing_statement(info: pytest.ExceptionInfo[AssertionError], check: str) -> str:
    """The statement of the check's own frame that raised (not a helper's)."""
    entries = [e for e in info.traceback if e.name == check]
    assert entries, f"{check} is not on the traceback"
    return str(entries[-1].statement)


@pytest.mark.parametrize(("check", "store_type", "forgets", "message", "statement"), [
    ("claimed_batch_is_not_claimed_twice", ForgetsClaims, False,
     "second claim, same generation: expected None", '"second claim, same generation"'),
    ("events_round_trip_in_order", ReversesEvents, False,
     "all events in order: expected [TurnActivity(", '"all events in order"'),
    ("reopened_store_shows_same_graph_and_ledger", CountingStore, True,
     "", "assert full is not None and path is not None"),
    ("a_committed_config_patch_survives_a_reopen", CountingStore, True,
     "", "assert got is not None"),
    ("parent_session_is_recorded_durably", CountingStore, True, "", "assert got is not None"),
])
def test_a_check_fails_at_the_statement_the_broken_rule_reaches(
        check: str, store_type: type[CountingStore], forgets: bool, message: str,
        statement: str) -> None:
    info, opened = _run(check, store_type, forgets_on_reopen=forgets)
    assert str(info.value).startswith(message)
    assert statement in _failing_statement(info, check)
    assert store_type.closes == opened


def test_a_check_that_fails_before_its_reopen_closes_every_store_it_opened() -> None:
    """A store that never grants a lease fails every check at its first lease; each
    check has closed what it opened (the checks that reopen used to leave the first store
    open when they failed before the reopen)."""
    left_open: dict[str, tuple[int, int]] = {}
    for check in CHECKS:
        info, opened = _run(check, RefusesLeases)
        assert "expected to acquire the lease on" in str(info.value), check
        if RefusesLeases.closes != opened:
            left_open[check] = (opened, RefusesLeases.closes)
    assert left_open == {}


def _admit_before_adr_148(c: Any, *, revision: int | None, missing_anchors: bool = False,
                          **kw: Any) -> Any:
    """The admission rule as it was before ADR 0148: a missing session counted as revision
    0 (a head conflict, on which the runtime reloaded and recreated it), and nothing
    looked at the nodes a commit hangs from."""
    from lash_nb._errors import HeadRevisionConflict
    from lash_nb._store.admission import admit

    if revision is None and c.expected_head_revision and c.lease is not None:
        raise HeadRevisionConflict(f"session {c.session_id!r} head moved to 0")
    return admit(c, revision=revision, missing_anchors=False, **kw)


def test_a_store_that_lets_a_deleted_session_be_recreated_fails_the_kit(monkeypatch) -> None:
    """A third-party store that counts a deleted session as revision 0 (the runtime then
    reloads the empty store and recreates the session with only the handle's new turns)
    fails the ADR 0148 check, at the refusal it expected."""
    import lash_nb._store.memory as memory

    monkeypatch.setattr(memory, "admit", _admit_before_adr_148)
    check = "a_commit_on_a_session_deleted_or_recreated_elsewhere_is_refused"
    info, opened = _run(check, CountingStore)
    assert "the next turn on a deleted session" in str(info.value)
    assert "HeadRevisionConflict" in str(info.value)
    assert CountingStore.closes == opened


def test_a_store_that_appends_onto_a_recreated_session_fails_the_kit(monkeypatch) -> None:
    """A store that refuses a deleted session but never looks at the nodes a commit hangs
    from lets the old handle append under a leaf the new ``s1`` does not hold."""
    import lash_nb._store.memory as memory
    from lash_nb._store.admission import admit

    def no_anchors(c: Any, **kw: Any) -> Any:
        return admit(c, **{**kw, "missing_anchors": False})

    monkeypatch.setattr(memory, "admit", no_anchors)
    check = "a_commit_on_a_session_deleted_or_recreated_elsewhere_is_refused"
    info, opened = _run(check, CountingStore)
    assert str(info.value) == ("the next turn on a session deleted and created anew: expected "
                               "SessionDeleted")
    assert CountingStore.closes == opened
