"""The per-session cancel registry behind ``cancel_running_turns()`` and the Stop button.

Theory of operation
- Each turn (foreground or queued drain) registers its :class:`CancellationToken` when the
  builder prepares it, before it waits for the session's writer lock, and removes it when the
  turn ends however it ends. So a sweep also reaches turns still waiting for the lock.
- ``cancel_all`` cancels every registered token and returns how many it signalled. The first
  origin written to a token wins.
- Scope: one registry per opened session handle (and the clones that share it); another
  ``open()`` of the same session id has its own registry.
- Thread-safe: the Stop button may call it from a comm handler on any thread.
"""

from __future__ import annotations

import itertools
import threading

from .._core.cancel import CancellationToken


class TurnCancelRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._tokens: dict[int, CancellationToken] = {}
        self._turn_ids: dict[int, str] = {}

    def register(self, token: CancellationToken, turn_id: str | None = None) -> int:
        with self._lock:
            key = next(self._ids)
            self._tokens[key] = token
            if turn_id is not None:
                self._turn_ids[key] = turn_id
            return key

    def set_turn_id(self, key: int, turn_id: str) -> None:
        with self._lock:
            if key in self._tokens:
                self._turn_ids[key] = turn_id

    def unregister(self, key: int) -> None:
        with self._lock:
            self._tokens.pop(key, None)
            self._turn_ids.pop(key, None)

    def cancel_turn(self, turn_id: str, origin: str | None = None,
                    reason: str | None = None) -> bool:
        """Cancel the registered turn with this id (exact match); True if signalled."""
        with self._lock:
            tokens = [self._tokens[k] for k, t in self._turn_ids.items() if t == turn_id]
        return any([t.cancel(origin, reason) for t in tokens])

    def cancel_all(self, origin: str | None = None, reason: str | None = None) -> int:
        with self._lock:
            tokens = list(self._tokens.values())
        signalled = 0
        for token in tokens:
            if token.cancel(origin, reason):
                signalled += 1
        return signalled

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)
