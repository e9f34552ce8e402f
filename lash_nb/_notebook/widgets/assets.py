"""Widget JS and CSS live as files in ``lash_nb/_notebook/static``; this reads them once."""

from __future__ import annotations

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
