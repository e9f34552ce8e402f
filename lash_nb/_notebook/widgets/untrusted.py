"""Outside text made fit to show: no terminal escapes, no control characters, no live markup.

Tool output, model output, prompts and errors are untrusted (ADR 0135). A tool that prints
for a terminal writes ANSI colour codes, cursor moves, hyperlinks (OSC 8) and bells; shown
in a page those are garbage (``[31mFAILED[0m``) and invisible characters kept in the saved
notebook. :func:`visible` drops every escape sequence (ECMA-48: CSI, OSC, DCS/SOS/PM/APC
strings, two-character escapes, and their 8-bit forms) and every other C0 and C1 control
character except tab, line feed and carriage return. The store keeps the text as it came.

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

_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erase
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"  # OSC: titles, hyperlinks
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]"  # two-character escapes (charset, keypad, reset)
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_RAW_LT = re.compile(r"(?<!\\)((?:\\\\)*)<")
_PASSES = 8


def visible(text: str) -> str:
    """``text`` without escape sequences and control characters (tab, newlines kept)."""
    if not _CONTROLS.search(text):  # every escape starts with one (ESC or a C1 control)
        return text
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


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


__all__ = ["inert_markdown", "visible"]
