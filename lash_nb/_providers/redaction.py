"""Keeping the provider's secrets out of what it hands on: model deltas, the final response,
and the HTTP libraries' log records. The rules of what is a secret live in
:mod:`lash_nb._core.secrets`; this module applies them where provider data flows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import weakref
from typing import Any

from lash_nb._core.llm import LlmResponse, LlmStreamEvent, ReasoningTextDelta, TextDelta
from lash_nb._core.secrets import MIN_SECRET_LENGTH, Scrubber, StreamScrub, know_keys, secret_named, url_secrets
from lash_nb._core.secrets import scrub as scrub_shapes

# httpx logs each response line at INFO, httpcore the response headers at DEBUG
_HTTP_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                 "httpcore.proxy", "httpcore.connection_pool")


class HttpLogScrub(logging.Filter):
    """Scrubs the records of the HTTP libraries' own loggers: a header a server echoed the key
    in would otherwise reach any handler a user configured at DEBUG. Runs only for records
    that pass the level check, so it costs nothing while those loggers are quiet."""

    def __init__(self) -> None:
        super().__init__()
        self.scrubbers: weakref.WeakSet[Scrubber] = weakref.WeakSet()

    def watch(self, scrubber: Scrubber) -> None:
        self.scrubbers.add(scrubber)
        for name in _HTTP_LOGGERS:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = scrub_known(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


LOG_SCRUB = HttpLogScrub()


def scrub_known(text: str) -> str:
    """``text`` without the key of any provider alive in this process, the keys in the
    provider variables of the environment (every encoding) and credential shapes: for text
    made where no one provider is at hand (a plugin's exception). The environment's keys
    were missing here until ADR 196's follow-up: a plugin reading ``OPENAI_API_KEY`` for a
    client of its own quoted it into the turn's errors and the store."""
    return scrub_shapes(known_scrubber().scrub_exact(text))


def scrub_known_values(text: str) -> str:
    """``text`` without the key of any provider alive in this process and the keys in the
    provider variables of the environment (every encoding the scrubber knows), credential
    shapes left alone: for model text once a renderer has decoded it (markdown's character
    references and backslash escapes), also text stored before a kernel restart, and for what
    a user or a tool hands a session (a prompt, a tool's output: ADR 196)."""
    return known_scrubber().scrub_exact(text)


def scrub_known_in(value: Any) -> Any:
    """:func:`scrub_known_values` over a JSON-like value (a tool's output): strings and dict
    keys at any depth; the same object back when no known key is in it."""
    return known_scrubber().scrub_value(value)


def knows_keys() -> bool:
    """Whether :func:`scrub_known_values` has any key to remove (a keyed provider alive, or
    a provider key in the environment)."""
    return known_scrubber().knows_values


_KNOWN: tuple[tuple[tuple[str, ...], ...], Scrubber] = ((), Scrubber())


def known_scrubber() -> Scrubber:
    """One scrubber of the keys of every provider alive in this process and of the provider
    variables set in ``os.environ`` now; rebuilt only when that set changes (the check
    compares the scrubbers' forms, the same tuples while nothing changed)."""
    global _KNOWN
    scrubbers = [_environment_scrubber(), *LOG_SCRUB.scrubbers]
    key = tuple(s.forms for s in scrubbers)
    if key != _KNOWN[0]:
        _KNOWN = (key, Scrubber.joined(scrubbers))
    return _KNOWN[1]


_ENV_SCRUBBER: tuple[tuple[object, ...], Scrubber] = ((), Scrubber())
_ENV_READ: Any = None  # reads the environment's raw values (set on first use)


def _environment_scrubber() -> Scrubber:
    """A scrubber of the secrets set in ``os.environ`` now (rebuilt when it changes): the
    provider key variables (ADR 196), every variable named like a secret whose value looks
    like one, and the password of a URL in any variable (ADR 211; :func:`environment_secrets`).
    Runs for every prompt and tool output, so the check compares CPython's raw values under
    ``os.environ`` (``_data``: one tuple of references, ~1.5 us for 40 variables) where it
    has one, and decodes only when a value changed."""
    global _ENV_SCRUBBER, _ENV_READ
    if _ENV_READ is None:
        _ENV_READ = _env_reader()
    raw = _ENV_READ()
    if raw != _ENV_SCRUBBER[0]:
        _ENV_SCRUBBER = (raw, Scrubber(environment_secrets(dict(os.environ))))
    return _ENV_SCRUBBER[1]


def environment_secrets(env: dict[str, str]) -> list[str]:
    """The values of ``env`` that are secrets: a provider key variable's value; the value of
    a variable named like a secret (``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``,
    ``JUPYTER_TOKEN``) unless it cannot be one (:func:`_may_be_secret`:
    ``GOOGLE_APPLICATION_CREDENTIALS=/home/me/key.json`` names a file); the
    password and secret-named query values of a URL in any variable (``DATABASE_URL``)."""
    from .registry import KEY_NAMES  # registry imports this module

    out: list[str] = []
    for name, raw in env.items():
        value = raw.strip()
        if not value:
            continue
        if name in KEY_NAMES or (secret_named(name) and _may_be_secret(value)):
            out.append(value)
        if "://" in value:
            out.extend(url_secrets(value))
    return out


def _may_be_secret(value: str) -> bool:
    """Not a value no one keeps secret: short, a number, a path, a URL, or a word (letters
    only, under 16: ``USE_AUTH=disabled``, ``AUTH_PROVIDER=keycloak``), which taken out of
    every prompt and output would garble prose."""
    return (len(value) >= 8 and not value.isdigit() and "://" not in value
            and not value.startswith(("/", "~", "./", "../"))
            and not (value.isalpha() and len(value) < 16))


def _env_reader() -> Any:
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return lambda: tuple(data.values())
    return lambda: tuple(os.environ.items())


def scrubbed_response(scrubber: Scrubber, response: LlmResponse) -> LlmResponse:
    """The response with its server-sent ids and names scrubbed (they are stored) and the key
    removed from its text and tool arguments (the deltas were, by :class:`DeltaScrub`)."""
    scrub = scrubber.scrub_optional
    parts = response.parts
    if scrubber.knows_values:
        exact = scrubber.scrub_exact
        parts = tuple(
            dataclasses.replace(p, text=exact(p.text),
                                input_json=exact(p.input_json) if p.input_json else p.input_json)
            for p in parts)
    return dataclasses.replace(
        response, parts=parts, response_id=scrub(response.response_id),
        served_model=scrub(response.served_model), finish_reason=scrub(response.finish_reason))


class DeltaScrub:
    """The prose and reasoning deltas of one attempt without the provider's key, even when a
    key is split across deltas (:class:`~lash_nb._core.secrets.StreamScrub`). ``flush`` at the
    end of the stream releases held-back tails; after a failure only tails too short to be a
    secret are released (the rest may be the start of the key)."""

    __slots__ = ("_items", "_stream")

    def __init__(self, scrubber: Scrubber) -> None:
        self._stream = StreamScrub(scrubber) if scrubber.knows_values else None
        self._items: dict[str, str | None] = {}

    def apply(self, events: list[LlmStreamEvent]) -> list[LlmStreamEvent]:
        stream = self._stream
        if stream is None or not events:
            return events
        out: list[LlmStreamEvent] = []
        for event in events:
            if isinstance(event, (TextDelta, ReasoningTextDelta)):
                name = "text" if isinstance(event, TextDelta) else "reasoning"
                self._items[name] = event.item_id
                text = stream.feed(name, event.text)
                if text is event.text:
                    out.append(event)
                elif text:
                    out.append(type(event)(text, event.item_id))
            else:
                out.append(event)
        return out

    def flush(self, *, failed: bool = False) -> list[LlmStreamEvent]:
        if self._stream is None:
            return []
        out: list[LlmStreamEvent] = []
        for name, cls in (("text", TextDelta), ("reasoning", ReasoningTextDelta)):
            held = self._stream.flush(name)
            if held and not (failed and len(held) >= MIN_SECRET_LENGTH):
                out.append(cls(held, self._items.get(name)))
        return out


know_keys(scrub_known_values)  # a prompt loses them too (lash_nb._core.turn_input)
