"""Queued work: batches, policies and the claim-group rule.

Theory of operation
- ``enqueue`` admits a :class:`QueuedWorkBatch` with a store-wide increasing ``enqueue_seq``.
  A batch with a ``source_key`` is idempotent: the same ``(session_id, source_key)`` returns
  the original stored batch until that batch is completed or cancelled (both delete it), after
  which the key is free again.
- States (no state column): *pending* (no live claim) -> *claimed* -> deleted (completed by
  the final commit of the turn it became, or cancelled). A claim is pinned to the session
  execution lease generation (fencing token) of its claimer; it is live only while that exact
  lease generation holds the session. When a claimer dies its lease expires (TTL) and the
  claim is pending again for the next lease generation: claims of dead processes become
  claimable again after at most one lease TTL. (lash ADR 0029; the target's 15-minute claim
  TTL let a slow but healthy turn lose its own claim.)
- A claim group is a strict prefix of the ready queue (ordered by ``enqueue_seq``):
  session commands are claimed one at a time and always before turn work; an Exclusive head
  is claimed alone; a Join head grows through the immediately following ready Join batches
  with the same delivery policy and merge key, up to ``max_batches``, stopping at the first
  mismatch. At an active-turn checkpoint only a head whose delivery policy is
  ``earliest_safe_boundary`` is eligible.
- Attempts: every claim of a batch counts one ``attempt``. A claim released without
  completing (``abandon_claim`` with the error, or a runtime that died or lost its lease)
  leaves the batch pending with its ``attempts`` and last ``error``. Once a batch has been
  claimed ``max_attempts`` times (default :data:`DEFAULT_MAX_ATTEMPTS`) without completing it
  is *failed*: parked in the queue with its error, listed, never claimed again (by the
  abandon that reaches the bound, or by the next claim when the runtime died). Cancelling a
  failed batch removes it (``queue_history`` says ``cancelled``); re-enqueue it to run again.
  A claim *handed back* (``abandon_claim(..., count_attempt=False)``: a worker asked to stop,
  a handle refused because its session was deleted elsewhere; docs/adr/0158, 0159) leaves the
  batch pending with the attempts and error it had before that claim.
- Forbidden: a claimed batch claimed again under the same live generation; a cancelled batch
  becoming a turn (cancel deletes it in the same transaction that checks it is unclaimed); a
  failed batch claimed.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .records import TurnInput

MAX_CLAIM_BATCHES = 64
DEFAULT_MAX_ATTEMPTS = 3  # claims of one batch without completing before it is parked failed
MAX_ERROR_CHARS = 2000


def attempts_exhausted(attempts: int, max_attempts: int) -> bool:
    """True when a batch claimed ``attempts`` times without completing is to be parked."""
    return attempts >= max(1, max_attempts)


def failure_text(error: str | None, attempts: int) -> str:
    """The ``error`` stored on a failed batch: its last error, or what a silent stop means."""
    if error:
        return error
    return (f"claimed {attempts} times and never completed: the process running it stopped "
            "before committing (killed, crashed or lost its lease)")


def clip_error(error: str | None) -> str | None:
    if error is None:
        return None
    return error if len(error) <= MAX_ERROR_CHARS else error[:MAX_ERROR_CHARS - 1] + "…"


class DeliveryPolicy(str, enum.Enum):
    EARLIEST_SAFE_BOUNDARY = "earliest_safe_boundary"
    AFTER_CURRENT_TURN_COMMIT = "after_current_turn_commit"

    @classmethod
    def parse(cls, value: DeliveryPolicy | str) -> DeliveryPolicy:
        parsed: DeliveryPolicy = _parse_enum(
            cls, value, "delivery policy",
            {"earliest": "earliest_safe_boundary", "after-commit": "after_current_turn_commit"})
        return parsed


class SlotPolicy(str, enum.Enum):
    EXCLUSIVE = "exclusive"
    JOIN = "join"

    @classmethod
    def parse(cls, value: SlotPolicy | str) -> SlotPolicy:
        parsed: SlotPolicy = _parse_enum(cls, value, "slot policy", {})
        return parsed


class ClaimBoundary(str, enum.Enum):
    IDLE = "idle"
    ACTIVE_TURN_CHECKPOINT = "active_turn_checkpoint"


def _parse_enum(cls: Any, value: Any, what: str, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        v = aliases.get(value.strip().lower(), value.strip().lower())
        for member in cls:
            if member.value == v:
                return member
    short = {wire: alias for alias, wire in aliases.items()}  # the magic's words
    names = [f"{short[m.value]} ({m.value})" if m.value in short else m.value for m in cls]
    close = difflib.get_close_matches(str(value).strip().lower(),
                                      [*aliases, *(m.value for m in cls)], n=1)
    meant = f"; did you mean {close[0]}?" if close else ";"
    raise ValueError(f"unknown {what} {value!r}{meant} use one of: {', '.join(names)}")


@dataclass(frozen=True, slots=True)
class QueuedWorkItem:
    """One payload of a batch. ``kind`` is ``turn_input`` or ``session_command``."""

    item_id: str
    kind: str
    payload: Mapping[str, Any]

    @property
    def turn_input(self) -> TurnInput | None:
        return TurnInput.from_json(self.payload) if self.kind == "turn_input" else None

    def to_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "kind": self.kind, "payload": dict(self.payload)}


@dataclass(frozen=True)
class QueuedWorkBatch:
    batch_id: str
    session_id: str
    enqueue_seq: int
    source_key: str | None
    delivery_policy: DeliveryPolicy
    slot_policy: SlotPolicy
    merge_key: str | None
    available_at_ms: int
    enqueued_at_ms: int
    items: tuple[QueuedWorkItem, ...]
    claim_id: str | None = None
    claimed_at_ms: int | None = None
    attempts: int = 0  # claims so far that did not complete it
    error: str | None = None  # the last error of an attempt (or why it was parked)
    failed_at_ms: int | None = None  # set: parked failed, never claimed again

    @property
    def status(self) -> str:
        """``failed``, ``claimed`` (held by a live claim) or ``pending``."""
        if self.failed_at_ms is not None:
            return "failed"
        return "claimed" if self.claim_id is not None else "pending"

    @property
    def work_class(self) -> str:
        kinds = {i.kind for i in self.items}
        if kinds == {"session_command"}:
            return "session_command"
        if kinds == {"turn_input"}:
            return "turn_work"
        return "mixed"

    @property
    def text(self) -> str:
        return "\n\n".join(
            t.joined_text() for t in (i.turn_input for i in self.items) if t is not None
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "session_id": self.session_id,
            "enqueue_seq": self.enqueue_seq,
            "source_key": self.source_key,
            "delivery_policy": self.delivery_policy.value,
            "slot_policy": self.slot_policy.value,
            "merge_key": self.merge_key,
            "available_at_ms": self.available_at_ms,
            "enqueued_at_ms": self.enqueued_at_ms,
            "items": [i.to_json() for i in self.items],
            "status": self.status,
            "claim_id": self.claim_id,
            "attempts": self.attempts,
            "error": self.error,
            "failed_at_ms": self.failed_at_ms,
        }

    def __repr__(self) -> str:
        return (
            f"QueuedWorkBatch(batch_id={self.batch_id!r}, seq={self.enqueue_seq}, "
            f"source_key={self.source_key!r}, {self.delivery_policy.value}/"
            f"{self.slot_policy.value}, {self.status}, text={self.text[:40]!r})"
        )


@dataclass(frozen=True)
class QueuedWorkDraft:
    session_id: str
    source_key: str | None
    delivery_policy: DeliveryPolicy
    slot_policy: SlotPolicy
    merge_key: str | None
    available_at_ms: int
    items: tuple[tuple[str, Mapping[str, Any]], ...]  # (kind, payload)


@dataclass(frozen=True)
class QueueClaim:
    """A claim on a prefix of a session's queue, pinned to a lease generation."""

    claim_id: str
    session_id: str
    lease_generation: int
    boundary: ClaimBoundary
    batches: tuple[QueuedWorkBatch, ...]

    @property
    def batch_ids(self) -> tuple[str, ...]:
        return tuple(b.batch_id for b in self.batches)

    def turn_input(self) -> TurnInput:
        inputs = [i.turn_input for b in self.batches for i in b.items if i.kind == "turn_input"]
        return TurnInput.merge([i for i in inputs if i is not None])

    def commands(self) -> list[Mapping[str, Any]]:
        return [i.payload for b in self.batches for i in b.items if i.kind == "session_command"]


