"""``ErrorOutput``: what a stdio MCP server writes to its stderr, kept bounded and scrubbed.

Theory of operation
- The server's stderr is the write end of a pipe (:attr:`ErrorOutput.writer`, handed to the
  SDK as ``errlog``); once the server is spawned :meth:`ErrorOutput.spawned` closes this
  process's copy, so the reader sees the end when the server (and any helper that inherited
  its stderr) exits.
- One daemon thread reads the pipe (whatever the event loop is doing; a notebook may restart
  its loop), decodes it as UTF-8 with U+FFFD for bad bytes and splits it into lines. A
  carriage return redraws its line (a spinner, a progress bar): what follows the last one is
  what a terminal shows, and what is kept. Each line is scrubbed (the caller's ``scrub``:
  the server's secret-named ``env`` values, URL passwords, credential shapes) and cleaned of
  control characters before it is kept.
- Bounds: the last :data:`MAX_LINES` lines and :data:`MAX_CHARS` characters; older lines
  are dropped and counted, and :meth:`ErrorOutput.text` opens with
  ``[N earlier lines dropped]``. A line longer than :data:`LINE_LIMIT` is kept cut, with
  `` [line cut]``; the rest of it, up to its newline, is read and thrown away. It is
  scrubbed before it is cut, over twice the kept length, so a secret across the cut is not
  half kept.
- Nothing is written to disk; the thread holds at most one read (64 KiB) and one line.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
from collections import deque
from collections.abc import Callable
from typing import TextIO, cast

from .._core.text import clean_text

MAX_LINES = 500
MAX_CHARS = 64 * 1024
LINE_LIMIT = 4096
_READ = 65536
# ANSI escape sequences (a node server's colours) and the other C0 controls but tab
_CONTROLS = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


class ErrorOutput:
    """A server's stderr: the bounded, scrubbed tail of it (see the module docstring)."""

    def __init__(self, name: str, scrub: Callable[[str], str]) -> None:
        self._scrub = scrub
        self._lines: deque[str] = deque()
        self._chars = 0
        self._dropped = 0
        self._lock = threading.Lock()
        read, write = os.pipe()
        self.writer: TextIO | None = cast(TextIO, os.fdopen(write, "w", encoding="utf-8"))
        self._thread = threading.Thread(target=self._pump, args=(read,), daemon=True,
                                        name=f"mcp-stderr:{name}")
        self._thread.start()

    def spawned(self) -> None:
        """The server holds its own copy of the pipe now (or will never run): close ours."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()

    def wait(self, timeout: float) -> None:
        """Block until the server's stderr ended (it exited) or ``timeout`` seconds passed:
        its last words are read before an error quotes them."""
        self._thread.join(timeout)

    def text(self) -> str:
        with self._lock:
            head = [f"[{self._dropped} earlier lines dropped]"] if self._dropped else []
            return "\n".join([*head, *self._lines])

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def _pump(self, fd: int) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        cutting = False  # reading the rest of a line already kept cut
        with open(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(_READ):
                pending = _redrawn(pending + decoder.decode(chunk))
                *done, pending = pending.split("\n")
                for line in done:
                    if cutting:
                        cutting = False
                        continue
                    self._add(line)
                if len(pending) > 2 * LINE_LIMIT:
                    if not cutting:
                        self._add(pending, cut=True)
                        cutting = True
                    pending = ""
            pending += decoder.decode(b"", final=True)
        if pending and not cutting:
            self._add(pending)

    def _add(self, line: str, *, cut: bool = False) -> None:
        line = _redrawn(line.rstrip("\r"))
        long = cut or len(line) > LINE_LIMIT
        text = _CONTROLS.sub("", clean_text(self._scrub(line[:2 * LINE_LIMIT])))
        if long:
            text = text[:LINE_LIMIT] + " [line cut]"
        with self._lock:
            self._lines.append(text)
            self._chars += len(text) + 1
            # 64 characters left for the line that says how many were dropped
            while len(self._lines) > MAX_LINES or (self._chars > MAX_CHARS - 64
                                                   and len(self._lines) > 1):
                self._chars -= len(self._lines.popleft()) + 1
                self._dropped += 1


def _redrawn(text: str) -> str:
    """``text`` with each line's redraws dropped: what its last carriage return (not one
    that ends it, as in ``\\r\\n``) is followed by, as a terminal shows it."""
    if "\r" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        at = line.rstrip("\r").rfind("\r")
        if at >= 0:
            lines[i] = line[at + 1:]
    return "\n".join(lines)
