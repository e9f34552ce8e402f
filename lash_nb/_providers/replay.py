"""A reasoning part's ``replay``: what a provider keeps of a reasoning block (Anthropic's
thinking block, Gemini's thought signature, a Responses reasoning item) to send back to the
model that wrote it, and only to that model (ADR 0030). Stored in the session graph as
``{"api": ..., "model": ..., <what>: ...}``."""

from __future__ import annotations

import json
from typing import Any


def keep(api: str, model: str, what: str, value: Any) -> str:
    """The ``replay`` text of ``value`` kept under ``what`` for ``api`` and ``model``."""
    return json.dumps({"api": api, "model": model, what: value})


def kept(raw: str | None, api: str, model: str) -> dict[str, Any] | None:
    """The object a ``replay`` holds if ``api`` kept it for ``model``; else None (another
    provider's or model's, or not JSON)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("api") != api or data.get("model") != model:
        return None
    return data
