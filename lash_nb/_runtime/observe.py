"""``session.observe()``: the settled read view plus a cursor, replay and live subscription.

Fold rules for a UI (observe spec §1.11): key rows by ``correlation_id``; apply
``model_attempt_reset`` by deleting exactly the listed rows; on ``committed`` reconcile from
its read view; on a gap, replace state from ``gap.observation`` and continue from
``gap.latest_cursor``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .replay import (
    LiveReplayGap,
    LiveReplayStore,
    SessionObservationEvent,
    SubscriberLagged,
    _Subscription,
)
from .state import SessionReadView, SessionState


@dataclass(frozen=True)
class SessionObservation:
    read_view: SessionReadView
    cursor: str


@dataclass(frozen=True)
class Gap:
    observation: SessionObservation
    gap: LiveReplayGap


class ObservableSession:
    def __init__(self, state: SessionState, replay: LiveReplayStore) -> None:
        self._state = state
        self._replay = replay

    @property
    def session_id(self) -> str:
        return self._state.session_id

    def current_observation(self) -> SessionObservation:
        st = self._state
        return SessionObservation(st.read_view(), self._replay.current_cursor(st.session_id, st.revision()))

    def read_view(self) -> SessionReadView:
        return self._state.read_view()

    def usage_report(self) -> Any:
        return self._state.usage_report()

    def resume_from_cursor(self, cursor: str) -> list[SessionObservationEvent] | Gap:
        got = self._replay.replay_after(cursor, self.session_id)
        if isinstance(got, LiveReplayGap):
            return Gap(self.current_observation(), got)
        return got

    async def subscribe_from_cursor(self, cursor: str) -> AsyncIterator[SessionObservationEvent | Gap]:
        """Replay then live events; gaps (trimmed, unavailable, lagged) are yielded and the
        subscription continues from the gap's latest cursor."""
        while True:
            sub = self._replay.subscribe(cursor, self.session_id)
            if isinstance(sub, LiveReplayGap):
                yield Gap(self.current_observation(), sub)
                cursor = sub.latest_cursor
                continue
            assert isinstance(sub, _Subscription)
            try:
                async for event in sub:
                    cursor = event.cursor
                    yield event
                return
            except SubscriberLagged:
                obs = self.current_observation()
                yield Gap(obs, LiveReplayGap(self.session_id, cursor, obs.cursor, "lagged"))
                cursor = obs.cursor
            finally:
                sub.close()
