"""Incremental server-sent-events decoder over raw network bytes.

Theory of operation: bytes arrive in arbitrary pieces. An incremental UTF-8 decoder turns them
into text, holding back a character split across pieces. Text is cut into lines on ``\\r\\n``,
``\\n`` or ``\\r``; a trailing ``\\r`` is held back until the next piece shows whether a ``\\n``
follows. Each line is a field (``data``, ``event``, ``id``, ``retry``), a comment (leading
``:``) or blank; a blank line dispatches the event built so far if it has any ``data`` lines
(joined with ``\\n``). ``flush()`` at a clean end of stream dispatches an unterminated last
event (servers that omit the final blank line); a dropped stream never calls it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SseDecoder:
    """Feed raw byte chunks with :meth:`feed`; each call returns the events it completed."""

    __slots__ = ("_utf8", "_text", "_data", "_event", "_id", "_has_data")

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._has_data = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._text + self._utf8.decode(chunk)
        out: list[SseEvent] = []
        start = 0
        n = len(text)
        while start < n:
            nl = text.find("\n", start)
            cr = text.find("\r", start, nl if nl >= 0 else n)
            if cr >= 0:
                if cr == n - 1:
                    break  # a "\r" at the end may be the first half of "\r\n"
                end, nxt = cr, cr + 2 if text[cr + 1] == "\n" else cr + 1
            elif nl >= 0:
                end, nxt = nl, nl + 1
            else:
                break
            self._line(text[start:end], out)
            start = nxt
        self._text = text[start:]
        return out

    def flush(self) -> list[SseEvent]:
        """End of a cleanly closed stream: dispatch what is pending."""
        out: list[SseEvent] = []
        tail = self._text + self._utf8.decode(b"", final=True)
        self._text = ""
        if tail.endswith("\r"):
            tail = tail[:-1]
        if tail:
            self._line(tail, out)
        self._line("", out)
        return out

    def _line(self, line: str, out: list[SseEvent]) -> None:
        if not line:
            if self._has_data:
                out.append(SseEvent("\n".join(self._data), self._event, self._id))
            self._data = []
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
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        # "retry" and unknown fields are ignored, as the SSE standard says.