def select_claim_prefix(
    ready: Sequence[QueuedWorkBatch],
    boundary: ClaimBoundary,
    max_batches: int = MAX_CLAIM_BATCHES,
    *,
    commands: bool = False,
) -> list[QueuedWorkBatch]:
    """The claim group at the head of ``ready`` (pending batches in enqueue order).

    ``commands=True`` claims exactly one leading session command; otherwise turn work is
    claimed, and nothing is returned while a session command sits at the head.
    """
    if not ready:
        return []
    head = ready[0]
    if commands:
        return [head] if head.work_class == "session_command" else []
    if head.work_class != "turn_work":
        return []
    if (
        boundary is ClaimBoundary.ACTIVE_TURN_CHECKPOINT
        and head.delivery_policy is not DeliveryPolicy.EARLIEST_SAFE_BOUNDARY
    ):
        return []
    if head.slot_policy is SlotPolicy.EXCLUSIVE:
        return [head]
    group = [head]
    for b in ready[1:]:
        if len(group) >= max_batches:
            break
        if (
            b.work_class != "turn_work"
            or b.slot_policy is not SlotPolicy.JOIN
            or b.delivery_policy is not head.delivery_policy
            or b.merge_key != head.merge_key
        ):
            break
        group.append(b)
    return group


def validate_selected_group(batches: Sequence[QueuedWorkBatch],
                            boundary: ClaimBoundary = ClaimBoundary.IDLE) -> bool:
    """Selected-batch claims must themselves form one valid claim group at ``boundary``: a
    by-id claim honours the delivery-boundary gate like any other claim (lash
    ``queued_work_exact_claim_uses_selected_batch_ids``)."""
    if not batches:
        return False
    return len(select_claim_prefix(batches, boundary, len(batches))) == len(batches)
