"""One scrubber for every place where text from a provider becomes an error, an event, a log
line or a stored row.

A :class:`Scrubber` removes two things:

- exact secret values it was given (an API key) in the forms a server or a library may echo:
  as is (also inside ``Bearer <key>``), URL-encoded, and base64 (standard and URL-safe, with
  or without padding, alone or as the password of HTTP basic auth);
- common credential shapes in free text, whoever's they are: ``sk-...`` / ``sk-ant-...`` keys,
  ``Bearer <token>``, ``Authorization: ...`` / ``x-api-key: ...`` headers, ``api_key=...`` and
  similar assignments, the password of a URL (``https://user:password@host``), and a few
  well-known vendor prefixes (``AIza``, ``ghp_``, ``AKIA``).

Each match becomes ``[redacted]``. ``scrub`` costs one substring test per exact form when no
secret is present, and one regular-expression scan, so it is cheap on short error texts. Model
output (prose, reasoning, tool-call arguments) is content, so only the exact values are removed
from it, never shapes: :class:`StreamScrub` does that for deltas, which may split a key.
``DEFAULT`` knows no values and only removes shapes; the runtime uses it for providers that do
not scrub themselves.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words

_SHAPES = re.compile(
    r"""
    (?P<header>\b(?:proxy-)?authorization|\bx-api-key|\bapi-key|\bx-goog-api-key)
        (?P<hsep>["']?\s*[:=]\s*["']?)
        (?:(?:bearer|basic|token)\s+)?[^\s"',;&]+
    | (?P<assign>\b(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token
                    |client[_-]?secret|secret[_-]?key|password|passwd))
        (?P<asep>["']?\s*[:=]\s*["']?)[^\s"',;&]+
    | (?P<bearer>\bbearer\s+)[A-Za-z0-9._~+/\-]{6,}=*
    | (?P<userinfo>(?<=://)[^/@:\s"'<>]*:)[^/?\#\s"'<>]*@
    | (?<![A-Za-z0-9])sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{12,}
    | \bAIza[0-9A-Za-z_\-]{30,}
    | \bgh[pousr]_[A-Za-z0-9]{30,}
    | \bAKIA[0-9A-Z]{16}\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def _shape(match: re.Match[str]) -> str:
    if match.group("header"):
        return f"{match.group('header')}{match.group('hsep')}{REDACTED}"
    if match.group("assign"):
        return f"{match.group('assign')}{match.group('asep')}{REDACTED}"
    if match.group("bearer"):
        return f"{match.group('bearer')}{REDACTED}"
    if match.group("userinfo"):
        return f"{match.group('userinfo')}{REDACTED}@"
    return REDACTED


def _forms(value: str) -> list[str]:
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote(value)}
    for blob in (raw, b":" + raw):
        for enc in (base64.b64encode(blob), base64.urlsafe_b64encode(blob)):
            text = enc.decode()
            forms.add(text)
            forms.add(text.rstrip("="))
    # longest first, so a form that contains another is replaced whole
    return sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def scrub_strings(value: Any, scrub: Callable[[str], str]) -> Any:
    """``value`` (JSON-like: dicts, lists, strings, numbers) with ``scrub`` applied to every
    string in it, dict keys too; a container is copied only when something in it changed."""
    t = type(value)
    if t is str:
        return scrub(value)
    if t is dict:
        items = [(scrub_strings(k, scrub), scrub_strings(v, scrub)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if t is list or t is tuple:
        out = [scrub_strings(v, scrub) for v in value]
        return value if all(a is b for a, b in zip(out, value, strict=True)) else out
    return value


class Scrubber:
    """Replace known secret values (and their encodings) and credential shapes with
    ``[redacted]``. Immutable."""

    __slots__ = ("__weakref__", "_forms", "_json_plain")

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: list[str] = []
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                forms.extend(f for f in _forms(value) if f not in forms)
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        # no form has a character JSON escapes: a form inside a string of a value is in the
        # value's JSON text as it is (``scrub_value``'s one C-speed check)
        self._json_plain = all(json.dumps(f, ensure_ascii=False) == f'"{f}"' for f in self._forms)

    @classmethod
    def joined(cls, scrubbers: Iterable[Scrubber]) -> Scrubber:
        """One scrubber of every value the given ones know (their forms, longest first)."""
        joined = cls()
        forms = {f for s in scrubbers for f in s._forms}
        joined._forms = tuple(sorted(forms, key=len, reverse=True))
        joined._json_plain = all(json.dumps(f, ensure_ascii=False) == f'"{f}"' for f in forms)
        return joined

    @property
    def forms(self) -> tuple[str, ...]:
        return self._forms

    @property
    def knows_values(self) -> bool:
        return bool(self._forms)

    def scrub_exact(self, text: str) -> str:
        """Only the known values and their encodings (cheap enough for every delta)."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def scrub_value(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, strings, numbers; a tool's output) with only
        the known values taken out of its strings, dict keys too; a container is copied only
        when something in it changed."""
        if not self._forms:
            return value
        if type(value) is not str and self._json_plain:
            text = json.dumps(value, ensure_ascii=False, default=str)
            if not any(form in text for form in self._forms):
                return value
        return scrub_strings(value, self.scrub_exact)

    def scrub(self, text: str) -> str:
        """Known values, then credential shapes."""
        if not text:
            return text
        return _SHAPES.sub(_shape, self.scrub_exact(text))

    def scrub_optional(self, text: str | None) -> str | None:
        return None if text is None else self.scrub(text)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._forms)} secret forms)"


class StreamScrub:
    """Exact-value scrubbing of text that arrives in pieces (model deltas), one buffer per
    named stream: the tail of a piece that could be the start of a secret form is held back
    until the next piece (or :meth:`flush`) shows what it is, so a key split across two
    deltas is still removed. Costs a character scan of the last few characters per piece."""

    __slots__ = ("_firsts", "_forms", "_held", "_longest")

    def __init__(self, scrubber: Scrubber) -> None:
        self._forms = scrubber._forms
        self._firsts = frozenset(f[0] for f in self._forms)
        self._longest = max((len(f) for f in self._forms), default=0)
        self._held: dict[str, str] = {}

    def feed(self, stream: str, text: str) -> str:
        if not self._forms:
            return text
        held = self._held.pop(stream, "")
        buf = held + text if held else text
        for form in self._forms:
            if form in buf:
                buf = buf.replace(form, REDACTED)
        cut = self._hold_from(buf)
        if cut < len(buf):
            self._held[stream] = buf[cut:]
            return buf[:cut]
        return buf

    def flush(self, stream: str) -> str:
        return self._held.pop(stream, "")

    def _hold_from(self, buf: str) -> int:
        """Where the earliest tail of ``buf`` that begins some secret form starts."""
        start = max(len(buf) - self._longest + 1, 0)
        best = len(buf)
        for first in self._firsts:
            i = buf.find(first, start, best)
            while i != -1:
                tail = buf[i:]
                if any(form.startswith(tail) for form in self._forms):
                    best = i
                    break
                i = buf.find(first, i + 1, best)
        return best


DEFAULT = Scrubber()

# The keys this process knows (every keyed provider alive, the provider variables of the
# environment): lash_nb._providers.redaction sets it when it is imported. Text a user or a
# tool hands to a session loses them (InputItem, a tool's output).
_known_keys: Callable[[str], str] | None = None


def know_keys(scrub_exact: Callable[[str], str]) -> None:
    global _known_keys
    _known_keys = scrub_exact


def scrub_known_keys(text: str) -> str:
    """``text`` without the keys this process knows (exact values in every encoding; no
    shapes: the text is the user's data)."""
    return _known_keys(text) if _known_keys is not None and text else text


def scrub(text: str) -> str:
    """Credential shapes only (no known values): the fallback for any outside text."""
    return DEFAULT.scrub(text)


# what a command line or a URL carries besides credential shapes: the password of a URL
# (``postgresql://me:pw@host``), a query parameter named like a secret (``?token=...``) and
# the value of an option named like one (``--token X``, ``--client-secret=X``)
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/?#\s]*@")  # to the authority's last '@'
# a name with a secret word as one of its parts (``api-key``, ``X-Amz-Signature``, not
# ``keyboard``)
_SECRET_PARTS = (r"token|key|apikey|secret|passw(?:or)?d|pwd|auth|authorization|credentials?"
                 r"|signature|sig|pat")
_SECRET_WORD = rf"(?:[A-Za-z0-9]+[_.-])*(?:{_SECRET_PARTS})(?:[_.-][A-Za-z0-9]+)*"
# in a URL's query ``code`` is a secret too (an Azure Functions key: ``?code=...``)
_QUERY_WORD = rf"(?:[A-Za-z0-9]+[_.-])*(?:{_SECRET_PARTS}|code)(?:[_.-][A-Za-z0-9]+)*"
_SECRET_QUERY = re.compile(rf"([?&;]{_QUERY_WORD}=)[^&#;\s]+", re.IGNORECASE)
_SECRET_QUERY_NAME = re.compile(_QUERY_WORD, re.IGNORECASE)
_SECRET_OPTION = re.compile(rf"-{{1,2}}{_SECRET_WORD}", re.IGNORECASE)
_SECRET_NAME = re.compile(_SECRET_WORD, re.IGNORECASE)


def secret_named(name: str) -> bool:
    """Whether a variable or option name says it holds a secret (``SLACK_BOT_TOKEN``,
    ``api-key``, ``DB_PASSWORD``; not ``KEYBOARD``)."""
    return _SECRET_NAME.fullmatch(name) is not None


def secret_query_named(name: str) -> bool:
    """Whether a URL's query parameter name says it holds a secret (``api-key``, ``sig``,
    ``code``, ``access_code``; not ``api-version``)."""
    return _SECRET_QUERY_NAME.fullmatch(name) is not None


def scrub_urls(text: str) -> str:
    """Credential shapes, and a URL's password and secret-named query values."""
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    return scrub(_SECRET_QUERY.sub(rf"\1{REDACTED}", text))


def scrub_command(words: Iterable[str]) -> str:
    """A command line (``command``, ``args``) to show: :func:`scrub_urls` of it, with the value
    of every option named like a secret (``--token X``, ``--api-key=X``) ``[redacted]``."""
    out: list[str] = []
    hide = False
    for word in words:
        name, eq, _value = word.partition("=")
        if hide:
            word, hide = REDACTED, False
        elif _SECRET_OPTION.fullmatch(name):
            if eq:
                word = f"{name}={REDACTED}"
            else:
                hide = True
        out.append(word)
    return scrub_urls(" ".join(out))


def command_secrets(words: Iterable[str]) -> list[str]:
    """The values :func:`scrub_command` hides in a command line (``--token X``,
    ``--api-key=X``) and those :func:`url_secrets` finds in its words: what a program started
    with them was handed, to take out of what it says (exactly, in any encoding)."""
    out: list[str] = []
    take = False
    for word in words:
        name, eq, value = word.partition("=")
        if take:
            out.append(word)
            take = False
        elif _SECRET_OPTION.fullmatch(name):
            if eq:
                out.append(value)
            else:
                take = True
        out.extend(url_secrets(word))
    return out


def url_secrets(text: str) -> list[str]:
    """The password and the secret-named query values of the URLs in ``text`` (those
    :func:`scrub_urls` hides)."""
    found = [m.group(0)[len(m.group(1)) + 1:-1] for m in _URL_PASSWORD.finditer(text)]
    found += [m.group(0)[len(m.group(1)):] for m in _SECRET_QUERY.finditer(text)]
    return [v for v in found if v]


@runtime_checkable
class ScrubsSecrets(Protocol):
    """A provider that knows its own secrets and can remove them from text it produced."""

    def scrub(self, text: str) -> str: ...
