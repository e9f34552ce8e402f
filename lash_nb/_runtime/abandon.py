"""Releasing a queued-work claim without completing it, for the drain (a failed attempt) and
for a turn a worker's stop cut (a hand-back, uncounted: docs/adr/0158)."""

from __future__ import annotations

import logging

from .._core.queue import QueueClaim
from .parts import SessionParts

log = logging.getLogger("lash_nb.queue")


async def abandon_quietly(p: SessionParts, claim: QueueClaim, error: str | None, *,
                          count_attempt: bool = True) -> bool:
    """Abandon ``claim`` with ``error`` (``count_attempt=False``: hand it back, its attempt
    not counted); False when the store refused, which leaves the claim to die with its lease
    generation (an attempt counted)."""
    bound = p.max_batch_attempts
    try:
        await p.store.abandon_claim(claim, error=error, max_attempts=bound,
                                    count_attempt=count_attempt)
    except Exception:  # the claim dies with its lease generation anyway
        return False
    p.feed.queue_changed("abandoned", claim.batch_ids)
    if count_attempt:
        for b in claim.batches:  # ``attempts`` counts this claim
            if b.attempts >= bound:
                log.warning("queued batch %s of session %s failed %d times and is parked: %s "
                            "(cancel it, or enqueue it again once fixed)", b.batch_id,
                            p.session_id, b.attempts, (error or "")[:300])
    return True
