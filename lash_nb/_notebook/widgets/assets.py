"""Widget JS and CSS live as files in ``lash_nb/_notebook/static``; this reads them once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static"


@cache
def esm(*names: str) -> str:
    """Concatenate JS files into one ES module (helpers first, the module with ``export`` last)."""
    return "\n".join((STATIC / n).read_text(encoding="utf-8") for n in names)


@cache
def css(*names: str) -> str:
    return "\n".join((STATIC / n).read_text(encoding="utf-8") for n in names)


@cache
def compact_css(name: str) -> str:
    """A style sheet as every saved record carries it: one line, no comments, a space only
    where one may mean something (``.a :not(p)`` is not ``.a:not(p)``). ADR 182."""
    text = re.sub(r"/\*.*?\*/", "", css(name), flags=re.DOTALL)
    return re.sub(r"\s*([{};])\s*", r"\1", re.sub(r"\s+", " ", text)).strip()
