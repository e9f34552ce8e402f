"""Live replay of session observation events, and observation cursors.

Theory of operation (lash ADR 0002, observe spec §1.5-1.6)
- Per session a bounded deque of ``(position, appended_at, event)``; ``tail`` counts appends.
  Bounds: ``max_events`` (2048) and ``max_age_s`` (120 s), trimmed on append, replay and
  subscribe.
- A cursor is ``lashnb1:<nonce>:<revision>:<position>:<session_id>``. ``nonce`` is per
  process (per store instance), so a cursor from an earlier kernel can never be mistaken for
  a position of this one: it yields a gap (reason ``unavailable``), never wrong data.
  Malformed cursors and cursors of another session are errors, never gaps.
- Gap rules for position ``p``: foreign nonce or ``p > tail`` -> unavailable; ``p + 1 <``
  first retained position (or empty buffer with ``p < tail``) -> trimmed; else replay all
  events with position ``> p``.
- Subscribers get the buffered replay, then live events through a queue on their own loop.
  A subscriber more than ``max_events`` behind is dropped with a ``lagged`` gap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .._errors import CursorError

CURSOR_PREFIX = "lashnb1"


@dataclass(frozen=True, slots=True)
class SessionObservationEvent:
    session_id: str
    revision: int
    cursor: str
    kind: str  # turn_activity | committed | queue_changed
    activity: Any = None  # TurnActivity for turn_activity
    read_view: Any = None  # SessionReadView for committed
    queue_kind: str | None = None  # enqueued | claimed | cancelled | completed | abandoned
    batch_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "session_id": self.session_id, "revision": self.revision,
            "cursor": self.cursor, "type": self.kind,
        }
        if self.activity is not None:
            out["activity"] = self.activity.to_json()
        if self.queue_kind is not None:
            out["queue_kind"] = self.queue_kind
            out["batch_ids"] = list(self.batch_ids)
        return out


@dataclass(frozen=True, slots=True)
class LiveReplayGap:
    session_id: str
    requested_cursor: str
    latest_cursor: str
    reason: str  # trimmed | unavailable | lagged


# a buffered event: built at once when a subscriber waits for it, else kept as its parts
# (revision, kind, fields) and built when a replay reads it (most are never read)
_Entry = SessionObservationEvent | tuple[int, str, dict[str, Any]]


@dataclass
class _Buffer:
    events: collections.deque[tuple[int, float, _Entry]]
    tail: int = 0
    revision: int = 0  # revision of the last appended event
    subscribers: list[_Subscription] = dataclasses.field(default_factory=list)


def parse_cursor(cursor: str, session_id: str) -> tuple[str, int, int]:
    if not isinstance(cursor, str):
        raise CursorError(f"a cursor is a string from observe(), got {type(cursor).__name__}")
    parts = cursor.split(":", 4)
    if len(parts) != 5 or parts[0] != CURSOR_PREFIX or not parts[4]:
        raise CursorError(
            f"malformed cursor {cursor!r}; use a cursor returned by session.observe()"
        )
    try:
        revision, position = int(parts[2]), int(parts[3])
    except ValueError:
        raise CursorError(f"malformed cursor {cursor!r}: revision and position must be integers") from None
    if parts[4] != session_id:
        raise CursorError(
            f"cursor belongs to session {parts[4]!r}, not {session_id!r}; observe that session instead"
        )
    return parts[1], revision, position


class LiveReplayStore:
    def __init__(self, max_events: int = 2048, max_age_s: float = 120.0) -> None:
        self.max_events = max(1, max_events)
        self.max_age_s = max_age_s
        self.nonce = os.urandom(4).hex()
        self._lock = threading.Lock()
        self._buffers: dict[str, _Buffer] = {}

    def cursor(self, session_id: str, revision: int, position: int) -> str:
        return f"{CURSOR_PREFIX}:{self.nonce}:{revision}:{position}:{session_id}"

    def current_cursor(self, session_id: str, revision: int) -> str:
        with self._lock:
            buf = self._buffers.get(session_id)
            return self.cursor(session_id, revision, buf.tail if buf else 0)

    def append(self, session_id: str, revision: int, kind: str, **fields: Any) -> None:
        now = time.monotonic()
        with self._lock:
            buf = self._buffers.get(session_id)
            if buf is None:
                buf = self._buffers[session_id] = _Buffer(collections.deque())
            buf.tail += 1
            buf.revision = revision
            entry: _Entry
            if buf.subscribers:
                entry = event = SessionObservationEvent(
                    session_id, revision, self.cursor(session_id, revision, buf.tail), kind,
                    **fields)
            else:  # nobody waits: the event (its cursor string too) is built if replayed
                entry = (revision, kind, fields)
            ev = buf.events
            ev.append((buf.tail, now, entry))
            # ``_trim`` inlined (one append per turn event): the count, then the age bound
            while len(ev) > self.max_events:
                ev.popleft()
            while ev and now - ev[0][1] > self.max_age_s:
                ev.popleft()
            if not buf.subscribers:
                return
            subscribers = list(buf.subscribers)
        for sub in subscribers:
            sub.offer(event)

    def _event(self, session_id: str, position: int, entry: _Entry) -> SessionObservationEvent:
        if isinstance(entry, SessionObservationEvent):
            return entry
        revision, kind, fields = entry
        return SessionObservationEvent(
            session_id, revision, self.cursor(session_id, revision, position), kind, **fields)

    def _trim(self, buf: _Buffer, now: float) -> None:
        ev = buf.events
        while len(ev) > self.max_events:
            ev.popleft()
        while ev and now - ev[0][1] > self.max_age_s:
            ev.popleft()

    def replay_after(self, cursor: str, session_id: str) -> list[SessionObservationEvent] | LiveReplayGap:
        nonce, _rev, pos = parse_cursor(cursor, session_id)
        with self._lock:
            return self._replay_locked(cursor, session_id, nonce, pos)

    def _replay_locked(
        self, cursor: str, session_id: str, nonce: str, pos: int
    ) -> list[SessionObservationEvent] | LiveReplayGap:
        buf = self._buffers.get(session_id)
        tail = buf.tail if buf else 0
        latest = self.cursor(session_id, buf.revision if buf else 0, tail)
        if nonce != self.nonce:
            return LiveReplayGap(session_id, cursor, latest, "unavailable") if pos > 0 or buf else []
        if pos > tail:
            return LiveReplayGap(session_id, cursor, latest, "unavailable")
        if buf is None:
            return []
        self._trim(buf, time.monotonic())
        if not buf.events:
            return LiveReplayGap(session_id, cursor, latest, "trimmed") if pos < tail else []
        first = buf.events[0][0]
        if pos + 1 < first:
            return LiveReplayGap(session_id, cursor, latest, "trimmed")
        return [self._event(session_id, p, e) for p, _, e in buf.events if p > pos]

    def subscribe(self, cursor: str, session_id: str) -> _Subscription | LiveReplayGap:
        nonce, _rev, pos = parse_cursor(cursor, session_id)
        with self._lock:
            replay = self._replay_locked(cursor, session_id, nonce, pos)
            if isinstance(replay, LiveReplayGap):
                return replay
            buf = self._buffers.get(session_id)
            if buf is None:
                buf = self._buffers[session_id] = _Buffer(collections.deque())
            sub = _Subscription(self, session_id, replay, self.max_events)
            buf.subscribers.append(sub)
            return sub

    def _unsubscribe(self, session_id: str, sub: _Subscription) -> None:
        with self._lock:
            buf = self._buffers.get(session_id)
            if buf is not None and sub in buf.subscribers:
                buf.subscribers.remove(sub)

    def trim_session(self, session_id: str) -> None:
        with self._lock:
            buf = self._buffers.get(session_id)
            if buf is not None:
                self._trim(buf, time.monotonic())


class _Subscription:
    """Replay-then-live events on the subscribing loop. ``lagged`` after overflow."""

    def __init__(self, store: LiveReplayStore, session_id: str,
                 replay: list[SessionObservationEvent], capacity: int) -> None:
        self._store = store
        self._session_id = session_id
        self._pending: collections.deque[SessionObservationEvent] = collections.deque(replay)
        self._capacity = capacity
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.lagged = False
        self.closed = False

    def offer(self, event: SessionObservationEvent) -> None:
        with self._lock:
            if len(self._pending) >= self._capacity:
                self.lagged = True
                self._pending.clear()
            else:
                self._pending.append(event)
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def close(self) -> None:
        self.closed = True
        self._store._unsubscribe(self._session_id, self)
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    def __aiter__(self) -> AsyncIterator[SessionObservationEvent]:
        return self

    async def __anext__(self) -> SessionObservationEvent:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
        assert self._wake is not None
        while True:
            with self._lock:
                if self.lagged:
                    raise SubscriberLagged(self._session_id)
                if self._pending:
                    event: SessionObservationEvent = self._pending.popleft()
                    return event
                self._wake.clear()
            if self.closed:
                raise StopAsyncIteration
            await self._wake.wait()


class SubscriberLagged(Exception):
    pass
