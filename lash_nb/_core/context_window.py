"""The context-window policy: which part of the active path a model call sends (ADR 0060).

lash's default rolling-history plugin shapes the *prompt view*, never the session graph: when
the last prompt came within a buffer of the model's context window, the next call sends the
system prompt plus the newest messages, cut at a user-message boundary. lash_nb does the same
with the numbers below, with two differences, both because lash_nb often does not know the
window:

- Tokens are estimated as lash's rolling history does (``ceil(characters / 4)`` per part),
  from the messages about to be sent, not from the last call's usage.
- When a call fails with ``context_overflow`` (the provider's "context length exceeded") and
  it had sent the whole path, the runtime sends it once more through a window whose size is
  the estimate that failed (``learn_window``): the largest prompt known not to fit. The same
  session keeps that window for its later calls, in this process.

The rules (pure; the runtime applies them in ``TurnRun``):
- ``usable = window - min(BUFFER_TOKENS, window // 5)``: a path estimated below it is sent whole.
- Otherwise keep the newest messages worth ``min(KEEP_RECENT_TOKENS, usable // 2)``, extended
  back to the nearest user prompt (a user message that is not tool results), so a tool call is
  never sent without its result nor a result without its call. The current turn's prompt and
  everything after it are always sent, even when they alone exceed the window (the provider
  then says so, and the turn stops ``provider_error`` with that message).
- Nothing is deleted: the left-out messages stay in the graph and the store; a later session
  with a larger model sees them again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .records import Message, Role

BUFFER_TOKENS = 20_000
KEEP_RECENT_TOKENS = 20_000
PART_OVERHEAD_TOKENS = 4  # per message: role and framing, as the offline provider counts


def message_tokens(message: Message) -> int:
    return PART_OVERHEAD_TOKENS + sum(math.ceil(len(p.content) / 4) for p in message.parts)


def estimate_tokens(messages: Sequence[Message], system_prompt: str | None = None) -> int:
    """The estimated prompt size of ``messages`` (and the system prompt), in tokens."""
    system = math.ceil(len(system_prompt) / 4) if system_prompt else 0
    return system + sum(message_tokens(m) for m in messages)


def is_prompt(message: Message) -> bool:
    """A user message that starts an exchange (not a message of tool results)."""
    return message.role is Role.USER and not message.tool_results()


@dataclass(frozen=True, slots=True)
class Window:
    """What one call sends: ``messages[start:]``; ``left_out`` = ``start`` messages."""

    start: int
    estimated_tokens: int  # of the whole path
    sent_tokens: int  # of the part sent
    window_tokens: int

    @property
    def left_out(self) -> int:
        return self.start


def usable_tokens(window: int) -> int:
    return window - min(BUFFER_TOKENS, window // 5)


def plan(messages: Sequence[Message], window: int | None, *,
         system_prompt: str | None = None) -> Window | None:
    """The window for a call over ``messages`` with a context window of ``window`` tokens;
    None: send everything (no window known, the path fits, or nothing can be left out)."""
    if not window or window <= 0:
        return None
    total = estimate_tokens(messages, system_prompt)
    usable = usable_tokens(window)
    if total < usable:
        return None
    keep = min(KEEP_RECENT_TOKENS, usable // 2)
    latest = next((i for i in range(len(messages) - 1, -1, -1) if is_prompt(messages[i])), None)
    if latest is None or latest == 0:
        return None
    sent = math.ceil(len(system_prompt) / 4) if system_prompt else 0
    start = latest
    for i in range(len(messages) - 1, -1, -1):
        sent += message_tokens(messages[i])
        if i <= latest and is_prompt(messages[i]):
            start = i
            if sent >= keep:
                break
    if start == 0:
        return None
    sent_tokens = estimate_tokens(messages[start:], system_prompt)
    return Window(start, total, sent_tokens, window)


def learn_window(messages: Sequence[Message], system_prompt: str | None = None) -> int:
    """The window to assume after ``messages`` were refused as too long: their estimate."""
    return max(estimate_tokens(messages, system_prompt), 1)
