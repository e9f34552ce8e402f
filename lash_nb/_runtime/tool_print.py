"""What a tool prints during its call, taken from ``sys.stdout`` / ``sys.stderr`` for that call
alone (docs/adr/0197).

Theory of operation
- A call being captured has a :class:`Printed` in the context variable ``_CAPTURE``. The batch
  sets it around the awaited call only (``with Printed(...)`` in ``ToolBatch._execute``): an
  ``async def`` tool runs in that context (its task, or a copy of it for each call of a
  concurrent batch), a plain function's
  thread gets a copy of it (``_on_daemon_thread`` runs the function in
  ``contextvars.copy_context()``), so what the call prints reaches its own ``Printed`` and
  nothing else does: another cell, another turn, a bystander task or thread (their context
  has no ``Printed``) writes to the stream as before.
- While at least one call is captured, ``sys.stdout`` and ``sys.stderr`` are :class:`_Tee`
  objects that send a write to the current context's ``Printed`` or, with none, to the stream
  they replaced (attributes too: ipykernel's ``set_parent``, ``fileno``...). The last call to
  end puts the replaced streams back, if nobody replaced the tees meanwhile. ``warnings`` and
  a ``logging`` handler created without a stream (``lastResort``, a ``StreamHandler()`` made
  while a tee is in place) write to ``sys.stderr`` when they write, so they are taken too; a
  ``StreamHandler`` that holds the stream it replaced writes through the tee while a call runs
  (its ``stream`` is swapped and put back), so ``logging.basicConfig()`` output is taken too.
- A ``Printed`` keeps its first ``limit // 2 + EDGE`` characters and its last
  ``limit - limit // 2 + EDGE`` (``_core/tool_output.py``'s cut needs those), counting the
  characters and lines between: a tool printing megabytes holds ``limit`` characters, and
  :meth:`Printed.text` gives the whole text or its two ends around the line saying what was
  left out, as a tool's output is cut (ADR 174). Before the head overflows, its finished
  lines that were redrawn (``tqdm``) keep only their last state, so a long run of progress
  bars leaves the lines printed between them in the head instead of its redraws (ADR 223).
- Live: a ``Printed`` with a ``live`` callback hands it its whole lines as they come (up to
  the head it keeps), at most every ``LIVE_EVERY_S`` on the loop, so a tool printing a line a
  millisecond makes a few activities, not thousands. A partial last line waits for the next
  write or the call's end (the completion carries the whole text), but for what comes
  before its last carriage return: a progress bar redrawn (``\\r`` then the bar) moves on
  the row. Once the tool printed past that head, the callback is told so once (``more``):
  its live lines stop there while the tool goes on, and a row that shows them says so
  (ADR 210).
- A write after the call ended (a tool's thread a stop left running, a task it spawned) goes
  to the stream the tee replaced.
- Echo: a call whose turn no widget shows (a script, a worker, a Python-API turn awaited in a
  cell) still writes what it prints to the stream the tee replaced, as it did before ADR 197
  (a worker's log, a terminal, the cell's output), every key the process knows taken out;
  it is kept on the call as well. Only a turn on a live widget (its row shows the lines)
  takes them off the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .._core.tool_output import EDGE, cut_ends, joined
from .._core.visible import as_a_terminal_shows

LIVE_EVERY_S = 0.2
_CAPTURE: contextvars.ContextVar[Printed | None] = contextvars.ContextVar(
    "lash_tool_printed", default=None)
_lock = threading.Lock()  # the tees' install count and the streams they replaced
_installed = 0
_replaced: tuple[Any, Any] | None = None  # sys.stdout, sys.stderr as the first call found them
_handlers: list[tuple[logging.StreamHandler[Any], Any]] = []
_tees: list[_Tee | None] = [None, None]
_known: tuple[Any, list[logging.StreamHandler[Any]]] = (None, [])  # logging's handler list


class Printed:
    """The text one tool call printed, bounded (the module docstring). Its buffers are made
    at the first write: most calls print nothing, and each costs a turn's time."""

    __slots__ = (
        "_head",
        "_head_len",
        "_head_max",
        "_live",
        "_lock",
        "_loop",
        "_more",
        "_redrawn",
        "_scheduled",
        "_sent",
        "_tail",
        "_tail_len",
        "_tail_max",
        "_timer",
        "_token",
        "chars",
        "closed",
        "echo",
        "limit",
        "lines",
    )

    def __init__(self, limit: int, *, live: Callable[[str, bool], None] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None,
                 echo: Callable[[str], str] | None = None) -> None:
        self.limit = limit
        self.echo = echo  # with a scrub: also write to the replaced stream (the docstring)
        self.chars = 0
        self.closed = False
        self._lock = threading.Lock()
        self._live = live
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._token: contextvars.Token[Printed | None] | None = None

    def _start(self) -> None:
        """The buffers, at the first write (under the lock)."""
        self._head_max = self.limit // 2 + EDGE
        self._tail_max = self.limit - self.limit // 2 + EDGE
        self._head: list[str] = []
        self._head_len = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self.lines = 0
        self._sent = 0  # characters of the head handed to ``live``
        self._scheduled = False
        self._more = 0  # 1: past the head (live lines end there), 2: ``live`` was told
        self._redrawn = 0  # characters of redrawn states the head let go to make room

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            if not self.chars:
                self._start()
            self.chars += len(text)
            self.lines += text.count("\n")
            room = self._head_max - self._head_len
            if len(text) > room and not self._more:
                room = self._keep_last_states(len(text) - room)
            if room > 0:
                self._head.append(text[:room])
                self._head_len += min(room, len(text))
                text = text[room:]
            if text:
                self._more = self._more or 1
                self._tail.append(text)
                self._tail_len += len(text)
                while self._tail_len - len(self._tail[0]) >= self._tail_max:
                    self._tail_len -= len(self._tail.popleft())
            wake = (self._live is not None and not self._scheduled
                    and (self._sent < self._head_len or self._more == 1))
            if wake:
                self._scheduled = True
        if wake and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody shows it
                self._loop.call_soon_threadsafe(self._arm)

    def _keep_last_states(self, wanted: int) -> int:
        """Room in a full head: its finished lines that were redrawn (a ``tqdm`` bar per epoch)
        keep their last state only, as a terminal shows them, so the lines printed between
        the bars stay instead of the head filling with redraws. Done only when the head
        would otherwise overflow, and kept only if it frees ``wanted`` characters and at least
        a sixteenth of the head (a pass reads the head once: at most 16 passes per head's
        worth of new text, not one per write)."""
        head = "".join(self._head)
        end = head.rfind("\n") + 1
        # the line the live row is in (if not past ``end``) is sent again from its start, whole
        cut = end if self._sent >= end else head.rfind("\n", 0, self._sent) + 1
        shown = as_a_terminal_shows(head[:cut], line_ends_kept=True)
        more = as_a_terminal_shows(head[cut:end], line_ends_kept=True)
        freed = end - len(shown) - len(more)
        if freed >= max(wanted, self._head_max // 16):
            self._head = [shown + more + head[end:]]
            self._head_len -= freed
            self._redrawn += freed
            self._sent = len(shown) + max(self._sent - end, 0)
        return self._head_max - self._head_len

    def _arm(self) -> None:
        if not self.closed and self._loop is not None:
            self._timer = self._loop.call_later(LIVE_EVERY_S, self._flush)

    def _flush(self) -> None:
        with self._lock:
            self._scheduled = False
            head = "".join(self._head)
            # whole lines, and a line being redrawn (a progress bar) up to its last redraw
            end = max(head.rfind("\n", self._sent), head.rfind("\r", self._sent)) + 1
            new, self._sent = head[self._sent:end], max(self._sent, end)
            more = self._more == 1
            if more:
                self._more = 2
        if (new or more) and not self.closed and self._live is not None:
            self._live(new, more)

    def __enter__(self) -> Printed:
        """Take what the code run inside (and what it starts in this context) prints."""
        _install()
        self._token = _CAPTURE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _CAPTURE.reset(self._token)
        self.close()
        _uninstall()

    def close(self) -> None:
        """The call ended: no more live text; later writes go to the replaced stream. The
        live callback is dropped: it holds the batch, which holds this capture, and that
        cycle would keep the batch for the garbage collector instead of freeing it."""
        self.closed = True
        self._live = self._loop = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def text(self, scrub: Callable[[str], str] | None = None) -> str | None:
        """What the call printed (None: nothing), whole or cut to ``limit`` around a line
        saying what was left out; ``scrub`` runs on the two ends with their edges first."""
        if not self.chars:
            return None
        with self._lock:
            head, tail = "".join(self._head), "".join(self._tail)
            n, lines = self.chars, self.lines
        if n - self._redrawn <= self.limit:
            return head + tail
        head, tail = cut_ends(head, tail[max(len(tail) - self._tail_max, 0):], self.limit,
                              scrub)
        left = lines - head.count("\n") - tail.count("\n")
        return joined(head, tail, n, left, self.limit, verb="printed")


class _Tee:
    """``sys.stdout`` / ``sys.stderr`` while a call is captured (the module docstring)."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "_inner", inner)

    def write(self, text: str) -> int:
        printed = _CAPTURE.get()
        if printed is None or printed.closed:
            n = self._inner.write(text)
            return n if isinstance(n, int) else len(text)
        printed.write(str(text))
        if printed.echo is not None:
            self._inner.write(printed.echo(str(text)))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        printed = _CAPTURE.get()
        if printed is None or printed.closed or printed.echo is not None:
            self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


def _install() -> None:
    global _installed, _replaced
    with _lock:
        _installed += 1
        if _installed > 1:
            return
        out, err = _replaced = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _tee(0, out), _tee(1, err)
        for handler in _stream_handlers():
            stream = handler.stream
            if stream is out or stream is err:
                _handlers.append((handler, stream))
                handler.stream = _tees[0 if stream is out else 1]


def _tee(i: int, stream: Any) -> _Tee:
    """The tee of ``stream``: the one made last time when it is the same stream."""
    tee = _tees[i]
    if tee is None or tee._inner is not stream:
        tee = _tees[i] = _Tee(stream)
    return tee


def _uninstall() -> None:
    global _installed, _replaced
    with _lock:
        _installed -= 1
        if _installed or _replaced is None:
            return
        # not if someone replaced a tee meanwhile: theirs stays
        if sys.stdout is _tees[0]:
            sys.stdout = _replaced[0]
        if sys.stderr is _tees[1]:
            sys.stderr = _replaced[1]
        _replaced = None
        for handler, stream in _handlers:
            if isinstance(handler.stream, _Tee):
                handler.stream = stream
        _handlers.clear()


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """Every stream handler alive whose stream is its own attribute (not ``lastResort``, whose
    ``stream`` is ``sys.stderr`` when it writes; not a file): ``logging``'s own list of the
    handlers it made (a few, where walking the loggers of a kernel that imported pandas and
    matplotlib costs 100 us a call), or, without that list, the handlers of every logger."""
    global _known
    made = getattr(logging, "_handlerList", None)
    if isinstance(made, list):
        key = (len(made), made[-1] if made else None)
        if _known[0] == key:  # no handler made or gone since the last call
            return _known[1]
        handlers = [ref() for ref in list(made)]
    else:  # another Python: the loggers' handlers
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        handlers = [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]
        key = None
    found = [h for h in handlers if isinstance(h, logging.StreamHandler)
             and not isinstance(h, logging.FileHandler) and "stream" in vars(h)]
    if key is not None:
        _known = (key, found)
    return found


__all__ = ["LIVE_EVERY_S", "Printed"]
