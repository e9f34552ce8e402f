"""A tool's output, bounded before it enters a session (docs/adr/0174).

Theory of operation
- A tool's output becomes text the model reads: a str as it is, a bytes value as its
  ``b'...'`` form, anything JSON holds as its JSON text, anything else as its ``str()``. When
  that text is longer than the bound (``max_output``, :data:`DEFAULT_MAX_OUTPUT` characters
  unless the tool, its MCP server or the session says otherwise), the output becomes one str:
  the text's first half of the bound, a line of its own saying what was left out, and its last
  half. The cut falls on a line end when one is near (within an eighth of each half). The
  line reads ``[… lash left out 5,134,464 of the 5,200,000 characters (98,740 lines) this tool
  returned; max_output=65,536 …]`` (``bytes`` for a bytes value, whose halves are counted in
  bytes of the value).
- What is bounded is what the session keeps: the model's request, the tool-call record, the
  live events, the store and the notebook record all hold the bounded form; a value that fits
  is kept as it was (a dict stays a dict).
- The cut leaves no remnant of a terminal escape (``ESC [31m`` cut after ``ESC [3``) and no
  half of a surrogate pair on either side; NUL and lone surrogates are then replaced by the
  turn's cleaning (``_core/text.py``), which runs on the bounded form only.
- Secrets at a cut: before a half is cut, it is scrubbed (the caller's ``scrub``) together
  with :data:`EDGE` characters past the cut, so a key across the cut is removed whole, not
  half kept. Only what is kept (and the edges) is scrubbed: a 100 MB log is not searched.
- Memory and time: a str or bytes output is measured and sliced, never copied whole. A list,
  tuple or dict with more items than its text could hold (three characters each at least)
  has only the items at its two ends encoded, and the line counts the items left out
  (``[… lash left out 999,000 of the 1,000,000 items ...]``). Any other value is encoded to
  JSON once (C speed) to be measured, and that text is dropped once cut.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from .._errors import ConfigurationError
from .visible import escape_end, unfinished_escape_start

DEFAULT_MAX_OUTPUT = 65_536  # characters the model is sent of one tool output (ADR 174)
EDGE = 512  # characters scrubbed past each cut, so a secret across it goes whole
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
# the line a cut output holds (a display that shows only part of the output quotes it); a
# cut printed text holds it with "printed" (``tool_print.py``, ADR 197)
CUT_LINE = re.compile(r"\[… lash left out ([\d,]+) of the ([\d,]+) (?:(characters|bytes) "
                      r"\([\d,]+ lines\)|(items)) this tool (returned|printed); "
                      r"max_output=([\d,]+) …\]")


def cut_line(text: str, *, printed: bool = False) -> tuple[re.Match[str], int, int, str] | None:
    """The line :func:`bounded` put in ``text`` (an output it cut), with how many of what
    the tool returned were kept, of how many, and their unit (``characters``, ``bytes`` or
    ``items``). None when ``text`` is no such output: no line, or a line where the cut does
    not put it (near the middle of a text about ``max_output`` long; a whole output may
    quote the line of an earlier one). ``printed``: the line of what a tool printed, cut."""
    verb = "printed" if printed else "returned"
    for m in CUT_LINE.finditer(text):
        left, total, limit = (int(m.group(i).replace(",", "")) for i in (1, 2, 6))
        head = limit // 2
        if (m.group(5) == verb and 0 < left <= total and head // 2 <= m.start() <= head + 3
                and len(text) <= limit + len(m.group(0)) + 5):
            return m, total - left, total, m.group(3) or m.group(4)
    return None


def check_max_output(value: Any, what: str) -> int:
    """``value`` if it is a positive int, else a one-line ConfigurationError naming ``what``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(
            f"{what} must be a positive int (characters of a tool's output the model is sent; "
            f"default {DEFAULT_MAX_OUTPUT:,}), got {value!r}")
    return value


