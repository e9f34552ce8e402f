"""``SessionFeed``: what a session publishes to its observers (the live replay log).

Three kinds of observation: a turn activity, a queue change, and ``committed`` (the settled
read view after a commit). ``committed`` also wakes the session's drainer through
``on_committed`` (set by the session once its drainer exists).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .._core.events import TurnActivity
from .replay import LiveReplayStore
from .state import SessionState


class SessionFeed:
    def __init__(self, replay: LiveReplayStore, state: SessionState) -> None:
        self.replay = replay
        self.state = state
        self.on_committed: Callable[[], None] = _noop

    def activity(self, activity: TurnActivity) -> None:
        st = self.state  # ``st.revision()`` inlined: a turn publishes ~8 activities
        revision = st.head_revision if st.head_revision is not None else st.turn_index
        self.replay.append(st.session_id, revision, "turn_activity", activity=activity)

    def queue_changed(self, kind: str, batch_ids: Sequence[str]) -> None:
        st = self.state
        self.replay.append(st.session_id, st.revision(), "queue_changed", queue_kind=kind,
                           batch_ids=tuple(batch_ids))

    def committed(self, kick: bool = True) -> None:
        st = self.state
        self.replay.append(st.session_id, st.revision(), "committed", read_view=st.read_view())
        if kick:
            self.on_committed()


def _noop() -> None:
    return None
