"""Outside text made fit to show: :func:`visible` (``_core/visible.py``: no terminal escapes,
no control or bidi characters) and markdown with no live markup.

The record's markdown form (``text/markdown``) is read by renderers that may pass raw HTML
through. :func:`inert_markdown` makes the markdown's raw HTML text: markdown-it (CommonMark,
tables, strikethrough, HTML on) finds the lines where it would build raw HTML, and each
``<`` there that is not already escaped becomes ``&lt;`` (which reads as ``<``); code blocks
stay as they are. Escaping can change the blocks around it (an HTML block that held a fence
line no longer does), so the text is parsed again until no raw HTML is left; text that does
not settle in a few passes has every ``<`` escaped.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import traitlets

from ..._core.text import shown_name
from ..._core.visible import visible

_RAW_LT = re.compile(r"(?<!\\)((?:\\\\)*)<")
_PASSES = 8


def inert_markdown(markdown: str) -> str:
    """``markdown`` whose raw HTML reads as text wherever a CommonMark renderer shows it."""
    text = re.sub(r"\r\n?", "\n", markdown)
    for _ in range(_PASSES):
        if "<" not in text:
            return text
        lines = _html_lines(text)
        if not lines:
            return text
        rows = text.split("\n")
        for i in lines:
            rows[i] = _RAW_LT.sub(r"\1&lt;", rows[i])
        escaped = "\n".join(rows)
        if escaped == text:  # an escaped-looking "<" still starts HTML: escape them all
            break
        text = escaped
    return text.replace("<", "&lt;") if _html_lines(text) else text


def _html_lines(text: str) -> set[int]:
    """The lines on which markdown-it builds raw HTML (block or inline)."""
    out: set[int] = set()
    block: list[int] | None = None
    for token in _parser().parse(text):
        block = token.map or block
        raw = token.type == "html_block" or (
            token.type == "inline" and any(c.type == "html_inline" for c in token.children or ()))
        if raw and block is not None:
            out.update(range(block[0], block[1]))
    return out


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


class ShownSessionName(traitlets.HasTraits):
    """A widget's synced ``session_id`` as the session card shows it (a stored name holding a
    bidi override escaped, ADR 215, 219); ``_session_name`` keeps it as it is, for the
    ``%lash sql`` queries its notes give."""

    _session_name = ""

    @traitlets.validate("session_id")
    def _shown_name(self, proposal: Any) -> str:
        self._session_name = str(proposal["value"])
        return shown_name(self._session_name)


__all__ = ["ShownSessionName", "inert_markdown", "visible"]
