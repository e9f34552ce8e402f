"""Text that enters a session is made storable; ids that cannot be stored are refused.

The rule (docs/adr/0012-text-is-cleaned-where-it-enters-a-session-and-bad-ids-are-refused.md):
every store keeps text as UTF-8 (DuckDB JSON, PostgreSQL ``text``/``jsonb``), and two things a
Python ``str`` can hold have no form there:

- a lone surrogate (U+D800..U+DFFF not in a pair), e.g. ``"\\ud800"`` or bytes decoded with
  ``errors="surrogateescape"`` (``b"\\xff"`` -> ``"\\udcff"``);
- NUL (U+0000), which PostgreSQL ``text`` and ``jsonb`` refuse.

And one thing JSON-bound values can hold: a float NaN or infinity (``df["x"].mean()`` of an
empty column, a ratio divided by zero), which is not JSON, which PostgreSQL ``jsonb`` refuses
(the commit failed and the turn was lost) and which a provider's JSON parser may refuse.
:func:`clean_json` writes them as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``,
the words Python's ``json`` spells them with (ADR 139).

:func:`clean_text` replaces each of them with U+FFFD (the replacement character); a high and
low surrogate that do form a pair become the character they encode. :func:`clean_json` does
the same to every string (keys too) inside JSON-bound values. They run where text enters a
session -- turn input, tool arguments and output, model output (prose, reasoning, tool calls,
ids it reports), provider errors, cancel reasons -- so every store receives the same text and
a reopened session shows what the live one showed.

Ids (session, turn, enqueue id, merge key) are never rewritten: :func:`check_id` refuses them
with a one-line error, because silently changing an id would make a later lookup miss.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from .._errors import ConfigurationError
from .json_text import encoder

REPLACEMENT = "\ufffd"


def clean_text(s: str) -> str:
    """``s`` with NUL and lone surrogates replaced by U+FFFD; ``s`` itself when it is clean
    (the common case costs a flag check for ASCII text, one encode otherwise)."""
    if s.isascii():
        return s.replace("\x00", REPLACEMENT) if "\x00" in s else s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 joins surrogates that form a pair and replaces the lone ones
        s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return s.replace("\x00", REPLACEMENT) if "\x00" in s else s


def is_clean(s: str) -> bool:
    return clean_text(s) is s


def clean_json(value: Any) -> Any:
    """``value`` with :func:`clean_text` applied to every string inside it (dict keys too)
    and NaN / infinities spelled as strings; containers are copied only when something in
    them changed."""
    t = type(value)
    if t is str:
        return clean_text(value)
    if (t is dict or t is list) and _looks_clean(value):
        return value
    return _walk(value)


# allow_nan=False: a NaN or an infinity fails the encode and sends the value to the walk
_encode = encoder(ensure_ascii=False, check_circular=False, default=repr, allow_nan=False)
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _looks_clean(value: Any) -> bool:
    """One C-speed encode instead of a Python walk (2x faster on a 20-row tool output):
    a lone surrogate stays raw in the text and fails the UTF-8 encode; NUL is spelled
    ``\\u0000`` (a literal backslash-u0000 in the data only sends it to the walk)."""
    try:
        s = _encode(value)
    except (TypeError, ValueError, RecursionError):
        return False
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return "\\u0000" not in s


def _walk(value: Any) -> Any:
    t = type(value)
    if t is str:
        return clean_text(value)
    if t is dict:
        out: dict[Any, Any] | None = None
        for i, (k, v) in enumerate(value.items()):
            k2 = clean_text(k) if type(k) is str else k
            v2 = _walk(v)
            if out is None and (k2 is not k or v2 is not v):
                out = dict(list(value.items())[:i])
            if out is not None:
                out[k2] = v2
        return value if out is None else out
    if t is list or t is tuple:
        items = [_walk(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if t is list else tuple(items)
    if isinstance(value, str):  # a str subclass (an enum value, a markup string)
        return clean_text(str(value))
    if isinstance(value, (dict, list, tuple)):
        return _walk(dict(value) if isinstance(value, dict) else list(value))
    if isinstance(value, float) and not math.isfinite(value):  # numpy's float64 too
        return _NON_FINITE[repr(float(value))]
    return value


def check_id(value: Any, what: str) -> Any:
    """``value`` if it is a str a store can keep verbatim (non-str values pass through for the
    caller's own type check); else a one-line ConfigurationError naming ``what``."""
    if isinstance(value, str) and not is_clean(value):
        raise ConfigurationError(
            f"{what} {value!r} contains a NUL or a lone surrogate, which no store can keep; "
            "pass an id of plain text (ids are never rewritten)"
        )
    return value


def check_new_name(value: str, what: str) -> str:
    """``value`` if every character is printable (``str.isprintable``: letters, digits,
    punctuation, symbols, the space); else a one-line ConfigurationError naming the first
    other one by its code point, never echoing it: a bidi override (U+202E) or an escape
    shown on a card or a listing makes a name read as another (ADR 0215). A Unicode space
    other than U+0020 (a no-break space pasted from a document) is refused with the name
    spelt with plain spaces: it would read as that name and be another (ADR 0219). Checked
    where a name is created, not where a stored one is opened."""
    bad = next((c for c in value if not c.isprintable()), None)
    if bad is not None and unicodedata.category(bad) == "Zs":  # a no-break space, pasted
        plain = "".join(" " if unicodedata.category(c) == "Zs" else c for c in value)
        raise ConfigurationError(
            f"{what} {value!r} holds U+{ord(bad):04X} ({unicodedata.name(bad, 'a space')}), "
            f"which looks like a space but is another character, so the name typed again "
            f"would miss this session; use {plain!r}")
    if bad is not None:
        raise ConfigurationError(
            f"{what} {value!r} holds U+{ord(bad):04X}, a control, format or separator "
            "character (a bidi override, a zero-width space, an escape, a line break); a new "
            "name is letters, digits, punctuation, symbols and the plain space")
    return value


def shown_name(value: str) -> str:
    """A name as a line shows it: as is when printable, else its escaped ``repr`` (a stored
    name from before :func:`check_new_name` must not turn the rest of a line around)."""
    return value if value.isprintable() else repr(value)