def bounded(value: Any, limit: int, *, scrub: Callable[[str], str] | None = None) -> Any:
    """``value`` whole when its text fits in ``limit`` characters (a value JSON cannot hold
    becomes its ``str()``); else its text's head and tail around a line saying what was left
    out (see the module docstring). May raise what the value's ``str()`` raises."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bounded_bytes(value, limit, scrub)
    if type(value) is not str:
        if isinstance(value, str):
            value = str(value)
        else:
            if type(value) in (list, tuple, dict) and 3 * len(value) > limit + 2:
                cut = _bounded_items(value, limit, scrub)
                if cut is not None:
                    return cut
            try:
                text = _ENCODE(value)
            except (TypeError, ValueError, RecursionError):
                value = str(value)
                if not isinstance(value, str):
                    raise TypeError(f"__str__ returned {type(value).__name__}, not str") from None
            else:
                return value if len(text) <= limit else _cut(text, limit, scrub)
    return value if len(value) <= limit else _cut(value, limit, scrub)


def _encoded(items: Any, chars: int, *, pairs: bool) -> list[str] | None:
    """The JSON texts of ``items`` in order until they hold ``chars`` characters (None: one
    of them JSON cannot hold)."""
    out: list[str] = []
    size = 0
    try:
        for item in items:
            text = _ENCODE({item[0]: item[1]})[1:-1] if pairs else _ENCODE(item)
            out.append(text)
            size += len(text) + 2
            if size >= chars:
                break
    except (TypeError, ValueError, RecursionError):
        return None
    return out


def _bounded_items(value: list[Any] | tuple[Any, ...] | dict[Any, Any], limit: int,
                   scrub: Callable[[str], str] | None) -> str | None:
    """A list, tuple or dict with more items than its text could hold in ``limit``
    characters (each takes three at least): only the items at its two ends are encoded, and
    the line counts the items left out. None: it is not that simple (an item JSON cannot
    hold, or the two ends meet); the caller encodes it whole."""
    n = len(value)
    h, t = _halves(limit)
    pairs = type(value) is dict
    items: Any = value.items() if pairs else value  # type: ignore[union-attr]
    first = _encoded(items, h + EDGE, pairs=pairs)
    last = _encoded(reversed(items), t + EDGE, pairs=pairs)
    if first is None or last is None or len(first) + len(last) >= n:
        return None
    opening, closing = ("{", "}") if pairs else ("[", "]")
    head, tail = opening + ", ".join(first), ", ".join(reversed(last)) + closing
    if scrub is not None:
        head, tail = scrub(head), scrub(tail)
    head, tail = head[:h], tail[max(len(tail) - t, 0):]
    shown = _reached(first, h) + _reached(last, t)
    return (f"{head}\n[… lash left out {n - shown:,} of the {n:,} items this "
            f"tool returned; max_output={limit:,} …]\n{tail}")


def _reached(texts: list[str], chars: int) -> int:
    """How many of the items ``texts`` (after a one-character bracket, ", " between them) a
    cut ``chars`` characters in shows, wholly or in part."""
    at, count = 1, 0
    for text in texts:
        if at >= chars:
            break
        count += 1
        at += len(text) + 2
    return count


def _halves(limit: int) -> tuple[int, int]:
    head = limit // 2
    return head, limit - head


def _cut(text: str, limit: int, scrub: Callable[[str], str] | None) -> str:
    n = len(text)
    h, t = _halves(limit)
    head, tail = cut_ends(text[:h + EDGE], text[max(n - t - EDGE, 0):], limit, scrub)
    lines = text.count("\n", len(head), n - len(tail))
    return joined(head, tail, n, lines, limit)


def cut_ends(head: str, tail: str, limit: int,
             scrub: Callable[[str], str] | None) -> tuple[str, str]:
    """What is kept of a text too long for ``limit``, given its first ``limit // 2 + EDGE``
    and its last ``limit - limit // 2 + EDGE`` characters: each scrubbed with its edge, then
    cut on a line end when one is near, never inside an escape or a surrogate pair."""
    h, t = _halves(limit)
    if scrub is not None:
        head, tail = scrub(head), scrub(tail)
    head, at = head[:h], max(len(tail) - t, 0)
    line = head.rfind("\n", h - h // 8)
    if line >= 0:
        head = head[:line + 1]
    line = tail.find("\n", at, at + t // 8)
    at = line + 1 if line >= 0 else at
    # no half of a terminal escape at either side of the cut (ADR 135 shows text without
    # escapes, but their remnants would be text), no half of a surrogate pair
    head = head[:unfinished_escape_start(head)]
    at = escape_end(tail, at)
    if head and "\ud800" <= head[-1] <= "\udbff":
        head = head[:-1]
    if at < len(tail) and "\udc00" <= tail[at] <= "\udfff":
        at += 1
    return head, tail[at:]


def joined(head: str, tail: str, n: int, lines: int, limit: int, *,
           verb: str = "returned") -> str:
    """``head``, the line saying what was left out of the ``n`` characters, and ``tail``."""
    left = n - len(head) - len(tail)
    return (f"{head}\n[… lash left out {left:,} of the {n:,} characters ({lines:,} lines) this "
            f"tool {verb}; max_output={limit:,} …]\n{tail}")


def _fit(data: memoryview, chars: int, *, from_end: bool) -> int:
    """How many bytes of ``data`` (from its start, or its end) show in at most ``chars``
    characters of their ``b'...'`` form (a byte shows as 1 to 4)."""
    lo, hi = 0, min(len(data), chars)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = data[len(data) - mid:] if from_end else data[:mid]
        if len(repr(bytes(piece))) - 3 <= chars:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _bounded_bytes(value: bytes | bytearray | memoryview, limit: int,
                   scrub: Callable[[str], str] | None) -> str:
    data = memoryview(value).cast("B")
    n = len(data)
    if n <= limit:
        shown = repr(bytes(data))
        if len(shown) - 3 <= limit:
            return shown
    h, t = _halves(limit)
    hb, tb = _fit(data, h, from_end=False), _fit(data, t, from_end=True)
    head, tail = _inner(data[:hb + EDGE]), _inner(data[max(n - tb - EDGE, 0):])
    if scrub is not None:
        head, tail = scrub(head), scrub(tail)
    head = head[:len(_inner(data[:hb]))]
    tail = tail[len(tail) - len(_inner(data[n - tb:])):]
    lines = _count_nl(data, hb, n - tb)
    return (f"b'{head}\n[… lash left out {n - hb - tb:,} of the {n:,} bytes ({lines:,} lines) "
            f"this tool returned; max_output={limit:,} …]\n{tail}'")


def _inner(data: memoryview) -> str:
    """What ``b'...'`` shows of ``data``, without the ``b''``."""
    return repr(bytes(data))[2:-1]


def _count_nl(data: memoryview, start: int, end: int) -> int:
    """Newlines in ``data[start:end]``, a megabyte at a time (no copy of the whole)."""
    count, step = 0, 1 << 20
    for at in range(start, end, step):
        count += bytes(data[at:min(at + step, end)]).count(b"\n")
    return count

