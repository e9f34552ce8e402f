"""One scrubber for every place where text from a provider becomes an error, an event, a log
line or a stored row.

A :class:`Scrubber` removes two things:

- exact secret values it was given (an API key) in the forms a server or a library may echo:
  as is (also inside ``Bearer <key>``), URL-encoded, and base64 (standard and URL-safe, with
  or without padding, alone or as the password of HTTP basic auth);
- common credential shapes in free text, whoever's they are: ``sk-...`` / ``sk-ant-...`` keys,
  ``Bearer <token>``, ``Authorization: ...`` / ``x-api-key: ...`` headers, ``api_key=...`` and
  similar assignments, and a few well-known vendor prefixes (``AIza``, ``ghp_``, ``AKIA``).

Each match becomes ``[redacted]``. ``scrub`` costs one substring test per exact form when no
secret is present, and one regular-expression scan, so it is cheap on short error texts; the
provider hot path (prose deltas) uses :meth:`Scrubber.scrub_exact`, which skips the scan.
``DEFAULT`` knows no values and only removes shapes; the runtime uses it for providers that do
not scrub themselves.
"""

from __future__ import annotations

import base64
import re
from typing import Iterable, Protocol, runtime_checkable
from urllib.parse import quote

REDACTED = "[redacted]"
_MIN_SECRET = 6  # shorter values would redact ordinary words

_SHAPES = re.compile(
    r"""
    (?P<header>\b(?:proxy-)?authorization|\bx-api-key|\bapi-key|\bx-goog-api-key)
        (?P<hsep>["']?\s*[:=]\s*["']?)
        (?:(?:bearer|basic|token)\s+)?[^\s"',;&]+
    | (?P<assign>\b(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token
                    |client[_-]?secret|secret[_-]?key|password|passwd))
        (?P<asep>["']?\s*[:=]\s*["']?)[^\s"',;&]+
    | (?P<bearer>\bbearer\s+)[A-Za-z0-9._~+/\-]{6,}=*
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
    return sorted((f for f in forms if len(f) >= _MIN_SECRET), key=len, reverse=True)


class Scrubber:
    """Replace known secret values (and their encodings) and credential shapes with
    ``[redacted]``. Immutable."""

    __slots__ = ("_forms", "__weakref__")

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: list[str] = []
        for value in values:
            if value and len(value) >= _MIN_SECRET:
                forms.extend(f for f in _forms(value) if f not in forms)
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def scrub_exact(self, text: str) -> str:
        """Only the known values and their encodings (cheap enough for every delta)."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def scrub(self, text: str) -> str:
        """Known values, then credential shapes."""
        if not text:
            return text
        return _SHAPES.sub(_shape, self.scrub_exact(text))

    def scrub_optional(self, text: str | None) -> str | None:
        return None if text is None else self.scrub(text)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._forms)} secret forms)"


DEFAULT = Scrubber()


def scrub(text: str) -> str:
    """Credential shapes only (no known values): the fallback for any outside text."""
    return DEFAULT.scrub(text)


@runtime_checkable
class ScrubsSecrets(Protocol):
    """A provider that knows its own secrets and can remove them from text it produced."""

    def scrub(self, text: str) -> str: ...
