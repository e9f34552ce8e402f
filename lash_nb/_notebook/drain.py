"""Draining the queue from a notebook: one drain per session at a time, with progress.

Theory of operation
- :class:`NotebookDrain` is the one drain of a bound session. ``await drain.run(all=True,
  progress=cb)`` runs queued turns until no ready batch is left (``all=False``: one turn).
  Both ``%lash drain`` and the queue widget's Drain button call it.
- A second ``run`` while one is going raises ``UsageError`` at once (a double click runs one
  drain, not two); the check and the flag are on the kernel's loop, so no lock is needed.
- Progress is counted in batches: ``total`` is the batches done plus the batches still pending
  when the count is taken (at the start and after every turn, so work enqueued meanwhile
  extends it). ``progress(p)`` is called when a turn starts (``p.current`` names its batches)
  and when it ends (``p.ran`` gets a row with the turn's outcome and answer).
- ``show=True`` (a cell) streams each turn into its own live turn widget; ``show=False`` (a
  button callback, whose output has no cell to go to) runs them quietly and reports through
  ``progress``, and through ``activity(a)`` with every ``TurnActivity`` of the turns as they
  stream (from the session's observation), so a widget can show the running turn. Such a
  turn is marked shown to a person (its rows, and a tool call's question, are on the widget:
  ADR 212), and :meth:`NotebookDrain.stop` (the panel's Stop) cancels the running turn
  (``widget_stop``: a person's stop, its batch done) and ends the drain there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from IPython.core.error import UsageError

from .._core.cancel import CancellationToken
from .._core.text import shown_name
from .._errors import TurnNotSaved
from .._store.waits import not_shown, shown_to_a_person
from .runner import run_queued

Progress = Callable[["DrainProgress"], Any]


@dataclass(frozen=True)
class DrainProgress:
    session_id: str
    done: int = 0  # batches finished
    total: int = 0  # done + pending when last counted
    turns: int = 0
    current: tuple[str, ...] = ()  # batch ids of the turn running now ("" while counting)
    running: bool = True
    ran: tuple[dict[str, Any], ...] = field(default=())  # one row per finished turn
    left: int = 0  # batches still queued when the drain found none it could run
    stopped_by: str = ""  # a person's stop ended the drain (its cancellation origin)

    def label(self) -> str:
        name = shown_name(self.session_id)  # as the card shows it (ADR 219)
        if self.running:
            return f"draining {name}: {self.done} of {self.total} batch(es) done"
        done = (f"drained {self.done} batch(es) of {name} in {self.turns} turn(s)"
                if self.turns else f"nothing drained in {name}")
        if self.stopped_by:
            who = STOPPED_BY.get(self.stopped_by, self.stopped_by)
            return (f"{done}; stopped by {who}" + (
                f": {self.left} batch(es) left in the queue; %lash drain runs them"
                if self.left else ""))
        if self.left:
            return (f"{done}; {self.left} batch(es) left in the queue: another process (a "
                    "worker, another notebook) runs the session, or they are not ready yet; "
                    "%lash queue shows them")
        return done if self.turns else f"nothing to drain in {name}"

    def to_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "done": self.done, "total": self.total,
                "turns": self.turns, "current": list(self.current), "running": self.running,
                "ran": [dict(r) for r in self.ran], "left": self.left, "label": self.label()}


def ran_row(result: Any) -> dict[str, Any]:
    """What a finished queued turn did, for a progress view."""
    from .widgets.fold import outcome_label

    out = result.assistant_output
    return {"turn_id": result.turn_id, "batch_ids": list(result.queued_batch_ids),
            "outcome": outcome_label(result.outcome.to_json()),
            "answer": out.safe_text if out is not None else ""}


class NotebookDrain:
    def __init__(self, session: Any, *, interval_s: float = 0.05) -> None:
        self.session = session
        self.interval_s = interval_s
        self.prices: Any = None  # the magics' prices (costs.resolve_prices): a drained turn's cost
        self.running = False
        self.last: DrainProgress | None = None
        self._token: CancellationToken | None = None  # the quiet drain's running turn
        self._stopped = False

    def stop(self) -> bool:
        """The panel's Stop: cancel the running turn (``widget_stop``) and run no more
        batches. False when no drain runs."""
        if not self.running:
            return False
        self._stopped = True
        if self._token is not None:
            self._token.cancel("widget_stop", None)
        return True

    async def run(self, *, all: bool = True, progress: Progress | None = None,
                  show: bool = True, activity: Callable[[Any], Any] | None = None) -> list[Any]:
        """Run ready queued turns (every one with ``all``); return their ``TurnResult``s."""
        if self.running:
            raise UsageError(f"a drain of session {self.session.session_id!r} is already "
                             "running; wait for it to finish (or %lash stop its turn)")
        self.running, self._stopped = True, False
        s = self.session
        p = DrainProgress(s.session_id)
        results: list[Any] = []

        def tell(new: DrainProgress) -> None:
            nonlocal p
            p = self.last = new
            if progress is not None:
                progress(new)

        try:
            while not self._stopped:
                pending = await s.queued_work()
                if not pending or self._stopped:  # a Stop while the queue was read
                    break
                tell(replace(p, total=p.done + len(pending), current=(pending[0].batch_id,)))
                try:
                    if show:
                        result = await run_queued(s, interval_s=self.interval_s,
                                                  prices=self.prices)
                    else:
                        self._token = CancellationToken()
                        out = await _quiet_turn(s, activity, self._token)
                        result = None if out is None else out.result
                except TurnNotSaved as err:  # answered, not stored: the progress says so
                    row = ran_row(err.result)
                    row["outcome"] = f"NOT saved ({row['outcome']})"
                    tell(replace(p, turns=p.turns + 1, current=(), ran=(*p.ran, row)))
                    raise
                if result is None:  # claimed elsewhere (a worker) or not ready yet
                    p = replace(p, left=len(await s.queued_work(include_claimed=True)))
                    break
                results.append(result)
                done = p.done + max(1, len(result.queued_batch_ids))
                tell(replace(p, done=done, total=max(p.total, done), turns=p.turns + 1,
                             current=(), ran=(*p.ran, ran_row(result))))
                stopped = _stopped_by(result) or ("widget_stop" if self._stopped else "")
                if stopped:  # a person's stop ends the drain, not only its turn (ADR 212)
                    p = replace(p, stopped_by=stopped, left=len(await s.queued_work()))
                if not all or stopped:
                    break
        finally:
            self.running, self._token = False, None
            tell(replace(p, running=False, current=()))
        return results


# who stopped a drained turn, when it is a person: the drain ends there too
STOPPED_BY = {"kernel_interrupt": "the kernel's interrupt", "magic": "%lash stop",
              "widget_stop": "Stop", "api": "session.cancel_running_turns()"}


def _stopped_by(result: Any) -> str:
    origin = str((getattr(result, "cancellation", None) or {}).get("origin") or "")
    return origin if origin in STOPPED_BY else ""


async def _quiet_turn(session: Any, activity: Callable[[Any], Any] | None,
                      token: CancellationToken) -> Any:
    """One queued turn with no widget; its activities go to ``activity`` as they happen (live
    from the observation; any the feed had not handed over yet, from the finished run). With
    ``activity`` a widget shows the turn: its store waits and approval questions are there."""
    turn = session.queued_turn().cancel(token)
    if activity is None:
        return await turn.run()
    sent: set[str] = set()

    def forward(a: Any) -> None:
        if a.id not in sent:
            sent.add(a.id)
            activity(a)

    observe = session.observe()
    events = observe.subscribe_from_cursor(observe.current_observation().cursor)

    async def feed() -> None:
        async for event in events:
            if getattr(event, "kind", None) == "turn_activity":
                forward(event.activity)

    feeder = asyncio.ensure_future(feed())
    shown = shown_to_a_person(True)
    try:
        out = await turn.run()
    finally:
        not_shown(shown)
        feeder.cancel()
    for a in out.activities if out is not None else ():
        forward(a)
    return out
