"""Incremental server-sent-events decoder over raw network bytes, linear in the input.

Theory of operation: bytes arrive in arbitrary pieces. An incremental UTF-8 decoder turns them
into text, holding back a character split across pieces. Line ends (``\\r\\n``, ``\\n`` or
``\\r``) are normalised to ``\\n`` within each piece; a piece that ends in ``\\r`` ends its line
there and remembers to drop a ``\\n`` that may lead the next piece (the other half of
``\\r\\n``). The unfinished last line of a piece is kept as a list of fragments and joined once
when its end arrives, so a long line costs time and memory in proportion to its length, never
to its length times the number of pieces.

Each line is a field (``data``, ``event``, ``id``, ``retry``), a comment (leading ``:``) or
blank; a blank line dispatches the event built so far if it has any ``data`` lines (joined
with ``\\n``). ``flush()`` at a clean end of stream dispatches an unterminated last event
(servers that omit the final blank line); a dropped stream never calls it. A byte-order mark
at the very start is dropped, as the SSE standard says.

One event (its data lines plus the line being read) may hold at most ``max_event_bytes``
characters of decoded text; past that :class:`SseEventTooLarge` is raised and the decoder must
not be fed again.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

MAX_EVENT_BYTES = 16 * 2**20  # 16 MiB of text in one event (ADR 0016)


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SseEventTooLarge(ValueError):
    """One event grew past ``max_event_bytes``: the server is not framing its events."""


class SseDecoder:
    """Feed raw byte chunks with :meth:`feed`; each call returns the events it completed."""

    __slots__ = (
        "_data",
        "_data_len",
        "_event",
        "_fresh",
        "_has_data",
        "_id",
        "_max",
        "_pending",
        "_pending_len",
        "_skip_lf",
        "_utf8",
    )

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []  # fragments of the unfinished line
        self._pending_len = 0
        self._skip_lf = False
        self._data: list[str] = []
        self._data_len = 0
        self._event: str | None = None
        self._id: str | None = None
        self._has_data = False
        self._max = max_event_bytes
        self._fresh = True  # nothing decoded yet: a leading byte-order mark is dropped

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._utf8.decode(chunk)
        if not text:
            return []
        if self._fresh:
            self._fresh = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        tail = lines.pop()
        out: list[SseEvent] = []
        if lines:
            if self._pending:
                self._pending.append(lines[0])
                lines[0] = "".join(self._pending)
                self._pending = []
                self._pending_len = 0
            for line in lines:
                self._line(line, out)
        if tail:
            self._pending.append(tail)
            self._pending_len += len(tail)
            if self._pending_len + self._data_len > self._max:
                self._too_large()
        return out

    def flush(self) -> list[SseEvent]:
        """End of a cleanly closed stream: dispatch what is pending."""
        out: list[SseEvent] = []
        tail = "".join(self._pending) + self._utf8.decode(b"", final=True)
        self._pending = []
        self._pending_len = 0
        if tail:
            self._line(tail, out)
        self._line("", out)
        return out

    def _too_large(self) -> None:
        raise SseEventTooLarge(
            f"one server-sent event is larger than max_event_bytes={self._max}; the server is "
            "not framing its events"
        )

    def _line(self, line: str, out: list[SseEvent]) -> None:
        if not line:
            if self._has_data:
                out.append(SseEvent("\n".join(self._data), self._event, self._id))
            self._data = []
            self._data_len = 0
            self._event = None
            self._has_data = False
            return
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_len += len(value) + 1
            self._has_data = True
            if self._data_len > self._max:
                self._too_large()
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        # "retry" and unknown fields are ignored, as the SSE standard says.
