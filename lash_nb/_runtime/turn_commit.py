"""A turn's commits: the progress commit that makes its input durable, the terminal commit,
and what happens when the lease was taken over meanwhile (docs/adr/0014).

Written against :class:`TurnBooks`, what a turn has recorded (``TurnRun`` is one), so the
driver (``turn_run.py``) stays a driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

from .._core import events as ev
from .._core import turn_machine as tm
from .._core.cancel import CancellationToken
from .._core.events import TurnActivity
from .._core.graph import SessionNode
from .._core.queue import QueueClaim
from .._core.records import Message, ToolCallRecord, TurnInput, TurnIssue, TurnResult
from .._core.usage import LlmCallRecord, TokenLedgerEntry, TokenUsage, merge_ledger
from .._errors import (
    ClaimSuperseded,
    HeadRevisionConflict,
    LashError,
    SessionExecutionLeaseLost,
    TurnCommitConflict,
    TurnNotSaved,
)
from .._store.base import Lease, ReadScope, TurnRecord, TurnStart, UsageDelta, hints_empty_queue
from .._store.waits import unwatch_wait_stop, watch_wait_stop
from .attachments import input_message
from .parts import SessionParts
from .turn_records import (
    branch_before_attempts,
    branch_before_unanswered,
    commit_hash,
    is_attempt,
    now_ms,
    queued_attempt_batch,
    usage_deltas,
)
from .writer import LeaseKeeper


class TurnBooks(Protocol):
    """What a turn recorded, as its commits read it."""

    parts: SessionParts
    turn_id: str
    model: str
    activities: list[TurnActivity]
    llm_calls: list[LlmCallRecord]
    tool_calls: list[ToolCallRecord]
    new_nodes: list[SessionNode]
    persisted_nodes: int
    errors: list[TurnIssue]
    cumulative: TokenUsage
    estimated_usage: TokenUsage
    children_usage: list[TokenLedgerEntry]
    claims: list[QueueClaim]
    outcome_emitted: bool
    input: TurnInput
    attempt_prefix: str | None

    def emit_independent(self, event: ev.TurnEvent) -> None: ...

    def append_message(self, message: Message) -> None: ...


async def commit_progress(run: TurnBooks, keeper: LeaseKeeper) -> None:
    """The turn's user message made durable before any model call (its attachments' bytes
    first): CAS on the head revision; on a conflict, reload from the store and retry once,
    unless the graph must be rewritten whole (never merged over another process' commit)."""
    parts, w = run.parts, run.parts.writer
    attachments = run.input.attachments()
    if attachments:  # the bytes first, then the commit that references them
        await parts.blobs.put(parts.store, attachments)
    for attempt in (1, 2):
        await _branch_before_unanswered(parts, keeper.lease, run.attempt_prefix)
        branch_before_attempts(parts.state.graph, run.turn_id, run.attempt_prefix)
        run.append_message(input_message(run.input.items or ()))
        # turns another process left open close with this commit: they count (ADR 212)
        st, closing = parts.state, [t for t in parts.state.unclosed_turns if t != run.turn_id]
        counted = st.turn_index
        st.turn_index = counted + len(closing)
        try:
            await w.commit(w.commit_base(
                keeper.lease, run.new_nodes,
                turn_started=TurnStart(run.turn_id, now_ms()), close_open_turns=True,
            ))
            st.unclosed_turns = ()
        except HeadRevisionConflict as err:
            st.turn_index = counted
            if parts.state.graph.replace_required:  # e.g. opened fresh: never merge
                raise HeadRevisionConflict(
                    f"session {parts.state.session_id!r} was changed by another process "
                    "after this handle read it, and this turn would rewrite its graph; "
                    "nothing was written: open it again (fresh to start over, or without "
                    "fresh to continue its history)") from err
            if attempt == 2:
                raise
            await w.reload()
            run.new_nodes = []
            continue
        except BaseException:
            st.turn_index = counted
            raise
        run.persisted_nodes = len(run.new_nodes)
        return


async def _branch_before_unanswered(parts: SessionParts, lease: Lease,
                                    own_prefix: str | None) -> None:
    """The path ends with an attempt of queued work: if its batch is still queued (a worker's
    stop handed it back, or its process died), leave that attempt aside: its prompt is not
    answered yet (one queue read, only then; docs/adr/0165)."""
    st = parts.state
    leaf_turn = st.graph.leaf_turn_id()
    if (queued_attempt_batch(leaf_turn) is None or leaf_turn == st.answered_turn_id
            or (own_prefix is not None and is_attempt(leaf_turn, own_prefix))):
        return  # not queued work, this handle's run that completed it, or this batch's own
    store = parts.store
    if hints_empty_queue(store) and store.surely_nothing_queued(lease):
        return
    queued = await store.list_queued_work(parts.session_id, include_claimed=True)
    branch_before_unanswered(st.graph, {b.batch_id for b in queued})


async def commit_terminal(run: TurnBooks, keeper: LeaseKeeper, result: TurnResult,
                      assemble_lost: Callable[[], TurnResult]) -> TurnResult:
    """The final commit. A lease that merely expired is still held and commits (docs/adr/
    0014). If another owner took the session over meanwhile, the turn re-acquires the lease
    when it is free again and commits only if nobody committed in between (the head
    revision and its claims are unchanged); otherwise it ends ``stopped: runtime_error``
    (``lease_lost``), uncommitted, and its open turn row is closed by whoever commits on
    the session next (this turn itself when it can take the lease)."""
    conflicts = (HeadRevisionConflict, ClaimSuperseded, TurnCommitConflict)
    for attempt in (1, 2):
        try:
            await final_commit(run, keeper.lease, result)
            return result
        except SessionExecutionLeaseLost:
            if attempt == 2 or not await keeper.recover():
                break
        except conflicts as e:
            if not keeper.replaced:
                if not await _lease_still_held(keeper):
                    raise _taken_over(run) from e
                raise
            break  # someone committed meanwhile (maybe closing this turn as process_lost)
    fresh = keeper.lease if keeper.replaced else None
    if not any(i.code == "lease_lost" for i in run.errors):
        run.errors.append(TurnIssue("runtime", tm.LEASE_LOST, "lease_lost", True))
    run.claims = []  # not completed: whoever holds the session runs them
    lost = assemble_lost()
    run.emit_independent(ev.TurnOutcomeEvent(lost.outcome.to_json(), run.turn_id))
    run.parts.state.stale = True
    if fresh is not None:
        await _close_lost_turn(run, fresh, lost)
    return lost

async def _lease_still_held(keeper: LeaseKeeper) -> bool:
    """The turn's lease is still the stored one (a renewal of it passes)."""
    try:
        keeper.lease = await keeper.writer.store.renew_lease(keeper.lease,
                                                             keeper.writer.lease_ttl_ms)
    except SessionExecutionLeaseLost:
        return False
    return True


def _taken_over(run: TurnBooks) -> TurnCommitConflict:
    """A final commit refused because another process took the session while this turn
    could not reach the store (its lease ran out during a long wait for its file, ADR 185)
    and committed to it: said in the user's terms, not as the store's conflict."""
    sid = run.parts.session_id
    return TurnCommitConflict(
        f"another process committed to session {sid!r} while this turn could not reach the "
        "store and its lease ran out (it closed this turn unanswered); this answer was not "
        "written over its turns: run the prompt again to store it")


@contextlib.contextmanager
def waits_end_on_stop(token: CancellationToken) -> Iterator[None]:
    """While the final commit runs: a Stop or an interrupt asked from now on (the turn may
    have been stopped before: that ask is not this one) ends the store's wait for disk space
    or for its file (docs/adr/0181)."""
    asks = token.asks
    mark = watch_wait_stop(lambda: token.last_ask if token.asks > asks else None)
    try:
        yield
    finally:
        unwatch_wait_stop(mark)


def not_saved(run: TurnBooks, refused: BaseException, result: TurnResult) -> TurnNotSaved:
    """The error of a turn whose final commit the store refused: it carries the answer."""
    return TurnNotSaved(run.turn_id, refused, result, tuple(run.activities),
                        getattr(refused, "stopped_by", None))


async def _close_lost_turn(run: TurnBooks, lease: Lease, result: TurnResult) -> None:
    """Record the terminal row (with its usage and calls, not its messages) of a turn
    whose work could not be committed, if its progress commit left it open."""
    p = run.parts
    try:
        await p.writer.reload()
        persisted = await p.store.load_session(p.session_id, ReadScope.ACTIVE_PATH)
        if persisted is None or run.turn_id not in persisted.open_turn_ids:
            return
        res = await p.writer.commit(p.writer.commit_base(
            lease, (), turn=turn_record(run, result), usage_deltas=usage_rows(run),
            llm_calls=tuple((run.turn_id, c) for c in run.llm_calls),
            tool_calls=tuple((run.turn_id, c) for c in run.tool_calls),
            events=tuple(run.activities)))
        object.__setattr__(result, "head_revision", res.head_revision)
    except (LashError, OSError):
        p.state.stale = True  # the next commit on the session closes it (ADR 4)
    finally:
        await p.writer.release_quietly(lease)

def turn_record(run: TurnBooks, result: TurnResult) -> TurnRecord:
    return TurnRecord(
        run.turn_id, result.outcome.kind, result.outcome.reason,
        result.execution.started_at_ms, result.execution.duration_ms,
        commit_hash(run.turn_id, result, run.new_nodes), result.to_json(),
    )

def usage_rows(run: TurnBooks) -> tuple[UsageDelta, ...]:
    children = tuple([UsageDelta(run.turn_id, e.source, e.model, e.usage)
                      for e in run.children_usage])  # lash ChildUsage: rolled up (children.py)
    if run.cumulative.total() <= 0:
        return children
    return usage_deltas(run.turn_id, run.model, run.cumulative, run.estimated_usage) + children

async def final_commit(run: TurnBooks, lease: Lease, result: TurnResult) -> None:
    p = run.parts
    if not run.outcome_emitted:
        run.outcome_emitted = True
        run.emit_independent(ev.TurnOutcomeEvent(result.outcome.to_json(), run.turn_id))
    deltas = usage_rows(run)
    record = turn_record(run, result)
    res = await p.writer.commit(p.writer.commit_base(
        lease, run.new_nodes[run.persisted_nodes:],
        turn_index=p.state.turn_index + 1,
        turn=record,
        usage_deltas=deltas,
        llm_calls=tuple([(run.turn_id, c) for c in run.llm_calls]),
        tool_calls=tuple([(run.turn_id, c) for c in run.tool_calls]),
        events=tuple(run.activities),
        completed_claims=tuple(run.claims),
        release_lease=True,
    ))
    st = p.state
    st.turn_index += 1
    st.unclosed_turns = tuple(t for t in st.unclosed_turns if t != run.turn_id)
    if deltas:  # a turn without usage leaves the ledger as it is
        st.set_ledger(merge_ledger(st.ledger, (TokenLedgerEntry(d.source, d.model, d.usage)
                                                for d in deltas)))
    object.__setattr__(result, "head_revision", res.head_revision)
    if run.claims:
        st.answered_turn_id = run.turn_id
        p.feed.queue_changed("completed", tuple(b for c in run.claims for b in c.batch_ids))
    p.feed.committed()
