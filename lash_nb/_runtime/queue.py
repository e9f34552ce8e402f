"""Enqueue, queued drains and the in-kernel drainer.

Theory of operation
- ``session.enqueue(input)`` stores a batch (``lash_nb._core.queue``); it never takes the
  writer lock, so it works while a turn runs. ``earliest_safe_boundary`` input enqueued while
  a turn runs is claimed by that turn at its next checkpoint; otherwise the batch waits for a
  drain.
- ``queued_turn().run()``: take the session lease (busy -> ``None``), apply every leading
  session command (each committed, never prompt text), then claim the next turn-work group
  (``Idle`` boundary) and run it as one turn whose final commit completes the batches.
  ``None`` when nothing ran. A turn that raises (or ends without completing its claim)
  abandons the claim with its error: one failed attempt. After ``max_batch_attempts``
  (default 3) the batch is parked ``failed`` and listed with its error; it is never retried
  forever. Two ends are not attempts (docs/adr/0158, 0159): a turn cut by a worker asked to stop
  (cancel origin ``worker_shutdown``) hands its batches back before its final commit, and a
  commit refused with ``SessionDeleted`` (the handle's session was deleted or created anew
  elsewhere; nothing was written) hands the claim back, as does a start refused because a
  batch's trace / drain id was taken by an earlier attempt this handle had not read (the
  drain then claims it again). A batch's first attempt runs under its trace / drain id, a
  later one under ``<id>:g<lease generation>`` (docs/adr/0168).
- The :class:`Drainer` (on by default in notebooks, off for plain library use) runs drains as
  tasks on the session's loop after each commit and on enqueue while idle, one at a time,
  never blocking cells. ``pause()`` / ``resume()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Sequence
from typing import Any

from .._core.cancel import HANDS_BACK, CancellationToken
from .._core.graph import SessionGraph
from .._core.queue import (
    ClaimBoundary,
    DeliveryPolicy,
    QueuedWorkBatch,
    QueuedWorkDraft,
    SlotPolicy,
)
from .._core.records import TurnInput, TurnOutput
from .._core.text import check_id
from .._errors import (
    ConfigurationError,
    InvalidTurnInput,
    ProviderUnavailable,
    SessionDeleted,
    TurnIdTaken,
)
from .._store.base import Lease
from .abandon import abandon_quietly
from .attachments import check_attachments
from .parts import SessionParts
from .turn import as_turn_input, run_to_completion
from .turn_records import error_text, queued_turn_id
from .turn_run import TurnRun

HOST_KEY = "host:"  # an enqueue id ``k`` is the batch's source key ``host:k``


def batch_named(queued: Sequence[QueuedWorkBatch], name: str) -> str:
    """The id of the batch ``name`` means: a batch id, or the id a queued batch was enqueued
    with (``.id(k)``); else ``name`` as given (gone from the queue, or never there)."""
    if any(b.batch_id == name for b in queued):
        return name
    return next((b.batch_id for b in queued if b.source_key == HOST_KEY + name), name)


class EnqueueBuilder:
    def __init__(self, parts: SessionParts, drainer: Drainer, turn_input: TurnInput | str) -> None:
        self._parts = parts
        self._drainer = drainer
        self._input = as_turn_input(turn_input)
        self._id: str | None = None
        self._delivery = DeliveryPolicy.AFTER_CURRENT_TURN_COMMIT
        self._slot = SlotPolicy.EXCLUSIVE
        self._merge_key: str | None = None
        self._available_at_ms = 0

    def id(self, key: str) -> EnqueueBuilder:
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(
                f"an enqueue id must be a non-empty str (it becomes the source key 'host:<id>'), "
                f"got {key!r}"
            )
        self._id = check_id(key, "enqueue id")
        return self

    def delivery_policy(self, policy: DeliveryPolicy | str) -> EnqueueBuilder:
        self._delivery = DeliveryPolicy.parse(policy)
        return self

    def slot_policy(self, policy: SlotPolicy | str) -> EnqueueBuilder:
        self._slot = SlotPolicy.parse(policy)
        return self

    def merge_key(self, key: str | None) -> EnqueueBuilder:
        self._merge_key = check_id(key, "merge key")
        return self

    def available_at_ms(self, at_ms: int) -> EnqueueBuilder:
        self._available_at_ms = int(at_ms)
        return self

    async def send(self) -> QueuedWorkBatch:
        if self._input.is_blank():
            raise InvalidTurnInput("cannot enqueue an empty input; pass some text")
        p = self._parts
        attachments = self._input.attachments()
        if attachments:  # the queued row keeps refs; the bytes wait in the blobs table
            check_attachments(self._input, p.provider, p.state.policy.model)
            await p.blobs.put(p.store, attachments)
        draft = QueuedWorkDraft(
            session_id=p.session_id,
            source_key=HOST_KEY + self._id if self._id is not None else None,
            delivery_policy=self._delivery,
            slot_policy=self._slot,
            merge_key=self._merge_key,
            available_at_ms=self._available_at_ms,
            items=(("turn_input", self._input.to_json()),),
        )
        batch = await p.store.enqueue(draft)
        p.feed.queue_changed("enqueued", (batch.batch_id,))
        self._drainer.kick()
        return batch

    def __await__(self) -> Generator[Any, None, QueuedWorkBatch]:
        return self.send().__await__()


async def enqueue_command(parts: SessionParts, drainer: Drainer, command: dict[str, Any],
                          key: str) -> QueuedWorkBatch:
    """Queue a session command (e.g. ``{"kind": "refresh_tool_catalog"}``), idempotent by key."""
    if not key:
        raise ConfigurationError("a session command needs a non-empty idempotency key")
    check_id(key, "session command key")
    draft = QueuedWorkDraft(
        session_id=parts.session_id,
        source_key=f"command:{command['kind']}:{key}",
        delivery_policy=DeliveryPolicy.EARLIEST_SAFE_BOUNDARY,
        slot_policy=SlotPolicy.EXCLUSIVE,
        merge_key=None,
        available_at_ms=0,
        items=(("session_command", command),),
    )
    batch = await parts.store.enqueue(draft)
    parts.feed.queue_changed("enqueued", (batch.batch_id,))
    drainer.kick()
    return batch


class QueuedTurnBuilder:
    def __init__(self, parts: SessionParts) -> None:
        self._parts = parts
        self._token = CancellationToken()
        self._batch_ids: list[str] | None = None
        self._drain_id: str | None = None
        self._id_taken = False  # the trace / drain id was refused as taken: use <id>:g<N>

    def batch_ids(self, ids: Sequence[str]) -> QueuedTurnBuilder:
        self._batch_ids = list(ids)
        return self

    def drain_id(self, drain_id: str) -> QueuedTurnBuilder:
        self._drain_id = drain_id
        return self

    def cancel(self, token: CancellationToken) -> QueuedTurnBuilder:
        self._token = token
        return self

    async def run(self) -> TurnOutput | None:
        p = self._parts
        if p.provider_mismatch:  # as a plain turn: never answer with a provider it was not
            raise ProviderUnavailable(p.state.policy.provider_id, p.provider_mismatch,
                                      p.session_id)  # recorded with; nothing claimed (0201)
        key = p.cancels.register(self._token)
        try:
            try:
                return await self._run(p, key)
            except TurnIdTaken:
                # the batch's trace / drain id was taken by an attempt this handle had not
                # read (the claim went back uncounted, the handle reloads): run it again,
                # now under ``<id>:g<N>`` (docs/adr/0168)
                self._id_taken = True
                return await self._run(p, key)
        finally:
            p.cancels.unregister(key)

    def __await__(self) -> Generator[Any, None, TurnOutput | None]:
        return self.run().__await__()

    def _handed_back(self) -> bool:
        """A worker asked to stop cancelled this drain before its turn started: it claims
        nothing (or hands the claim back) rather than start a turn only to cut it."""
        return self._token.cancelled and self._token.origin in HANDS_BACK

    async def _run(self, p: SessionParts, key: int) -> TurnOutput | None:
        w = p.writer
        async with w.lock():  # held through the turn: TurnRun(hold_lock=True)
            lease = await w.try_lease()
            if lease is None:
                return None
            try:
                if p.state.stale:
                    await w.reload()
                if await _apply_session_commands(p, lease):  # renewed after the commands ran
                    lease = await w.try_lease() or lease
                claim = None
                if not self._handed_back():
                    claim = await p.store.claim_queued_work(
                        lease, boundary=ClaimBoundary.IDLE, batch_ids=self._batch_ids,
                        max_attempts=p.max_batch_attempts)
                if claim is not None and self._handed_back():
                    # the worker's stop came during the claim: no turn started, nothing ran
                    await abandon_quietly(p, claim, None, count_attempt=False)
                    claim = None
            except BaseException:
                await w.release_quietly(lease)
                raise
            if claim is None:
                await w.release_quietly(lease)
                return None
            p.feed.queue_changed("claimed", claim.batch_ids)
            turn_input = claim.turn_input()
            # the lease generation makes a re-run after a dead runtime a new turn (the dead one's
            # open turn was closed as process_lost under the batch's first turn id); a trace /
            # drain id is the first attempt's, then ``<id>:g<N>`` (docs/adr/0168)
            base = turn_input.trace_turn_id or self._drain_id
            if base is None:
                attempts = f"{claim.batches[0].batch_id}:g"
                turn_id = f"{attempts}{lease.fencing}"
            else:
                attempts = f"{base}:g"
                turn_id = (f"{attempts}{lease.fencing}" if self._id_taken
                           else queued_turn_id(p.state.graph, base, lease.fencing))
            p.cancels.set_turn_id(key, turn_id)
            # an earlier attempt that died left its user message at the leaf: branch before it
            run = TurnRun(p, turn_input.with_trace_turn_id(turn_id), turn_id, self._token,
                          lease=lease, claim=claim, hold_lock=True, attempt_prefix=attempts)
            try:
                result = await run_to_completion(run, p, key)
            except (SessionDeleted, TurnIdTaken):
                # deleted (or deleted and created anew) since this handle read it, or the
                # turn id was taken by an attempt it had not read: the store wrote nothing of
                # the turn; the refusal is the handle's, not the batch's
                await abandon_quietly(p, claim, None, count_attempt=False)
                raise
            except BaseException as err:
                # counted as a failed attempt; parked failed after max_batch_attempts
                await abandon_quietly(p, claim, error_text(err))
                raise
            if not set(claim.batch_ids) <= {*result.queued_batch_ids, *run.handed_back}:
                # the turn ended without completing its claim (lease_lost): an attempt failed
                await abandon_quietly(p, claim, "; ".join(e.message for e in result.errors)
                                       or str(result.outcome))
            return TurnOutput(result, tuple(run.activities), tuple(run.handed_back))


async def _apply_session_commands(p: SessionParts, lease: Lease) -> int:
    """Apply and commit every leading session command; how many ran."""
    ran = 0
    while True:
        claim = await p.store.claim_queued_work(lease, boundary=ClaimBoundary.IDLE, commands=True,
                                                max_attempts=p.max_batch_attempts)
        if claim is None:
            return ran
        ran += 1
        for command in claim.commands():
            if command.get("kind") == "refresh_tool_catalog":
                p.catalog.invalidate()
                for src_id, provider in list(p.state.registry.sources.items()):
                    p.state.registry.add_source(provider, src_id)
            elif command.get("kind") == "reset_session":
                # lash ResetSession: an empty graph replaces the stored one with this commit;
                # usage and turn count stay on the books (as open_fresh, ADR 26)
                p.state.graph = SessionGraph()
                p.state.graph.replace_required = True
        await p.writer.commit(p.writer.commit_base(lease, (), completed_claims=(claim,)))
        p.feed.queue_changed("completed", claim.batch_ids)
        p.feed.committed(kick=False)


class Drainer:
    """Drains the session's queue in the background on its event loop."""

    def __init__(self, parts: SessionParts) -> None:
        self._parts = parts
        self.enabled = False
        self._task: asyncio.Task[None] | None = None
        self.drained: list[TurnOutput] = []
        self.errors: list[BaseException] = []

    def enable(self) -> Drainer:
        self.enabled = True
        self.kick()
        return self

    def pause(self) -> None:
        self.enabled = False

    def resume(self) -> None:
        self.enable()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def kick(self) -> None:
        if not self.enabled or self.running or self._parts.closed():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._drain_all())

    async def _drain_all(self) -> None:
        await asyncio.sleep(0)  # let the committing turn return first
        while self.enabled and not self._parts.closed():
            try:
                out = await QueuedTurnBuilder(self._parts).run()
            except Exception as err:  # keep draining later; surface through .errors
                self.errors.append(err)
                return
            if out is None:
                return
            self.drained.append(out)
