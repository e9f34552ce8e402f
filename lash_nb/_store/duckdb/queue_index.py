"""What a hold knows of a session's rows in ``queued_work_batches``: their order and which
were ever claimed, so that a drain's claim reads the head of the session's queue, not every
row of it (ADR 200).

A claim's read (``queued_work.claim``) sorted every queued row of the session to find the
first 64 ready ones: its cost grew with the queue's depth (~0.9 ms at 1,000 rows), though a
drain of an exclusive head (the default) runs that head alone. While this process holds the
file nobody else adds rows, so the hold can keep each session's row ids in ``enqueue_seq``
order and read only a window of them (``BETWEEN`` the first few seqs that are not hidden):

- **Loaded** with the session's queue size (the same statement, ``Hold.queue_size``),
  dropped by ``forget`` and when a fold quarantines a commit (its completed batches are
  pending again), reloaded when next needed. A failed job keeps it (it changes only after a
  COMMIT): an idle fold that gives way rolls back, and a reload reads every row.
- **A superset**: an enqueue appends (the sequence only grows), a completion, a cancel, a
  park removes, after COMMIT. A row that left another way (an abandon that parked it, a
  keyed enqueue that wrote a logged completion) lingers until then: it only widens the
  window, and the claim's SQL still checks every condition of a ready row. A row never
  goes missing: rows are only added by this hold's enqueues.
- **Tried**: rows claimed at least once (their ``attempts`` may have reached the bound, so
  a claim may have to park them). While a session has any, its claims read as before (the
  first 64 ready rows), so a row behind the head that used up its attempts is parked by the
  next claim exactly as before. Failed rows are not indexed (never ready again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

WINDOW = 8  # ids read past the hidden ones: the head and a few not ready (delayed, claimed)


class QueueIndex:
    def __init__(self, rows: Iterable[tuple[str, int, bool]]) -> None:
        """``rows``: (batch id, enqueue seq, claimed before) of the session's rows that can
        still become ready, in ``enqueue_seq`` order."""
        self.seqs: dict[str, int] = {}
        self.tried: set[str] = set()
        for batch_id, seq, tried in rows:
            self.seqs[batch_id] = seq
            if tried:
                self.tried.add(batch_id)

    def add(self, rows: Sequence[tuple[str, int]]) -> None:
        last = next(reversed(self.seqs.values()), -1)
        self.seqs.update(rows)
        if any(seq < last for _, seq in rows):  # never expected: keep the order anyway
            self.seqs = dict(sorted(self.seqs.items(), key=lambda r: r[1]))

    def remove(self, batch_ids: Iterable[str]) -> None:
        for b in batch_ids:
            self.seqs.pop(b, None)
            self.tried.discard(b)

    def window(self, hidden: Iterable[str]) -> tuple[int, int] | None:
        """(first, last) seq of the first ``WINDOW`` ids not ``hidden``; None: none left."""
        skip = set(hidden)
        seqs: list[int] = []
        for b, seq in self.seqs.items():
            if b not in skip:
                seqs.append(seq)
                if len(seqs) == WINDOW:
                    break
        return (seqs[0], seqs[-1]) if seqs else None
