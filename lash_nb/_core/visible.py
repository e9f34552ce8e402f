"""Outside text made fit to show: no terminal escapes, no control characters, no bidi controls.

Tool output, model output, prompts and errors are untrusted (ADR 0135). A tool that prints
for a terminal writes ANSI colour codes, cursor moves, hyperlinks (OSC 8) and bells; shown
in a page those are garbage (``[31mFAILED[0m``) and invisible characters kept in the saved
notebook. :func:`visible` drops every escape sequence (ECMA-48: CSI, OSC, DCS/SOS/PM/APC
strings, two-character escapes, and their 8-bit forms) and every other C0 and C1 control
character except tab, line feed and carriage return.

It drops the Unicode bidirectional controls as well (ADR 0142): the embeddings and overrides
(U+202A..U+202E), the isolates (U+2066..U+2069) and the marks (U+200E, U+200F, U+061C). They
have no glyph and only change the order in which a browser draws the text around them, so a
"Trojan source" output can show a comment over the code it hides, or ``2 - 1`` for
``1 - 2``. Right-to-left letters keep their direction: the reader sees the text in the order
it was written. The store keeps the text as it came; this runs where it is shown.
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # OSC: titles, hyperlinks
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]"  # two-character escapes (charset, keypad, reset)
)
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
                       "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# an escape sequence whose last bytes have not come yet (text that is still arriving)
_UNFINISHED = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*\x1b?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*\x1b?"
    r"|\x1b[ -/]*"
)
_INTRODUCERS = "\x1b\x9b\x9d\x90\x98\x9e\x9f"


def visible(text: str) -> str:
    """``text`` without escape sequences, control characters (tab, newlines kept) and
    bidirectional controls."""
    if not _CONTROLS.search(text):  # every escape starts with one (ESC or a C1 control)
        return text
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def visible_so_far(text: str) -> str:
    """:func:`visible` of text that is still arriving (a streamed answer): an escape sequence
    cut at its end is held back, since its last bytes may come with the next piece. Shown
    as it grows, the text grows by appending, with no remnant (``3`` of ``ESC [3``) shown
    and taken back."""
    if not _CONTROLS.search(text):
        return text
    return visible(text[:unfinished_escape_start(text)])


def visible_json(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with :func:`visible` applied to
    every string in it, keys included."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, dict):
        return {visible_json(k): visible_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [visible_json(v) for v in value]
    return value


def unfinished_escape_start(text: str) -> int:
    """Where an escape sequence cut at the end of ``text`` starts (``len(text)``: none)."""
    last = max(text.rfind(c) for c in _INTRODUCERS)
    if last >= 0 and _UNFINISHED.fullmatch(text, last):
        return last
    return len(text)


def escape_end(text: str, at: int, *, back: int = 512) -> int:
    """Where text starting at ``at`` may begin without the remnant of an escape sequence: the
    end of one that starts before ``at`` (within ``back`` characters) and runs past it, else
    ``at``. A cut's second half starts there (``_core/tool_output.py``)."""
    start = max(0, at - back)
    last = max(text.rfind(c, start, at) for c in _INTRODUCERS)
    if last < 0:
        return at
    found = _ESCAPES.match(text, last)
    return found.end() if found is not None and found.end() > at else at


def as_a_terminal_shows(text: str, *, line_ends_kept: bool = False) -> str:
    """Each line of ``text`` as a terminal or a cell's stream output shows it (ADR 210): a
    carriage return goes back to the line's start and what follows writes over what was
    there (a ``tqdm`` bar redrawn shows its last state); ``\\r\\n`` is a line end.
    ``line_ends_kept``: a line whose only carriage return ends it (``\\r\\n``) is left as
    it came, only redrawn lines change (what a call keeps of its prints, ADR 223)."""
    if "\r" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "\r" in (line.rstrip("\r") if line_ends_kept else line):
            shown = ""
            for part in line.rstrip("\r").split("\r"):
                shown = part + shown[len(part):]
            lines[i] = shown
    return "\n".join(lines)


__all__ = ["as_a_terminal_shows", "escape_end", "unfinished_escape_start", "visible",
           "visible_json", "visible_so_far"]
