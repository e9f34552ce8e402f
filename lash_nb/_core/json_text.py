"""JSON text from the C encoder built once, not once per call.

``json.JSONEncoder.encode`` builds a new C encoder (``_json.make_encoder``) on every call:
~1.2 µs, most of the cost of encoding a small value, and a durable turn encodes ~20 of them
(its events' payloads, its nodes' contents, the two log rows). :func:`encoder` returns an
``encode`` whose text is the same as ``json.JSONEncoder(**options).encode``'s for every
value, the errors too:

- without the circular-reference check the C encoder keeps no state: one serves every call
  and every thread;
- with it, its ``markers`` (the containers being encoded) are per call in the stdlib. Here
  each thread keeps its own encoder; a call that fails (its containers stay in the markers)
  drops it, and a call made while one runs on the same thread (a ``default`` that encodes)
  uses a new ``JSONEncoder``, as every call did before.

Without the C module (another Python) it is ``JSONEncoder(**options).encode`` itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from json import encoder as _stdlib
from typing import Any


def encoder(**options: Any) -> Callable[[Any], str]:
    """``json.JSONEncoder(**options).encode``, the same text, without building an encoder
    per call (``indent`` is not supported: the compact forms only)."""
    spec = json.JSONEncoder(**options)
    make: Any = getattr(_stdlib, "c_make_encoder", None)  # None without the C module
    if make is None or options.get("indent") is not None:
        return spec.encode
    quote: Any = _stdlib.encode_basestring_ascii if spec.ensure_ascii else _stdlib.encode_basestring

    def build(markers: dict[int, Any] | None) -> Any:
        return make(markers, spec.default, quote, None, spec.key_separator,
                    spec.item_separator, spec.sort_keys, spec.skipkeys, spec.allow_nan)

    try:  # a private constructor: a Python whose signature differs gets the stdlib's own
        probe = build(None if not spec.check_circular else {})
        if "".join(probe(["", 0], 0)) != spec.encode(["", 0]):
            return spec.encode
    except TypeError:
        return spec.encode
    join = "".join
    if not spec.check_circular:
        shared = probe

        def encode_unchecked(value: Any) -> str:
            return join(shared(value, 0))

        return encode_unchecked

    local = threading.local()

    def encode(value: Any) -> str:
        enc = local.__dict__.pop("enc", None)  # taken while it runs: a nested call builds anew
        if enc is None:
            enc = build({})
        text = join(enc(value, 0))  # a failed call's containers stay in its markers: not kept
        local.enc = enc
        return text

    return encode


# keys in order, values never written: a dict whose keys cannot be ordered (1 and "1", None
# and "None") fails the sort with TypeError, the only way two keys can be one JSON key
_ORDERED = encoder(sort_keys=True, default=lambda _: None)


def _key_texts(key: Any) -> tuple[str, ...]:
    """The texts ``key`` may become as a JSON key: ``json``'s (``null``, ``true``) and
    pydantic's or ``str()``'s (``None``, ``True``, an enum's value)."""
    if type(key) is str:
        return (key,)
    if key is None or isinstance(key, bool):
        return (json.dumps(key), str(key))
    value = getattr(key, "value", None)
    return (str(key), repr(key)) + ((str(value),) if value is not None else ())


def _collide(d: dict[Any, Any]) -> bool:
    owner: dict[str, Any] = {}
    for key in d:
        for text in _key_texts(key):
            if owner.setdefault(text, key) is not key:
                return True
    return False


def keyed_as_text(value: Any) -> Any:
    """``value`` with each dict whose keys would be one key in JSON (``{1: "a", "1": "b"}``:
    both ``"1"``, one value lost) replaced by its ``str()``, which holds every value; the
    rest as it is (a container copied only when something in it changed). One C-speed
    encode for the common value, whose keys can be ordered."""
    try:
        _ORDERED(value)
        return value
    except TypeError:
        pass  # keys of two kinds somewhere, or keys JSON cannot hold: look
    except (ValueError, RecursionError):
        return value
    return _walk_keys(value)


def _walk_keys(value: Any) -> Any:
    if isinstance(value, dict):
        if not all(type(k) is str for k in value) and _collide(value):
            return str(value)
        items = {k: _walk_keys(v) for k, v in value.items()}
        same = all(items[k] is v for k, v in value.items())
        return value if same else items
    if type(value) in (list, tuple):
        out = [_walk_keys(v) for v in value]
        return value if all(a is b for a, b in zip(out, value, strict=True)) else out
    return value
