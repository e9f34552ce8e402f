"""The live HTML of one growing prose row, built so each character is rendered and sent a
bounded number of times (issue 21: re-sending the whole rendered answer on every flush made a
long answer's traffic grow with its square).

A row's live HTML is two parts:
- its finished blocks: the text up to the last blank line that ends a block (outside a code
  fence, and followed by a line that cannot continue what came before: not indented, not a
  list item), rendered one block run at a time and only ever appended to (the browser keeps
  what it has and receives the new part);
- its open block (the paragraph, list or fence being written): re-rendered when it has doubled
  in length since its last render (and the caller's time gate allows), so its renders add up
  to at most about twice its length. Text past the covered part is shown as plain text.

The finished blocks read as the same text rendered whole: a loose list (items apart by blank
lines) stays one list because a blank line before another item or an indented line does not
end a run; runs share markdown-it's environment, so a link defined in an earlier run resolves
in a later one; a definition arriving after the links that use it re-renders the finished
blocks whole (sent as a replacement), while that costs at most twice the text rendered. The
finished turn is rendered whole (``TurnWidget._render_prose(final)``), the record a saved
notebook shows. Lengths the browser uses are UTF-16 units, as JavaScript counts a string.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .markdown import render_markdown

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
# the start of a line after a blank line that may continue the block before it: indented (a
# list item's next paragraph, indented code), a list item (a loose list), or not known yet
_CONTINUES = re.compile(r"[ \t\n]|[-+*](?:[ \t\n]|\Z)|\d{1,9}(?:[.)](?:[ \t\n]|\Z)|\Z)|\Z")
_SPACE = re.compile(r"\s+")


def utf16_len(text: str) -> int:
    """``text.length`` in the browser (a character outside the BMP, an emoji, counts 2)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def block_end(text: str, start: int) -> int:
    """The end of the last finished block run in ``text[start:]``: just after the last blank
    line that is not inside a code fence and is followed by a line that cannot continue the
    block before it (``start`` itself is outside any fence). ``start`` when there is none."""
    hi = len(text)
    if text.rfind("\n\n", start, hi) < 0:
        return start
    spans: list[tuple[int, int]] = []  # fenced code: (its first line's start, its last line's end)
    opened: tuple[int, str, int] | None = None
    for m in _FENCE.finditer(text, start):
        mark = m.group(1)
        if opened is None:
            opened = (m.start(), mark[0], len(mark))
        elif mark[0] == opened[1] and len(mark) >= opened[2]:
            line_end = text.find("\n", m.end())
            spans.append((opened[0], hi if line_end < 0 else line_end))
            opened = None
    if opened is not None:
        spans.append((opened[0], hi))
    while True:
        e = text.rfind("\n\n", start, hi)
        if e < 0:
            return start
        inside = [o for o, c in spans if o < e + 2 <= c]
        if inside:
            hi = inside[0]
            continue
        after = e + 2
        while after < len(text) and text[after] == "\n":
            after += 1
        if not _CONTINUES.match(text, after):
            return e + 2
        hi = e + 1  # a shorter run may still end at an earlier blank line


class LiveProse:
    """The live HTML of one prose row (see the module docstring). ``html`` / ``covered``: the
    HTML so far and how many UTF-16 units of the text it covers; ``stable_html_len``: how many
    characters of ``html`` are finished blocks (they never change)."""

    def __init__(self) -> None:
        self.source = ""  # the text rendered as finished blocks
        self.stable_html = ""
        self.stable_u16 = 0
        self.open_html = ""
        self.open_u16 = 0
        self.bucket = 0  # bit length of the open block's length at its last render
        self.at = float("-inf")
        self.cost = 0.0
        self.html: str | None = None
        self.covered = 0
        self.env: dict[str, Any] = {}  # markdown-it's, shared by the finished runs (references)
        self.redone = 0  # characters rendered again for references defined after their use

    @property
    def stable_html_len(self) -> int:
        return len(self.stable_html)

    def fits(self, text: str) -> bool:
        """The row still begins with what was rendered (a retried answer may not)."""
        return text.startswith(self.source)

    def _used_before(self, labels: set[str], start: int) -> bool:
        """Whether text before ``start`` may use one of the newly defined reference labels
        (markdown-it keeps them normalised: whitespace collapsed, case folded up)."""
        before = _SPACE.sub(" ", self.source[:start]).upper()
        return any(f"[{label}]" in before for label in labels)

    def advance(self, text: str, closed: bool, now: float, interval_s: float) -> None:
        """Bring the HTML up to ``text`` (``closed``: the row is followed by another, so all of
        it is finished). The open block re-renders once it doubled, at most every
        ``interval_s`` or 8 times its last render's cost after the previous one."""
        start = len(self.source)
        end = len(text) if closed else block_end(text, start)
        changed = self.html is None
        if end > start:
            chunk = text[start:end]
            known = set(self.env.get("references", ()))
            self.stable_html += render_markdown(chunk, self.env)
            self.stable_u16 += utf16_len(chunk)
            self.source = text[:end]
            new = set(self.env.get("references", ())) - known
            if new and self.redone <= end and self._used_before(new, start):
                self.env = {}
                self.stable_html = render_markdown(self.source, self.env)
                self.redone += end
            self.open_html, self.open_u16, self.bucket = "", 0, 0
            changed = True
        size = len(text) - end
        due = self.html is None or now - self.at >= max(interval_s, 8 * self.cost)
        if size and size.bit_length() > self.bucket and due:
            piece = text[end:]
            t0 = time.perf_counter()
            self.open_html = render_markdown(piece)
            self.cost = time.perf_counter() - t0
            self.at = now
            self.open_u16, self.bucket = utf16_len(piece), size.bit_length()
            changed = True
        if changed:
            self.html = self.stable_html + self.open_html
            self.covered = self.stable_u16 + self.open_u16


__all__ = ["LiveProse", "block_end", "utf16_len"]
